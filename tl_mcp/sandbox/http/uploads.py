"""Multipart uploads: sessions with sandbox-served, signed part URLs; a session whose chunks are all
reported is joined into a new asset (which the ``asset`` job then processes)."""

from __future__ import annotations

import hashlib
import math
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, found, invalid, missing
from tl_mcp.sandbox.http.files import safe_filename
from tl_mcp.sandbox.media import MediaError, Probe
from tl_mcp.sandbox.metadata import check_metadata
from tl_mcp.sandbox.store import uploads
from tl_mcp.sandbox.store.assets import ASSET_TYPES
from tl_mcp.sandbox.store.db import now_iso
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.uploads import Upload
from tl_mcp.sandbox.web import (
    body_str,
    check_signature,
    engine_of,
    json_body,
    ok,
    page_params,
    paged,
    signed_url,
)
from tl_mcp.sandbox.work.asset import insert_asset


def _iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _url_expiry(session_expires: str) -> str:
    """A part URL lasts an hour, but never beyond its session."""
    return min(_iso_in(3600), session_expires)


def _part_urls(
    request: Request, upload_id: str, start: int, count: int, total: int, session_expires: str
) -> list[dict[str, Any]]:
    expires = _url_expiry(session_expires)
    return [
        {"chunk_index": i, "url": signed_url(request, f"/uploads/{upload_id}/{i}"), "expires_at": expires}
        for i in range(start, min(total, start + count - 1) + 1)
    ]


def _get_upload(engine: Engine, upload_id: str) -> Upload:
    # Sessions expire lazily: whenever sessions are looked at.
    uploads.expire(engine.db)
    return found(uploads.get(engine.db, upload_id), upload_id, "multipart uploads")


def _refuse_if_expired(row: Upload) -> None:
    if row.status == "expired":
        raise ApiError(
            403,
            "upload_expired",
            f"Upload session `{row.id}` expired at {row.expires_at} and accepts no more chunks, "
            "reports or part URLs. Start a new session with POST /assets/multipart-uploads and upload the "
            "file again.",
        )


async def create_upload(request: Request) -> Response:
    engine = engine_of(request)
    body = await json_body(request)
    filename = body_str(body, "filename", required=True, max_len=1024)
    kind = body.get("type")
    if kind is None:
        raise missing("type")
    if kind not in ASSET_TYPES:
        raise invalid(f"The `type` parameter must be video, audio or image (got {kind!r}).")
    total = body.get("total_size")
    if total is None:
        raise missing("total_size")
    if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
        raise invalid("The `total_size` parameter must be a positive integer number of bytes.")
    cap = engine.config.max_image_bytes if kind == "image" else 10 * 1024**3
    if total > cap:
        raise ApiError(
            400, "video_filesize_too_large", f"`total_size` exceeds the {cap}-byte limit for {kind}."
        )
    meta = check_metadata(body["user_metadata"]) if body.get("user_metadata") is not None else None
    chunk = engine.config.multipart_chunk_size
    chunks = math.ceil(total / chunk)
    upload_id, asset_id = new_id(), new_id()
    options = {
        "enable_hls": bool(body.get("enable_hls", False)),
        "enable_thumbnail": bool(body.get("enable_thumbnail", False)),
        "user_metadata": meta,
    }
    expires = _iso_in(engine.config.multipart_session_ttl_s)
    uploads.insert(
        engine.db,
        upload_id,
        asset_id=asset_id,
        filename=safe_filename(filename),
        type=kind,
        total_size=total,
        chunk_size=chunk,
        total_chunks=chunks,
        options=options,
        expires_at=expires,
    )
    return ok(
        {
            "upload_id": upload_id,
            "asset_id": asset_id,
            "upload_urls": _part_urls(request, upload_id, 1, min(chunks, 50), chunks, expires),
            "upload_headers": {},
            "chunk_size": chunk,
            "total_chunks": chunks,
            "expires_at": expires,
        },
        201,
    )


