"""Assets: direct and URL uploads, listing, metadata, transcriptions; the asset JSON other routes share."""

from __future__ import annotations

import logging
import mimetypes
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.redaction import display_url
from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.http.files import receive_media, safe_filename
from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.metadata import apply_metadata_edit, metadata_from_json
from tl_mcp.sandbox.store import assets, entities, indexed_assets, segments, tasks, texts
from tl_mcp.sandbox.store.assets import get_asset_row
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.web import (
    checked_url,
    engine_of,
    form_body,
    form_bool,
    form_file,
    form_str,
    json_body,
    no_content,
    ok,
    page_params,
    paged,
    query_bool,
    query_list,
    signed_url,
    thumbnail_url,
)
from tl_mcp.sandbox.work.asset import insert_asset

log = logging.getLogger(__name__)


# ----- asset JSON ------------------------------------------------------------------------------------------
def asset_json(request: Request, row: sqlite3.Row) -> dict[str, Any]:
    engine = engine_of(request)
    body: dict[str, Any] = {
        "_id": row["id"],
        "method": row["method"],
        "status": row["status"],
        "filename": row["filename"],
        "file_type": row["file_type"]
        or mimetypes.guess_type(row["filename"])[0]
        or "application/octet-stream",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    meta = loads(row["user_metadata"])
    if meta:
        body["user_metadata"] = meta
    info = assets.probe_of(row)
    if info is not None:
        body["size"] = info.size
        if info.duration is not None and info.kind != "image":
            body["duration"] = info.duration
        if row["status"] != "processing":
            body["technical_metadata"] = technical_metadata(info)
    if row["enable_thumbnail"]:
        first = segments.first_thumbnail(engine.db, row["id"])
        thumb: dict[str, Any] = {"status": _thumb_status(row, first is not None)}
        if first is not None:
            thumb["representative_url"] = thumbnail_url(request, row["id"], first)
        body["thumbnail"] = thumb
    if row["enable_hls"] and info is not None and info.kind in ("video", "audio"):
        hls: dict[str, Any] = {"status": "ready" if row["status"] == "ready" else "processing"}
        if row["status"] == "ready":
            # No HLS packager offline: the original file is served progressively instead.
            hls["manifest_url"] = signed_url(request, f"/media/{row['id']}/file")
        body["hls"] = hls
    if row["status"] == "failed":
        body["error"] = {"message": row["error"] or "processing failed"}
    return body


def _thumb_status(row: sqlite3.Row, have: bool) -> str:
    if have:
        return "ready"
    if row["status"] == "failed":
        return "error"
    return "processing" if row["status"] == "processing" else "error"


def technical_metadata(info: Probe) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "file_size_bytes": info.size,
        "file_mime_type": info.mime,
        "file_container_format": info.container,
    }
    if info.kind == "image":
        meta.update(image_width=info.width, image_height=info.height, image_format=info.container)
        return meta
    meta.update(
        has_audio=info.audio_streams > 0,
        total_video_streams=info.video_streams,
        total_audio_streams=info.audio_streams,
    )
    if info.kind == "video":
        meta.update(
            video_codec=info.video_codec,
            video_width=info.width,
            video_height=info.height,
            video_fps=info.fps,
            video_duration_seconds=info.duration,
        )
    if info.audio_streams:
        meta.update(
            audio_codec=info.audio_codec,
            audio_sample_rate=info.audio_sample_rate,
            audio_channels=info.audio_channels,
            audio_duration_seconds=info.duration,
        )
    if info.bit_rate:
        meta["video_bitrate_bps" if info.kind == "video" else "audio_bitrate_bps"] = info.bit_rate
    return {k: v for k, v in meta.items() if v is not None}


# ----- /assets ----------------------------------------------------------------------------------------------
async def create_asset(request: Request) -> Response:
    engine = engine_of(request)
    cfg = engine.config
    form = await form_body(request, max_bytes=cfg.max_upload_bytes)
    try:
        method = form_str(form, "method", required=True)
        if method not in ("direct", "url"):
            raise invalid(f"The `method` parameter must be direct or url (got {method!r}).")
        user_metadata = metadata_from_json(form_str(form, "user_metadata"))
        enable_hls = form_bool(form, "enable_hls", True)
        enable_thumbnail = form_bool(form, "enable_thumbnail", True)
        filename = form_str(form, "filename")
        asset_id = new_id()
        if method == "direct":
            upload = form_file(form, "file")
            if upload is None:
                raise missing("file", "Send the media as the `file` form field when method=direct.")
            name = safe_filename(filename or upload.filename or "upload")
            path = engine.asset_dir(asset_id) / f"source{Path(name).suffix[:10]}"

            def image_within_cap(info: Probe) -> None:
                if info.kind == "image" and info.size > cfg.max_image_bytes:
                    raise ApiError(
                        400, "parameter_invalid", f"Images may be at most {cfg.max_image_bytes} bytes."
                    )

            info = await receive_media(engine, upload, path, check=image_within_cap)
            insert_asset(
                engine,
                asset_id,
                method="direct",
                filename=name,
                path=path,
                info=info,
                user_metadata=user_metadata,
                enable_hls=enable_hls,
                enable_thumbnail=enable_thumbnail,
            )
        else:
            url = form_str(form, "url")
            if url is None:
                raise missing("url", "Send the media URL as the `url` form field when method=url.")
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise invalid(f"The `url` parameter must be an http(s) URL (got {display_url(url)[:200]!r}).")
            await checked_url(request, url, name="url")
            name = safe_filename(filename or unquote(Path(parsed.path).name) or "download")
            insert_asset(
                engine,
                asset_id,
                method="url",
                filename=name,
                path=None,
                info=None,
                source_url=url,
                user_metadata=user_metadata,
                enable_hls=enable_hls,
                enable_thumbnail=enable_thumbnail,
            )
    finally:
        await form.close()
    return ok(asset_json(request, get_asset_row(engine.db, asset_id)), 201)


