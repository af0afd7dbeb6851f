"""Embeddings, v2: the synchronous POST /embed-v2 and video embedding tasks on /embed-v2/tasks (JSON bodies,
nested errors). What each vector is offline: see :mod:`tl_mcp.sandbox.work.embed`."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import invalid, missing
from tl_mcp.sandbox.http.files import fetch_bytes
from tl_mcp.sandbox.http.vectors import audio_vector, image_vector
from tl_mcp.sandbox.media import MediaError
from tl_mcp.sandbox.perception.audio import audio_features
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.store import embed_tasks
from tl_mcp.sandbox.store.assets import get_asset_row, probe_of
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.web import (
    checked_url,
    engine_of,
    json_body,
    ok,
    page_params,
    paged,
)
from tl_mcp.sandbox.work.embed import OPTIONS, clip_spans, floats, start_task


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
        data = await fetch_bytes(request, str(source["url"]), cap, name="media_source.url", nested=True)
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


#: Marengo 3.5's text window (SDK 1.3.6 delta §7.2); the sandbox counts words as tokens.
TEXT_WINDOW_35 = 2000


def _text_35(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    """Marengo 3.5 text through ``multi_input``: over the window, 400 unless ``auto_truncate`` cuts it."""
    spec = body.get("multi_input")
    if not isinstance(spec, dict):
        raise missing("multi_input", "Send `multi_input: {input_text}`.", nested=True)
    if spec.get("media_sources"):
        raise invalid(
            "The sandbox embeds marengo3.5 multi_input text only (no media_sources); embed media with "
            "marengo3.0.",
            nested=True,
        )
    text = spec.get("input_text")
    if not isinstance(text, str) or not text.strip():
        raise missing("multi_input.input_text", nested=True)
    truncate = body.get("auto_truncate", False)
    if not isinstance(truncate, bool):
        raise invalid("`auto_truncate` must be a boolean.", nested=True)
    words = text.split()
    cut = len(words) > TEXT_WINDOW_35
    if cut and not truncate:
        raise invalid(
            f"`multi_input.input_text` has {len(words)} tokens, over marengo3.5's {TEXT_WINDOW_35}; shorten "
            "it, or set `auto_truncate: true` to embed its first tokens.",
            nested=True,
        )
    kept = " ".join(words[:TEXT_WINDOW_35]) if cut else text
    usage: dict[str, Any] = {"input_tokens": {"text": min(len(words), TEXT_WINDOW_35)}, "truncated": cut}
    if cut:
        usage["truncation_reason"] = "model_context_window"
    return {
        "data": [
            {
                "embedding": floats(engine.analyzers.text.embed([kept], "query")[0]),
                "embedding_option": None,
                "embedding_scope": None,
            }
        ],
        "metadata": {"input_type": "multi_input", "embedder": engine.analyzers.text.name},
        "usage": usage,
    }


async def embed_v2(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request, nested=True)
    input_type = body.get("input_type")
    if input_type is None:
        raise missing("input_type", nested=True)
    model = body.get("model_name")
    if model is None:
        raise missing("model_name", nested=True)
    if model == "marengo3.5" and input_type == "multi_input":
        return ok(_text_35(engine, body))
    if model != "marengo3.0":
        raise invalid(
            "The sandbox embeds with `model_name` marengo3.0 (and marengo3.5 for text-only multi_input).",
            nested=True,
        )
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
        vec = await image_vector(engine, source, nested=True)
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
            vec = await audio_vector(engine, raw, start, end)
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
    task_id = start_task(engine, "v2", "marengo3.0", doc)
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
    return ok(_v2_json(embed_tasks.get_task(engine_of(request).db, request.path_params["task_id"], "v2")))


async def list_v2_tasks(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    rows = embed_tasks.of_version(engine.db, "v2")
    items = [{k: v for k, v in _v2_json(r).items() if k != "data"} for r in rows]
    return ok(paged(items, page, limit))


routes: list[BaseRoute] = [
    Route("/embed-v2", embed_v2, methods=["POST"]),
    Route("/embed-v2/tasks", create_v2_task, methods=["POST"]),
    Route("/embed-v2/tasks", list_v2_tasks, methods=["GET"]),
    Route("/embed-v2/tasks/{task_id}", get_v2_task, methods=["GET"]),
]
