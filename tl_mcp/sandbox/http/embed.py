"""Embeddings, v1: POST /embed (text/image/audio) and the v1 video embedding tasks (/embed/tasks). Text
vectors come from the text embedder, images and video clips from frame features, audio from a spectral
fingerprint; the three spaces are separate, so cross-modal similarity is not meaningful offline (the
response metadata says which embedder produced each vector). Embed v2 is in :mod:`embed_v2`."""

from __future__ import annotations

import sqlite3
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.errors import invalid, missing
from tl_mcp.sandbox.http.files import fetch_bytes, receive_media, safe_filename
from tl_mcp.sandbox.http.vectors import audio_vector, image_vector
from tl_mcp.sandbox.media import MediaError, Probe
from tl_mcp.sandbox.store import embed_tasks
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.web import (
    checked_url,
    engine_of,
    form_body,
    form_file,
    form_list,
    form_str,
    ok,
    page_params,
    paged,
    query_list,
)
from tl_mcp.sandbox.work.embed import clip_spans, floats, start_task

MODELS = ("marengo3.0", "Marengo-retrieval-2.7")


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
                raise invalid(
                    "`text` is longer than marengo3.0's 500 tokens; shorten it, or embed it with marengo3.5 "
                    "(POST /embed-v2, multi_input), which can truncate it (auto_truncate)."
                )
            body["text_embedding"] = {
                "segments": [{"float": floats(engine.analyzers.text.embed([text], "query")[0])}],
                "metadata": {"embedder": engine.analyzers.text.name},
            }
        if image_url or image_file:
            cap = engine.config.max_image_bytes
            if image_url:
                data = await fetch_bytes(request, image_url, cap, name="image_url")
            else:
                data = await image_file.read(cap + 1)  # type: ignore[union-attr]
            if len(data) > cap:
                raise invalid(f"The image is larger than {cap} bytes.")
            vec = await image_vector(engine, data)
            meta = {"input_url": image_url} if image_url else {"input_filename": image_file.filename}  # type: ignore[union-attr]
            body["image_embedding"] = {
                "segments": [{"float": floats(vec)}],
                "metadata": meta | {"embedder": engine.analyzers.image.name},
            }
        if audio_url or audio_file:
            cap = engine.config.max_upload_bytes
            if audio_url:
                data = await fetch_bytes(request, audio_url, cap, name="audio_url")
            else:
                data = await audio_file.read(cap + 1)  # type: ignore[union-attr]
            vec = await audio_vector(engine, data, offset, None)
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
    start_task(engine, "v1", model, request_doc, task_id=task_id)
    return ok({"_id": task_id})


def _num(raw: str | None, name: str, default: float) -> float:
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise invalid(f"`{name}` must be a number (got {raw!r}).") from exc


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
    row = embed_tasks.get_task(engine_of(request).db, request.path_params["task_id"], "v1")
    return ok(_v1_json(row, segments=True))


async def get_embed_status(request: Request) -> Response:
    row = embed_tasks.get_task(engine_of(request).db, request.path_params["task_id"], "v1")
    body = _v1_json(row, segments=False)
    body.pop("created_at")
    body.pop("updated_at")
    return ok(body)


async def list_embed_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    rows = embed_tasks.of_version(engine.db, "v1")
    statuses = query_list(request, "status")
    items = [_v1_json(r, segments=False) for r in rows if not statuses or r["status"] in statuses]
    return ok(paged(items, page, limit))


routes: list[BaseRoute] = [
    Route("/embed", embed, methods=["POST"]),
    Route("/embed/tasks", create_embed_task, methods=["POST"]),
    Route("/embed/tasks", list_embed_tasks, methods=["GET"]),
    Route("/embed/tasks/{task_id}", get_embed_task, methods=["GET"]),
    Route("/embed/tasks/{task_id}/status", get_embed_status, methods=["GET"]),
]