async def put_part(request: Request) -> Response:
    engine = engine_of(request)
    upload_id = request.path_params["upload_id"]
    index = request.path_params["chunk"]
    check_signature(request, f"/uploads/{upload_id}/{index}")
    row = _get_upload(engine, upload_id)
    _refuse_if_expired(row)
    if row.status != "active":
        raise ApiError(400, "parameter_invalid", f"Upload `{upload_id}` is {row.status}; start a new one.")
    if not 1 <= index <= row.total_chunks:
        raise invalid(f"Chunk index {index} is outside 1..{row.total_chunks}.")
    expected = row.chunk_size if index < row.total_chunks else row.total_size - row.chunk_size * (index - 1)
    parts = engine.asset_dir(row.asset_id) / "parts"
    parts.mkdir(exist_ok=True)
    dest = parts / f"{index:06d}"
    tmp = parts / f"{index:06d}.tmp"
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with tmp.open("wb") as out:
        async for piece in request.stream():
            size += len(piece)
            if size > expected:
                break
            digest.update(piece)
            out.write(piece)
    if size != expected:
        tmp.unlink(missing_ok=True)
        raise invalid(
            f"Chunk {index} must be exactly {expected} bytes "
            f"(received {size if size <= expected else 'more'})."
        )
    tmp.replace(dest)
    etag = digest.hexdigest()
    uploads.put_chunk(engine.db, upload_id, index, size=size, etag=etag)
    return Response(status_code=200, headers={"ETag": f'"{etag}"'})


async def report_chunks(request: Request) -> Response:
    engine = engine_of(request)
    upload_id = request.path_params["upload_id"]
    row = _get_upload(engine, upload_id)
    _refuse_if_expired(row)
    body = await json_body(request)
    items = body.get("completed_chunks")
    if items is None:
        raise missing("completed_chunks")
    if not isinstance(items, list) or not items:
        raise invalid("The `completed_chunks` parameter must be a non-empty array.")
    processed = duplicates = 0
    for item in items:
        if not isinstance(item, dict):
            raise invalid("Each entry of `completed_chunks` must be an object.")
        for field in ("chunk_index", "proof", "proof_type", "chunk_size"):
            if field not in item:
                raise missing(f"completed_chunks[].{field}")
        idx = item["chunk_index"]
        chunk = uploads.chunk(engine.db, upload_id, idx)
        if chunk is None:
            raise invalid(f"Chunk {idx} was reported but never uploaded; PUT it to its upload URL first.")
        if str(item["proof"]).strip('"') != chunk.etag:
            raise invalid(
                f"The proof (ETag) for chunk {idx} does not match the uploaded bytes; upload it again."
            )
        if chunk.reported:
            duplicates += 1
        else:
            uploads.mark_reported(engine.db, upload_id, idx)
            processed += 1
    total_completed = uploads.reported_count(engine.db, upload_id)
    result: dict[str, Any] = {
        "asset_id": row.asset_id,
        "processed_chunks": processed,
        "duplicate_chunks": duplicates,
        "total_completed": total_completed,
    }
    # Copying and probing a multi-GB file takes seconds: on a worker thread, so other requests go on.
    complete = total_completed == row.total_chunks and row.status == "active"
    if complete and await anyio.to_thread.run_sync(_assemble, engine, upload_id):
        result["url"] = signed_url(request, f"/media/{row.asset_id}/file")
    return ok(result)


#: Multipart uploads being assembled now. A report that completes the chunks while another one is still
#: assembling them (a client retrying the report, two reports racing) must not assemble them twice.
_ASSEMBLING: set[str] = set()
_ASSEMBLING_LOCK = threading.Lock()