async def list_assets(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    types = query_list(request, "asset_types")
    for t in types:
        if t not in (*assets.ASSET_TYPES, "document"):
            raise invalid(
                f"The `asset_types` parameter must be among video, audio, image, document (got {t!r})."
            )
    rows = assets.search(
        engine.db,
        ids=query_list(request, "asset_ids"),
        kinds=types,
        filename=request.query_params.get("filename"),
    )
    body = paged(rows, page, limit)
    body["data"] = [asset_json(request, r) for r in body["data"]]
    return ok(body)


async def get_asset(request: Request) -> Response:
    return ok(asset_json(request, get_asset_row(engine_of(request).db, request.path_params["asset_id"])))


async def delete_asset(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    get_asset_row(engine.db, asset_id)
    force = query_bool(request, "force")
    refs = indexed_assets.of_asset(engine.db, asset_id)
    if refs and not force:
        raise ApiError(
            409,
            "asset_in_use",
            f"Asset `{asset_id}` is indexed in {len(refs)} index(es); delete those indexed assets first or "
            "pass force=true to remove them too.",
        )
    with engine.db.tx() as conn:
        indexed_assets.delete_of_asset(conn, asset_id)
        tasks.delete_of_asset(conn, asset_id)
        segments.delete_of_asset(conn, asset_id)
        texts.delete_of_asset(conn, asset_id)
        assets.delete(conn, asset_id)
        entities.unlink_asset(conn, asset_id)
        engine.jobs.drop_queued(conn, "asset", asset_id)
    await anyio.to_thread.run_sync(engine.remove_asset_files, asset_id)
    return no_content()


async def update_metadata(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    row = get_asset_row(engine.db, asset_id)
    current: dict[str, Any] = loads(row["user_metadata"]) or {}
    if request.method == "DELETE":
        new: dict[str, Any] = {}
    else:
        body = await json_body(request)
        if "user_metadata" not in body:
            raise missing("user_metadata")
        new = apply_metadata_edit(current, body["user_metadata"], replace=request.method == "PUT")
    assets.set_user_metadata(engine.db, asset_id, new)
    return Response(status_code=200)


async def asset_indexed_assets(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    get_asset_row(engine.db, asset_id)
    page, limit = page_params(request)
    body = paged(indexed_assets.of_asset(engine.db, asset_id), page, limit)
    body["data"] = [
        {"_id": ia_id, "index": {"_id": index_id, "name": name}} for ia_id, index_id, name in body["data"]
    ]
    return ok(body)


async def asset_transcription(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    row = get_asset_row(engine.db, asset_id)
    include = set(query_list(request, "include") or ["words"])
    bad = include - {"words", "sentences", "utterances"}
    if bad:
        raise invalid(f"The `include` parameter takes words, sentences, utterances (got {sorted(bad)}).")
    if row["kind"] not in (None, "video", "audio"):
        raise ApiError(404, "resource_not_exist", f"Asset `{asset_id}` is an image and has no transcription.")
    if row["status"] == "failed":
        return ok({"status": "failed", "error": {"message": row["error"] or "processing failed"}})
    if row["status"] != "ready":
        return ok({"status": "processing"})
    cues = texts.transcript(engine.db, asset_id)
    if not cues:
        raise ApiError(
            404,
            "resource_not_exist",
            f"Asset `{asset_id}` has no transcription: it has no subtitle track and no speech was recognised "
            "(speech recognition needs the sandbox's ml extra).",
        )
    body: dict[str, Any] = {"status": "ready"}
    if "sentences" in include:
        body["sentences"] = [{"start": c.start, "end": c.end, "value": c.text} for c in cues]
    if "utterances" in include:
        body["utterances"] = [{"start": c.start, "end": c.end, "value": c.text} for c in cues]
    if "words" in include:
        body["words"] = [w for c in cues for w in _words(c.start, c.end, c.text)]
    return ok(body)


def _words(start: float, end: float, text: str) -> list[dict[str, Any]]:
    # Cue-level timing spread evenly over the words: word timestamps are estimates, cue bounds are exact.
    words = text.split()
    if not words:
        return []
    step = max(0.0, end - start) / len(words)
    return [
        {"start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3), "value": w}
        for i, w in enumerate(words)
    ]


routes: list[BaseRoute] = [
    Route("/assets", create_asset, methods=["POST"]),
    Route("/assets", list_assets, methods=["GET"]),
    Route("/assets/{asset_id}", get_asset, methods=["GET"]),
    Route("/assets/{asset_id}", delete_asset, methods=["DELETE"]),
    Route("/assets/{asset_id}/user-metadata", update_metadata, methods=["PUT", "PATCH", "DELETE"]),
    Route("/assets/{asset_id}/indexed-assets", asset_indexed_assets, methods=["GET"]),
    Route("/assets/{asset_id}/transcription", asset_transcription, methods=["GET"]),
]
