"""Embeddings: POST /embed (text/image/audio), video embedding tasks (v1 /embed/tasks and /embed-v2/tasks) and
the synchronous POST /embed-v2. Text vectors come from the text embedder, images and video clips from frame
features, audio from a spectral fingerprint; the three spaces are separate, so cross-modal similarity is not
meaningful offline (the response metadata says which embedder produced each vector)."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import av
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import found, invalid, missing
from tl_mcp.sandbox.http.files import receive_media, safe_filename
from tl_mcp.sandbox.media import MediaError, Probe, load_image_rgb
from tl_mcp.sandbox.perception.audio import audio_features
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.store.assets import get_asset_row, probe_of
from tl_mcp.sandbox.store.db import dumps, loads, now_iso
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.web import (
    checked_url,
    engine_of,
    form_body,
    form_file,
    form_list,
    form_str,
    json_body,
    ok,
    page_params,
    paged,
    query_list,
)
from tl_mcp.sandbox.work.embed import OPTIONS, clip_spans, floats

MODELS = ("marengo3.0", "Marengo-retrieval-2.7")


async def _fetch(request: Request, url: str, cap: int, *, name: str, nested: bool = False) -> bytes:
    import httpx2

    from tl_mcp.sandbox import urls

    if not url.startswith(("http://", "https://")):
        raise invalid(f"`{name}` must be an http(s) URL (got {url[:100]!r}).", nested=nested)
    await checked_url(request, url, name=name, nested=nested)
    config = engine_of(request).config
    async with urls.async_client(
        allow_private=config.allow_private_urls, timeout=60.0, resolver=config.resolver
    ) as client:
        try:
            resp = await client.get(url)
        except urls.UrlRefused as exc:
            raise invalid(f"`{name}`: {exc.message}", nested=nested) from exc
        except httpx2.HTTPError as exc:
            raise invalid(f"{url[:100]} could not be fetched ({type(exc).__name__}).", nested=nested) from exc
    if resp.status_code >= 400:
        raise invalid(f"{url[:100]} returned HTTP {resp.status_code}.", nested=nested)
    if len(resp.content) > cap:
        raise invalid(f"{url[:100]} is larger than {cap} bytes.", nested=nested)
    return resp.content


async def _audio_vec(engine: Engine, data: bytes, start: float, end: float | None) -> FloatArray:
    """The audio fingerprint of uploaded bytes, on a worker thread: it decodes and transforms all of it."""

    def features() -> FloatArray:
        path = engine.tmp_path(".audio")
        path.write_bytes(data)
        try:
            return audio_features(path, engine.limits, start, end)
        except (MediaError, av.FFmpegError) as exc:
            raise invalid(f"The audio could not be decoded ({exc}).") from exc
        finally:
            path.unlink(missing_ok=True)

    return await anyio.to_thread.run_sync(features)


async def _image_vec(engine: Engine, source: bytes | Path, *, nested: bool = False) -> FloatArray:
    """The embedding of an image, decoded and embedded on a worker thread (a large picture takes a second)."""

    def vector() -> FloatArray:
        try:
            return engine.analyzers.image.embed_image(load_image_rgb(source, engine.limits))
        except MediaError as exc:
            raise invalid(exc.message, nested=nested) from exc

    return await anyio.to_thread.run_sync(vector)


def _model_name(form: FormData) -> str:
    model = form_str(form, "model_name", required=True)
    if model not in MODELS:
        raise invalid(f"The `model_name` parameter must be marengo3.0 (got {model!r}).")
    return model


async def embed(request: Request) -> Response:
    engine = engine_of(request)
    form = await form_body(request, max_bytes=engine.config.max_upload_bytes)
    try:
        model = _model_name(form)
        text = form_str(form, "text")
        image_url, image_file = form_str(form, "image_url"), form_file(form, "image_file")
        audio_url, audio_file = form_str(form, "audio_url"), form_file(form, "audio_file")
        if not any([text, image_url, image_file, audio_url, audio_file]):
            raise missing("text", "Send at least one of text, image_url/image_file, audio_url/audio_file.")
        offset_raw = form_str(form, "audio_start_offset_sec") or "0"
        try:
            offset = float(offset_raw)
        except ValueError as exc:
            raise invalid("`audio_start_offset_sec` must be a number.") from exc
        body: dict[str, Any] = {"model_name": model}
        if text is not None:
            if len(text.split()) > 500:
                raise invalid("`text` is longer than 500 tokens.")
            body["text_embedding"] = {
                "segments": [{"float": floats(engine.analyzers.text.embed([text], "query")[0])}],
                "metadata": {"embedder": engine.analyzers.text.name},
            }
        if image_url or image_file:
            cap = engine.config.max_image_bytes
            if image_url:
                data = await _fetch(request, image_url, cap, name="image_url")
            else:
                data = await image_file.read(cap + 1)  # type: ignore[union-attr]
            if len(data) > cap:
                raise invalid(f"The image is larger than {cap} bytes.")
            vec = await _image_vec(engine, data)
            meta = {"input_url": image_url} if image_url else {"input_filename": image_file.filename}  # type: ignore[union-attr]
            body["image_embedding"] = {
                "segments": [{"float": floats(vec)}],
                "metadata": meta | {"embedder": engine.analyzers.image.name},
            }
        if audio_url or audio_file:
            cap = engine.config.max_upload_bytes
            if audio_url:
                data = await _fetch(request, audio_url, cap, name="audio_url")
            else:
                data = await audio_file.read(cap + 1)  # type: ignore[union-attr]
            vec = await _audio_vec(engine, data, offset, None)
            meta = {"input_url": audio_url} if audio_url else {"input_filename": audio_file.filename}  # type: ignore[union-attr]
            body["audio_embedding"] = {
                "segments": [{"float": floats(vec), "start_offset_sec": offset, "end_offset_sec": None}],
                "metadata": meta | {"embedder": "spectral-bands-v1"},
            }
    finally:
        await form.close()
    return ok(body)


# ----- video embedding tasks --------------------------------------------------------------------------------


async def create_embed_task(request: Request) -> Response:
    engine = engine_of(request)
    form = await form_body(request, max_bytes=engine.config.max_upload_bytes)
    try:
        model = _model_name(form)
        url, upload = form_str(form, "video_url"), form_file(form, "video_file")
        if url is None and upload is None:
            raise missing("video_file", "Send `video_file` or `video_url`.")
        clip = _num(form_str(form, "video_clip_length"), "video_clip_length", 6.0)
        if not 2 <= clip <= 10:
            raise invalid("`video_clip_length` must be between 2 and 10 seconds.")
        start_raw, end_raw = form_str(form, "video_start_offset_sec"), form_str(form, "video_end_offset_sec")
        start = _num(start_raw, "video_start_offset_sec", 0.0)
        end = _num(end_raw, "video_end_offset_sec", -1.0) if end_raw is not None else None
        if end is not None and end <= start:
            raise invalid("`video_end_offset_sec` must be greater than `video_start_offset_sec`.")
        scopes = form_list(form, "video_embedding_scope") or ["clip"]
        if any(s not in ("clip", "video") for s in scopes):
            raise invalid("`video_embedding_scope` values must be clip or video.")
        task_id = new_id()
        request_doc: dict[str, Any] = {"clip_length": clip, "start": start, "end": end, "scopes": scopes}
        if url is not None:
            request_doc["video_url"] = await checked_url(request, url, name="video_url")
            request_doc["path"] = None
        else:
            assert upload is not None
            path = engine.asset_dir(f"embed-{task_id}") / safe_filename(upload.filename or "video")

            def within(info: Probe) -> None:
                # Offsets past the end are refused now, before a task exists, as TwelveLabs does.
                try:
                    clip_spans(info.duration or 0.0, clip, start, end)
                except MediaError as exc:
                    raise invalid(exc.message) from exc

            await receive_media(engine, upload, path, check=within)
            request_doc["path"] = str(path)
            request_doc["input_filename"] = upload.filename
    finally:
        await form.close()
    _insert_task(engine, task_id, "v1", model, request_doc)
    return ok({"_id": task_id})


def _num(raw: str | None, name: str, default: float) -> float:
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise invalid(f"`{name}` must be a number (got {raw!r}).") from exc


def _insert_task(engine: Engine, task_id: str, version: str, model: str, request_doc: dict[str, Any]) -> None:
    now = now_iso()
    with engine.db.tx() as conn:
        conn.execute(
            "INSERT INTO embed_tasks(id, version, status, model_name, created_at, updated_at, request) "
            "VALUES(?,?,?,?,?,?,?)",
            (task_id, version, "processing", model, now, now, dumps(request_doc)),
        )
        engine.jobs.add(conn, "embed", task_id)
    engine.jobs.wake()


def _get_task(engine: Engine, task_id: str, version: str) -> sqlite3.Row:
    row = engine.db.one("SELECT * FROM embed_tasks WHERE id=? AND version=?", (task_id, version))
    return found(row, task_id, "embed tasks", nested=version == "v2")


def _v1_metadata(row: sqlite3.Row) -> dict[str, Any]:
    req = loads(row["request"])
    meta: dict[str, Any] = {"video_clip_length": req["clip_length"], "video_embedding_scope": req["scopes"]}
    if req.get("video_url"):
        meta["input_url"] = req["video_url"]
    if req.get("input_filename"):
        meta["input_filename"] = req["input_filename"]
    if row["result"]:
        meta["duration"] = loads(row["result"])["duration"]
    return meta


def _v1_json(row: sqlite3.Row, *, segments: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": row["id"],
        "model_name": row["model_name"],
        "status": row["status"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "video_embedding": {"metadata": _v1_metadata(row)},
    }
    if segments and row["result"]:
        # v1 calls the visual vector `visual-text`.
        body["video_embedding"]["segments"] = [
            s | {"embedding_option": "visual-text"} if s["embedding_option"] == "visual" else s
            for s in loads(row["result"])["segments"]
        ]
    return body


async def get_embed_task(request: Request) -> Response:
    row = _get_task(engine_of(request), request.path_params["task_id"], "v1")
    return ok(_v1_json(row, segments=True))


async def get_embed_status(request: Request) -> Response:
    row = _get_task(engine_of(request), request.path_params["task_id"], "v1")
    body = _v1_json(row, segments=False)
    body.pop("created_at")
    body.pop("updated_at")
    return ok(body)


async def list_embed_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    rows = engine.db.all("SELECT * FROM embed_tasks WHERE version='v1' ORDER BY created_at DESC, rowid DESC")
    statuses = query_list(request, "status")
    items = [_v1_json(r, segments=False) for r in rows if not statuses or r["status"] in statuses]
    return ok(paged(items, page, limit))


# ----- embed v2 ---------------------------------------------------------------------------------------------
async def _media_bytes(
    request: Request, engine: Engine, source: Any, cap: int
) -> tuple[bytes | None, Path | None, dict[str, Any]]:
    if not isinstance(source, dict):
        raise invalid(
            "`media_source` must be an object with one of url, base64_string, asset_id.", nested=True
        )
    given = [k for k in ("url", "base64_string", "asset_id") if source.get(k)]
    if len(given) != 1:
        raise invalid("`media_source` needs exactly one of url, base64_string, asset_id.", nested=True)
    if source.get("url"):
        data = await _fetch(request, str(source["url"]), cap, name="media_source.url", nested=True)
        return data, None, {"input_url": source["url"]}
    if source.get("base64_string"):
        try:
            return base64.b64decode(str(source["base64_string"]), validate=True), None, {}
        except ValueError as exc:
            raise invalid("`media_source.base64_string` is not valid base64.", nested=True) from exc
    asset = get_asset_row(engine.db, str(source["asset_id"]), nested=True)
    if asset["status"] != "ready":
        raise invalid(f"Asset `{asset['id']}` is {asset['status']}; wait until it is ready.", nested=True)
    return None, Path(asset["path"]), {"input_filename": asset["filename"]}


async def embed_v2(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request, nested=True)
    input_type = body.get("input_type")
    if input_type is None:
        raise missing("input_type", nested=True)
    model = body.get("model_name")
    if model is None:
        raise missing("model_name", nested=True)
    if model != "marengo3.0":
        raise invalid("The sandbox embeds with `model_name` marengo3.0 only.", nested=True)
    spec = body.get(input_type) if isinstance(input_type, str) else None
    if input_type not in ("text", "image", "text_image", "audio"):
        raise invalid(
            f"`input_type` {input_type!r} is not supported synchronously here; use text, image, text_image "
            "or audio "
            "(video: POST /embed-v2/tasks).",
            nested=True,
        )
    if not isinstance(spec, dict):
        raise missing(str(input_type), f"Send an object `{input_type}` describing the input.", nested=True)
    data: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {"input_type": input_type}
    if input_type in ("text", "text_image"):
        text = spec.get("input_text")
        if not isinstance(text, str) or not text:
            raise missing(f"{input_type}.input_text", nested=True)
        data.append(
            {
                "embedding": floats(engine.analyzers.text.embed([text], "query")[0]),
                "embedding_option": None,
                "embedding_scope": None,
            }
        )
    if input_type in ("image", "text_image"):
        raw, path, meta = await _media_bytes(
            request, engine, spec.get("media_source"), engine.config.max_image_bytes
        )
        metadata |= meta
        source = raw if raw is not None else path
        assert source is not None  # _media_bytes gives bytes or an asset's path
        vec = await _image_vec(engine, source, nested=True)
        data.append(
            {
                "embedding": floats(vec),
                "embedding_option": None,
                "embedding_scope": None,
            }
        )
    if input_type == "audio":
        raw, path, meta = await _media_bytes(
            request, engine, spec.get("media_source"), engine.config.max_upload_bytes
        )
        metadata |= meta
        start, end = float(spec.get("start_sec") or 0.0), spec.get("end_sec")
        if raw is not None:
            vec = await _audio_vec(engine, raw, start, end)
        else:
            assert path is not None
            asset_path = path

            def features() -> FloatArray:
                try:
                    return audio_features(asset_path, engine.limits, start, end)
                except MediaError as exc:
                    raise invalid(exc.message, nested=True) from exc

            vec = await anyio.to_thread.run_sync(features)
        data.append(
            {
                "embedding": floats(vec),
                "embedding_option": "audio",
                "embedding_scope": "asset",
                "start_sec": start,
                "end_sec": end,
            }
        )
    return ok({"data": data, "metadata": metadata})


def _v2_list(spec: dict[str, Any], name: str, allowed: tuple[str, ...], default: list[str]) -> list[str]:
    value = spec.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        raise invalid(f"`video.{name}` must be a non-empty array of {', '.join(allowed)}.", nested=True)
    return list(dict.fromkeys(value))


def _v2_seconds(spec: dict[str, Any], name: str) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e7:
        raise invalid(f"`video.{name}` must be a number of seconds, 0 or more.", nested=True)
    return float(value)


def _v2_clips(spec: dict[str, Any], notes: list[str]) -> float:
    """The clip length a v2 ``segmentation`` asks for (Marengo 3.0's flat shape)."""
    seg = spec.get("segmentation")
    if seg is None:
        # The contract's default for 3.0 is dynamic with a 4 s minimum (see below for what that means here).
        seg = {"strategy": "dynamic", "dynamic": {"min_duration_sec": 4}}
    if not isinstance(seg, dict) or seg.get("strategy") not in ("fixed", "dynamic"):
        raise invalid(
            '`video.segmentation` must be {"strategy": "fixed", "fixed": {"duration_sec": 2-10}} or '
            '{"strategy": "dynamic", "dynamic": {"min_duration_sec": 2-5}} (the flat shape of marengo3.0).',
            nested=True,
        )
    fixed = seg["strategy"] == "fixed"
    field, low, high = ("duration_sec", 2, 10) if fixed else ("min_duration_sec", 2, 5)
    inner = seg.get(seg["strategy"])
    value = inner.get(field) if isinstance(inner, dict) else None
    if value is None and fixed:
        value = 6
    elif value is None:
        value = 4
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(
            f"`video.segmentation.{seg['strategy']}.{field}` must be between {low} and {high} seconds "
            f"(got {value!r}).",
            nested=True,
        )
    if not fixed:
        notes.append(
            f"Dynamic segmentation is approximated offline with fixed clips of min_duration_sec "
            f"({value:g} s): the sandbox does not cut at scene changes for embedding tasks."
        )
    return float(value)


async def create_v2_task(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request, nested=True)
    input_type = body.get("input_type")
    if input_type != "video":
        raise invalid("The sandbox runs `input_type` video as an embed-v2 task.", nested=True)
    if body.get("model_name") != "marengo3.0":
        raise invalid("`model_name` must be marengo3.0 (the only model the sandbox runs).", nested=True)
    spec = body.get("video")
    if not isinstance(spec, dict):
        raise missing("video", nested=True)
    source = spec.get("media_source")
    if not isinstance(source, dict):
        raise missing("video.media_source", nested=True)
    notes: list[str] = []
    clip = _v2_clips(spec, notes)
    start, end = _v2_seconds(spec, "start_sec") or 0.0, _v2_seconds(spec, "end_sec")
    if end is not None and end <= start:
        raise invalid("`video.end_sec` must be greater than `video.start_sec`.", nested=True)
    options = _v2_list(spec, "embedding_option", OPTIONS, list(OPTIONS))
    scopes = _v2_list(spec, "embedding_scope", ("clip", "asset"), ["clip", "asset"])
    kinds = _v2_list(
        spec, "embedding_type", ("separate_embedding", "fused_embedding"), ["separate_embedding"]
    )
    fused = "fused_embedding" in kinds
    if fused and len(options) < 2:
        raise invalid(
            "`video.embedding_type` fused_embedding combines modalities: give at least two "
            "`embedding_option` values (e.g. visual and audio).",
            nested=True,
        )
    if spec.get("time_based_metadata") is not None:
        raise invalid(
            "`video.time_based_metadata` needs marengo3.5 with fused_embedding; the sandbox runs marengo3.0 "
            "only. Leave it out here, or use the cloud API.",
            nested=True,
        )
    doc: dict[str, Any] = {
        "clip_length": clip,
        "start": start,
        "end": end,
        # v1's name for the whole-video scope, which the stored tasks of both versions share.
        "scopes": ["video" if s == "asset" else s for s in scopes],
        "options": options,
        "fused": fused,
        "separate": "separate_embedding" in kinds,
        "notes": notes,
        "path": None,
    }
    if source.get("asset_id"):
        asset = get_asset_row(engine.db, str(source["asset_id"]), nested=True)
        info = probe_of(asset)
        if info is not None and info.duration is not None:
            try:
                clip_spans(info.duration, clip, start, end)
            except MediaError as exc:
                raise invalid(exc.message, nested=True) from exc
        doc["asset_id"] = asset["id"]
    elif source.get("url"):
        doc["video_url"] = await checked_url(
            request, str(source["url"]), name="video.media_source.url", nested=True
        )
    else:
        raise invalid("`media_source` needs url or asset_id for video tasks.", nested=True)
    task_id = new_id()
    _insert_task(engine, task_id, "v2", "marengo3.0", doc)
    return ok({"_id": task_id, "status": "processing", "data": None}, 202)


def _v2_json(row: sqlite3.Row) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": row["id"],
        "status": row["status"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "data": None,
    }
    if row["result"]:
        result = loads(row["result"])
        req = loads(row["request"])
        body["data"] = [
            {
                "embedding": s["float"],
                # Tasks stored before options existed say visual-text, v1's name for the visual vector.
                "embedding_option": "visual"
                if s["embedding_option"] == "visual-text"
                else s["embedding_option"],
                "embedding_scope": "asset" if s["embedding_scope"] == "video" else "clip",
                "start_sec": s["start_offset_sec"],
                "end_sec": s["end_offset_sec"],
            }
            for s in result["segments"]
            if req.get("separate", True) or s["embedding_option"] == "fused"
        ]
        metadata: dict[str, Any] = {
            "input_type": "video",
            "embedding_options": req.get("options", ["visual"]) + (["fused"] if req.get("fused") else []),
            "embedding_scopes": ["asset" if s == "video" else s for s in req["scopes"]],
            "duration": result["duration"],
            "start_offset_sec": req["start"],
        }
        if float(req["clip_length"]).is_integer():
            metadata["clip_length"] = int(req["clip_length"])
        if req.get("end") is not None:
            metadata["end_offset_sec"] = req["end"]
        if req.get("video_url"):
            metadata["input_url"] = req["video_url"]
        notes = req.get("notes", []) + result.get("notes", [])
        if notes:
            # Not in the contract (its metadata is an open object): what the offline engine did differently.
            metadata["sandbox_notes"] = notes
        body["metadata"] = metadata
    if row["error"]:
        body["error"] = {"message": row["error"]}
    return body


async def get_v2_task(request: Request) -> Response:
    return ok(_v2_json(_get_task(engine_of(request), request.path_params["task_id"], "v2")))


async def list_v2_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    rows = engine.db.all("SELECT * FROM embed_tasks WHERE version='v2' ORDER BY created_at DESC, rowid DESC")
    items = [{k: v for k, v in _v2_json(r).items() if k != "data"} for r in rows]
    return ok(paged(items, page, limit))


routes: list[BaseRoute] = [
    Route("/embed", embed, methods=["POST"]),
    Route("/embed/tasks", create_embed_task, methods=["POST"]),
    Route("/embed/tasks", list_embed_tasks, methods=["GET"]),
    Route("/embed/tasks/{task_id}", get_embed_task, methods=["GET"]),
    Route("/embed/tasks/{task_id}/status", get_embed_status, methods=["GET"]),
    Route("/embed-v2", embed_v2, methods=["POST"]),
    Route("/embed-v2/tasks", create_v2_task, methods=["POST"]),
    Route("/embed-v2/tasks", list_v2_tasks, methods=["GET"]),
    Route("/embed-v2/tasks/{task_id}", get_v2_task, methods=["GET"]),
]