def _assemble(engine: Engine, upload_id: str) -> bool:
    """Join the parts of a fully reported upload and register its asset; False (nothing done) when another
    report is assembling it or already has. Blocking: it copies and probes the whole file."""
    with _ASSEMBLING_LOCK:
        if upload_id in _ASSEMBLING:
            return False
        _ASSEMBLING.add(upload_id)
    try:
        row = uploads.get(engine.db, upload_id)
        if row is None or row.status != "active":
            return False
        asset_id = row.asset_id
        adir = engine.asset_dir(asset_id)
        dest = adir / f"source{Path(row.filename).suffix[:10]}"
        with dest.open("wb") as out:
            for i in range(1, row.total_chunks + 1):
                with (adir / "parts" / f"{i:06d}").open("rb") as part:
                    shutil.copyfileobj(part, out, 1024 * 1024)
        shutil.rmtree(adir / "parts", ignore_errors=True)
        options = row.options
        try:
            info: Probe | None = engine.probe(dest)
        except MediaError:
            info = None
        insert_asset(
            engine,
            asset_id,
            method="multipart",
            filename=row.filename,
            path=dest,
            info=info,
            user_metadata=options.get("user_metadata"),
            enable_hls=options.get("enable_hls", False),
            enable_thumbnail=options.get("enable_thumbnail", False),
        )
        uploads.set_completed(engine.db, upload_id)
        return True
    finally:
        with _ASSEMBLING_LOCK:
            _ASSEMBLING.discard(upload_id)


async def list_uploads(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    uploads.expire(engine.db)
    body = paged(uploads.active(engine.db), page, limit)
    body["data"] = [
        {
            "upload_id": r.id,
            "status": r.status,
            "total_size": r.total_size,
            "chunk_size": r.chunk_size,
            "total_chunks": r.total_chunks,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
        }
        for r in body["data"]
    ]
    return ok(body)


async def get_upload(request: Request) -> Response:
    engine = engine_of(request)
    upload_id = request.path_params["upload_id"]
    row = _get_upload(engine, upload_id)
    page, limit = page_params(request)
    chunks = uploads.chunks(engine.db, upload_id)
    completed = [c for c in chunks if c.reported]
    body = paged(chunks, page, limit)
    return ok(
        {
            "upload_id": upload_id,
            "status": row.status,
            "uploaded_chunks": [
                {
                    "index": c.idx,
                    "status": "completed" if c.reported else "pending",
                    "uploaded_at": c.uploaded_at,
                    "updated_at": c.updated_at,
                }
                for c in body["data"]
            ],
            "chunks_completed": len(completed),
            "chunks_failed": 0,
            "chunks_pending": row.total_chunks - len(completed),
            "page_info": body["page_info"],
            "total_size": row.total_size,
            "uploaded_size": sum(c.size for c in chunks),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


async def more_part_urls(request: Request) -> Response:
    engine = engine_of(request)
    upload_id = request.path_params["upload_id"]
    row = _get_upload(engine, upload_id)
    _refuse_if_expired(row)
    body = await json_body(request)
    start, count = body.get("start"), body.get("count")
    if start is None:
        raise missing("start")
    if count is None:
        raise missing("count")
    if not isinstance(start, int) or not 1 <= start <= row.total_chunks:
        raise invalid(f"The `start` parameter must be an integer in 1..{row.total_chunks}.")
    if not isinstance(count, int) or not 1 <= count <= 50:
        raise invalid("The `count` parameter must be an integer in 1..50.")
    urls = _part_urls(request, upload_id, start, count, row.total_chunks, row.expires_at)
    return ok(
        {
            "upload_id": upload_id,
            "start_index": start,
            "count": len(urls),
            "upload_urls": urls,
            "generated_at": now_iso(),
            "expires_at": _url_expiry(row.expires_at),
        }
    )


#: Before the /assets/{asset_id} routes, which would otherwise take "multipart-uploads" for an id.
routes: list[BaseRoute] = [
    Route("/assets/multipart-uploads", create_upload, methods=["POST"]),
    Route("/assets/multipart-uploads", list_uploads, methods=["GET"]),
    Route("/assets/multipart-uploads/{upload_id}", get_upload, methods=["GET"]),
    Route("/assets/multipart-uploads/{upload_id}", report_chunks, methods=["POST"]),
    Route("/assets/multipart-uploads/{upload_id}/presigned-urls", more_part_urls, methods=["POST"]),
    Route("/uploads/{upload_id}/{chunk:int}", put_part, methods=["PUT"]),
]
