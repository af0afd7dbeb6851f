"""Assets: direct and URL uploads, multipart sessions with sandbox-served part URLs, metadata, media."""

from __future__ import annotations

import hashlib
import logging
import math
import mimetypes
import shutil
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.db import dumps, loads, new_id, now_iso
from tl_mcp.sandbox.engine import FAILURE_HOOKS, JOB_HANDLERS, Engine
from tl_mcp.sandbox.errors import ApiError, found, invalid, missing, not_found
from tl_mcp.sandbox.media import MediaError, Probe
from tl_mcp.sandbox.routes.common import (
    body_str,
    check_metadata,
    check_signature,
    checked_url,
    engine_of,
    form_body,
    form_bool,
    form_file,
    form_str,
    json_body,
    metadata_from_json,
    no_content,
    ok,
    page_params,
    paged,
    query_bool,
    query_list,
    signed_url,
)

log = logging.getLogger(__name__)

ASSET_TYPES = ("video", "audio", "image")


# ----- asset rows and JSON, shared with the index and embed routes ------------------------------------------
def get_asset_row(engine: Engine, asset_id: str, *, nested: bool = False) -> sqlite3.Row:
    row = engine.db.one("SELECT * FROM assets WHERE id=?", (asset_id,))
    return found(row, asset_id, "assets", nested=nested)


def thumbnail_url(request: Request, asset_id: str, name: str | None) -> str | None:
    return signed_url(request, f"/media/{asset_id}/thumbs/{name}") if name else None


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
    info = Probe.from_dict(loads(row["probe"])) if row["probe"] else None
    if info is not None:
        body["size"] = info.size
        if info.duration is not None and info.kind != "image":
            body["duration"] = info.duration
        if row["status"] != "processing":
            body["technical_metadata"] = technical_metadata(info)
    if row["enable_thumbnail"]:
        first = engine.db.one(
            "SELECT thumbnail FROM segments WHERE asset_id=? AND thumbnail IS NOT NULL ORDER BY idx LIMIT 1",
            (row["id"],),
        )
        thumb: dict[str, Any] = {"status": _thumb_status(row, first is not None)}
        if first is not None:
            thumb["representative_url"] = thumbnail_url(request, row["id"], first["thumbnail"])
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


def safe_filename(name: str) -> str:
    cleaned = Path(name.replace("\\", "/")).name.strip() or "upload"
    return cleaned[:255]


async def save_upload(engine: Engine, upload: UploadFile, dest: Path, cap: int) -> int:
    """Copy an uploaded form file to ``dest`` in chunks; over ``cap`` bytes → 400 and nothing kept."""
    written = 0
    target = anyio.Path(dest)
    await target.parent.mkdir(parents=True, exist_ok=True)
    try:
        async with await anyio.open_file(dest, "wb") as out:
            while chunk := await upload.read(1024 * 1024):
                written += len(chunk)
                if written > cap:
                    raise ApiError(
                        400,
                        "video_filesize_too_large",
                        f"The file is larger than the {cap}-byte limit for direct uploads; use a multipart "
                        "upload (POST /assets/multipart-uploads) or method=url.",
                    )
                await out.write(chunk)
    except BaseException:
        await target.unlink(missing_ok=True)
        raise
    return written


async def probe_or_reject(engine: Engine, path: Path, *, cleanup: Path | None = None) -> Probe:
    """Probe an upload on a worker thread (the probe reads the whole file: seconds for a large one, which
    must not hold up every other request); bad media → 400, and ``cleanup`` (or the file) is removed."""

    def probe() -> Probe:
        try:
            return engine.probe(path)
        except MediaError as exc:
            shutil.rmtree(cleanup, ignore_errors=True) if cleanup else path.unlink(missing_ok=True)
            raise ApiError(
                400, exc.code, f"{exc.message} Upload a valid video, audio or image file."
            ) from exc

    return await anyio.to_thread.run_sync(probe)


def insert_asset(
    engine: Engine,
    asset_id: str,
    *,
    method: str,
    filename: str,
    path: Path | None,
    info: Probe | None,
    source_url: str | None = None,
    user_metadata: dict[str, Any] | None = None,
    enable_hls: bool = False,
    enable_thumbnail: bool = True,
) -> None:
    now = now_iso()
    with engine.db.tx() as conn:
        conn.execute(
            "INSERT INTO assets(id, created_at, updated_at, status, method, filename, file_type, kind, path, "
            "source_url, size, user_metadata, enable_hls, enable_thumbnail, probe) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                asset_id,
                now,
                now,
                "processing",
                method,
                filename,
                info.mime if info else mimetypes.guess_type(filename)[0],
                info.kind if info else None,
                str(path) if path else None,
                source_url,
                info.size if info else None,
                dumps(user_metadata) if user_metadata else None,
                int(enable_hls),
                int(enable_thumbnail),
                dumps(info.to_dict()) if info else None,
            ),
        )
        job_id = new_id()
        conn.execute(
            "INSERT INTO jobs(id, kind, ref, status, payload, created_at, updated_at) VALUES(?,?,?,?,?,?,?)",
            (job_id, "asset", asset_id, "queued", "{}", now, now),
        )
    engine._wake.set()


# ----- background processing --------------------------------------------------------------------------------
def process_asset(engine: Engine, asset_id: str, payload: dict[str, Any]) -> None:
    row = engine.db.one("SELECT * FROM assets WHERE id=?", (asset_id,))
    if row is None or row["status"] != "processing":
        return
    path = Path(row["path"]) if row["path"] else None
    if row["method"] == "url" and (path is None or not path.exists()):
        path = fetch_url(engine, asset_id, row["source_url"], row["filename"])
    if path is None or not path.exists():
        raise MediaError("video_file_broken", "The uploaded file is missing from the sandbox's media folder.")
    info = Probe.from_dict(loads(row["probe"])) if row["probe"] else engine.probe(path)
    engine.db.run(
        "UPDATE assets SET probe=?, kind=?, file_type=?, size=?, path=?, updated_at=? WHERE id=?",
        (dumps(info.to_dict()), info.kind, info.mime, info.size, str(path), now_iso(), asset_id),
    )
    engine.analyze_asset(asset_id, path, info)
    engine.db.run("UPDATE assets SET status='ready', updated_at=? WHERE id=?", (now_iso(), asset_id))


def fetch_url(engine: Engine, asset_id: str, url: str, filename: str) -> Path:
    import httpx2

    from tl_mcp.sandbox import urls

    cap = engine.config.max_url_bytes
    dest = engine.asset_dir(asset_id) / f"source{Path(filename).suffix[:10]}"
    partial = dest.with_suffix(dest.suffix + ".part")
    written = 0
    try:
        with (
            urls.client(
                allow_private=engine.config.allow_private_urls,
                timeout=engine.config.url_timeout_s,
                resolver=engine.config.resolver,
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code >= 400:
                raise MediaError("video_file_broken", f"Fetching the URL returned HTTP {resp.status_code}.")
            with partial.open("wb") as out:
                for chunk in resp.iter_bytes():
                    written += len(chunk)
                    if written > cap:
                        raise MediaError(
                            "video_filesize_too_large", f"The file at the URL is larger than {cap} bytes."
                        )
                    out.write(chunk)
    except urls.UrlRefused as exc:
        # Re-checked at fetch time: a redirect (or a changed DNS answer) may lead somewhere refused.
        partial.unlink(missing_ok=True)
        raise MediaError("parameter_invalid", exc.message) from exc
    except httpx2.TooManyRedirects as exc:
        partial.unlink(missing_ok=True)
        raise MediaError(
            "video_file_broken",
            f"The URL redirected more than {urls.MAX_REDIRECTS} times; give the final URL instead.",
        ) from exc
    except httpx2.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise MediaError(
            "video_file_broken", f"The URL could not be fetched ({type(exc).__name__})."
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(dest)
    info = engine.probe(dest)
    engine.db.run(
        "UPDATE assets SET path=?, probe=?, updated_at=? WHERE id=?",
        (str(dest), dumps(info.to_dict()), now_iso(), asset_id),
    )
    return dest


def _asset_failed(engine: Engine, kind: str, ref: str, message: str) -> None:
    if kind == "asset":
        engine.db.run(
            "UPDATE assets SET status='failed', error=?, updated_at=? WHERE id=? AND status='processing'",
            (message, now_iso(), ref),
        )
        # Indexing waiting on this asset cannot succeed either.
        for ia in engine.db.all(
            "SELECT id FROM indexed_assets WHERE asset_id=? AND status NOT IN ('ready','failed')", (ref,)
        ):
            engine.db.run(
                "UPDATE indexed_assets SET status='failed', error=?, updated_at=? WHERE id=?",
                (message, now_iso(), ia["id"]),
            )


JOB_HANDLERS["asset"] = process_asset
FAILURE_HOOKS.append(_asset_failed)


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
            adir = engine.asset_dir(asset_id)
            path = adir / f"source{Path(name).suffix[:10]}"
            try:
                await save_upload(engine, upload, path, cfg.max_upload_bytes)
            except BaseException:
                shutil.rmtree(adir, ignore_errors=True)
                raise
            info = await probe_or_reject(engine, path, cleanup=adir)
            if info.kind == "image" and info.size > cfg.max_image_bytes:
                shutil.rmtree(adir, ignore_errors=True)
                raise ApiError(
                    400, "parameter_invalid", f"Images may be at most {cfg.max_image_bytes} bytes."
                )
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
                raise invalid(f"The `url` parameter must be an http(s) URL (got {url[:200]!r}).")
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
    return ok(asset_json(request, get_asset_row(engine, asset_id)), 201)


async def list_assets(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    clauses, params = [], []
    ids = query_list(request, "asset_ids")
    if ids:
        clauses.append(f"id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    types = query_list(request, "asset_types")
    for t in types:
        if t not in (*ASSET_TYPES, "document"):
            raise invalid(
                f"The `asset_types` parameter must be among video, audio, image, document (got {t!r})."
            )
    if types:
        clauses.append(f"kind IN ({','.join('?' * len(types))})")
        params.extend(types)
    name = request.query_params.get("filename")
    if name:
        clauses.append("lower(filename) LIKE ?")
        params.append(f"%{name.lower()}%")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = engine.db.all(f"SELECT * FROM assets {where} ORDER BY created_at DESC, rowid DESC", params)
    body = paged(rows, page, limit)
    body["data"] = [asset_json(request, r) for r in body["data"]]
    return ok(body)


async def get_asset(request: Request) -> Response:
    return ok(asset_json(request, get_asset_row(engine_of(request), request.path_params["asset_id"])))


async def delete_asset(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    get_asset_row(engine, asset_id)
    force = query_bool(request, "force")
    refs = engine.db.all("SELECT id, index_id FROM indexed_assets WHERE asset_id=?", (asset_id,))
    if refs and not force:
        raise ApiError(
            409,
            "asset_in_use",
            f"Asset `{asset_id}` is indexed in {len(refs)} index(es); delete those indexed assets first or "
            "pass force=true to remove them too.",
        )
    with engine.db.tx() as conn:
        conn.execute("DELETE FROM indexed_assets WHERE asset_id=?", (asset_id,))
        conn.execute("DELETE FROM tasks WHERE asset_id=?", (asset_id,))
        conn.execute("DELETE FROM segments WHERE asset_id=?", (asset_id,))
        conn.execute("DELETE FROM texts WHERE asset_id=?", (asset_id,))
        conn.execute("DELETE FROM assets WHERE id=?", (asset_id,))
        conn.execute(
            "UPDATE jobs SET status='done' WHERE kind='asset' AND ref=? AND status='queued'", (asset_id,)
        )
    await anyio.to_thread.run_sync(engine.remove_asset_files, asset_id)
    return no_content()


async def update_metadata(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    row = get_asset_row(engine, asset_id)
    current: dict[str, Any] = loads(row["user_metadata"]) or {}
    if request.method == "DELETE":
        new: dict[str, Any] = {}
    else:
        body = await json_body(request)
        if "user_metadata" not in body:
            raise missing("user_metadata")
        incoming = body["user_metadata"]
        if not isinstance(incoming, dict):
            raise invalid("The `user_metadata` parameter must be a JSON object.")
        check_metadata(incoming)
        if request.method == "PUT":
            new = {k: v for k, v in incoming.items() if v not in (None, "", [])}
        else:
            new = dict(current)
            for k, v in incoming.items():
                if v is None:
                    new.pop(k, None)
                elif v not in ("", []):
                    new[k] = v
    engine.db.run(
        "UPDATE assets SET user_metadata=?, updated_at=? WHERE id=?",
        (dumps(new) if new else None, now_iso(), asset_id),
    )
    return Response(status_code=200)


async def asset_indexed_assets(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    get_asset_row(engine, asset_id)
    page, limit = page_params(request)
    rows = engine.db.all(
        "SELECT ia.id, i.id AS index_id, i.name FROM indexed_assets ia JOIN indexes i ON i.id = ia.index_id "
        "WHERE ia.asset_id=? ORDER BY ia.created_at DESC",
        (asset_id,),
    )
    body = paged(rows, page, limit)
    body["data"] = [
        {"_id": r["id"], "index": {"_id": r["index_id"], "name": r["name"]}} for r in body["data"]
    ]
    return ok(body)


async def asset_transcription(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    row = get_asset_row(engine, asset_id)
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
    cues = engine.db.all(
        "SELECT start, end, text, source FROM texts WHERE asset_id=? AND source IN ('subtitle','speech') "
        "ORDER BY start",
        (asset_id,),
    )
    if not cues:
        raise ApiError(
            404,
            "resource_not_exist",
            f"Asset `{asset_id}` has no transcription: it has no subtitle track and no speech was recognised "
            "(speech recognition needs the sandbox's ml extra).",
        )
    body: dict[str, Any] = {"status": "ready"}
    if "sentences" in include:
        body["sentences"] = [{"start": c["start"], "end": c["end"], "value": c["text"]} for c in cues]
    if "utterances" in include:
        body["utterances"] = [{"start": c["start"], "end": c["end"], "value": c["text"]} for c in cues]
    if "words" in include:
        body["words"] = [w for c in cues for w in _words(c["start"], c["end"], c["text"])]
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


# ----- multipart uploads ------------------------------------------------------------------------------------
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


def _expire_uploads(engine: Engine) -> None:
    """Sessions past ``expires_at`` turn ``expired`` (lazily: whenever sessions are looked at)."""
    now = now_iso()
    engine.db.run(
        "UPDATE uploads SET status='expired', updated_at=? WHERE status='active' AND expires_at <= ?",
        (now, now),
    )


def _get_upload(engine: Engine, upload_id: str) -> sqlite3.Row:
    _expire_uploads(engine)
    row = engine.db.one("SELECT * FROM uploads WHERE id=?", (upload_id,))
    return found(row, upload_id, "multipart uploads")


def _refuse_if_expired(row: sqlite3.Row) -> None:
    if row["status"] == "expired":
        raise ApiError(
            403,
            "upload_expired",
            f"Upload session `{row['id']}` expired at {row['expires_at']} and accepts no more chunks, "
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
    upload_id, asset_id, now = new_id(), new_id(), now_iso()
    options = {
        "enable_hls": bool(body.get("enable_hls", False)),
        "enable_thumbnail": bool(body.get("enable_thumbnail", False)),
        "user_metadata": meta,
    }
    expires = _iso_in(engine.config.multipart_session_ttl_s)
    engine.db.run(
        "INSERT INTO uploads(id, asset_id, filename, type, total_size, chunk_size, total_chunks, status, "
        "options, "
        "created_at, updated_at, expires_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            upload_id,
            asset_id,
            safe_filename(filename),
            kind,
            total,
            chunk,
            chunks,
            "active",
            dumps(options),
            now,
            now,
            expires,
        ),
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
    if row["status"] != "active":
        raise ApiError(400, "parameter_invalid", f"Upload `{upload_id}` is {row['status']}; start a new one.")
    if not 1 <= index <= row["total_chunks"]:
        raise invalid(f"Chunk index {index} is outside 1..{row['total_chunks']}.")
    expected = (
        row["chunk_size"]
        if index < row["total_chunks"]
        else row["total_size"] - row["chunk_size"] * (index - 1)
    )
    parts = engine.asset_dir(row["asset_id"]) / "parts"
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
    now = now_iso()
    engine.db.run(
        "INSERT INTO upload_chunks(upload_id, idx, size, etag, uploaded_at, updated_at) VALUES(?,?,?,?,?,?) "
        "ON CONFLICT(upload_id, idx) DO UPDATE SET size=excluded.size, etag=excluded.etag, "
        "updated_at=excluded.updated_at",
        (upload_id, index, size, etag, now, now),
    )
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
        chunk = engine.db.one("SELECT * FROM upload_chunks WHERE upload_id=? AND idx=?", (upload_id, idx))
        if chunk is None:
            raise invalid(f"Chunk {idx} was reported but never uploaded; PUT it to its upload URL first.")
        if str(item["proof"]).strip('"') != chunk["etag"]:
            raise invalid(
                f"The proof (ETag) for chunk {idx} does not match the uploaded bytes; upload it again."
            )
        if chunk["reported"]:
            duplicates += 1
        else:
            engine.db.run("UPDATE upload_chunks SET reported=1 WHERE upload_id=? AND idx=?", (upload_id, idx))
            processed += 1
    done = engine.db.one(
        "SELECT COUNT(*) AS n FROM upload_chunks WHERE upload_id=? AND reported=1", (upload_id,)
    )
    total_completed = int(done["n"]) if done else 0
    result: dict[str, Any] = {
        "asset_id": row["asset_id"],
        "processed_chunks": processed,
        "duplicate_chunks": duplicates,
        "total_completed": total_completed,
    }
    # Copying and probing a multi-GB file takes seconds: on a worker thread, so other requests go on.
    complete = total_completed == row["total_chunks"] and row["status"] == "active"
    if complete and await anyio.to_thread.run_sync(_assemble, engine, upload_id):
        result["url"] = signed_url(request, f"/media/{row['asset_id']}/file")
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
        row = engine.db.one("SELECT * FROM uploads WHERE id=?", (upload_id,))
        if row is None or row["status"] != "active":
            return False
        asset_id = row["asset_id"]
        adir = engine.asset_dir(asset_id)
        dest = adir / f"source{Path(row['filename']).suffix[:10]}"
        with dest.open("wb") as out:
            for i in range(1, row["total_chunks"] + 1):
                with (adir / "parts" / f"{i:06d}").open("rb") as part:
                    shutil.copyfileobj(part, out, 1024 * 1024)
        shutil.rmtree(adir / "parts", ignore_errors=True)
        options = loads(row["options"])
        try:
            info: Probe | None = engine.probe(dest)
        except MediaError:
            info = None
        insert_asset(
            engine,
            asset_id,
            method="multipart",
            filename=row["filename"],
            path=dest,
            info=info,
            user_metadata=options.get("user_metadata"),
            enable_hls=options.get("enable_hls", False),
            enable_thumbnail=options.get("enable_thumbnail", False),
        )
        engine.db.run(
            "UPDATE uploads SET status='completed', updated_at=? WHERE id=?", (now_iso(), upload_id)
        )
        return True
    finally:
        with _ASSEMBLING_LOCK:
            _ASSEMBLING.discard(upload_id)


async def list_uploads(request: Request) -> Response:
    engine = engine_of(request)
    page, limit = page_params(request)
    _expire_uploads(engine)
    rows = engine.db.all("SELECT * FROM uploads WHERE status='active' ORDER BY created_at DESC")
    body = paged(rows, page, limit)
    body["data"] = [
        {
            "upload_id": r["id"],
            "status": r["status"],
            "total_size": r["total_size"],
            "chunk_size": r["chunk_size"],
            "total_chunks": r["total_chunks"],
            "created_at": r["created_at"],
            "expires_at": r["expires_at"],
        }
        for r in body["data"]
    ]
    return ok(body)


async def get_upload(request: Request) -> Response:
    engine = engine_of(request)
    upload_id = request.path_params["upload_id"]
    row = _get_upload(engine, upload_id)
    page, limit = page_params(request)
    chunks = engine.db.all("SELECT * FROM upload_chunks WHERE upload_id=? ORDER BY idx", (upload_id,))
    completed = [c for c in chunks if c["reported"]]
    body = paged(chunks, page, limit)
    return ok(
        {
            "upload_id": upload_id,
            "status": row["status"],
            "uploaded_chunks": [
                {
                    "index": c["idx"],
                    "status": "completed" if c["reported"] else "pending",
                    "uploaded_at": c["uploaded_at"],
                    "updated_at": c["updated_at"],
                }
                for c in body["data"]
            ],
            "chunks_completed": len(completed),
            "chunks_failed": 0,
            "chunks_pending": row["total_chunks"] - len(completed),
            "page_info": body["page_info"],
            "total_size": row["total_size"],
            "uploaded_size": sum(c["size"] for c in chunks),
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
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
    if not isinstance(start, int) or not 1 <= start <= row["total_chunks"]:
        raise invalid(f"The `start` parameter must be an integer in 1..{row['total_chunks']}.")
    if not isinstance(count, int) or not 1 <= count <= 50:
        raise invalid("The `count` parameter must be an integer in 1..50.")
    urls = _part_urls(request, upload_id, start, count, row["total_chunks"], row["expires_at"])
    return ok(
        {
            "upload_id": upload_id,
            "start_index": start,
            "count": len(urls),
            "upload_urls": urls,
            "generated_at": now_iso(),
            "expires_at": _url_expiry(row["expires_at"]),
        }
    )


# ----- media files (signed URLs) ----------------------------------------------------------------------------
async def media_thumb(request: Request) -> Response:
    engine = engine_of(request)
    asset_id, name = request.path_params["asset_id"], request.path_params["name"]
    check_signature(request, f"/media/{asset_id}/thumbs/{name}")
    path = engine.media_dir / asset_id / "thumbs" / Path(name).name
    if not path.is_file():
        raise not_found(name, "thumbnails")
    return FileResponse(path, media_type="image/jpeg")


def media_asset_id(engine: Engine, media_id: str) -> str:
    """The asset behind ``media_id``: an asset id, a video (indexed asset) id or a knowledge-store item id."""
    for sql in (
        "SELECT id AS asset_id FROM assets WHERE id=?",
        "SELECT asset_id FROM indexed_assets WHERE id=?",
        "SELECT asset_id FROM ks_items WHERE id=?",
    ):
        try:
            row = engine.db.one(sql, (media_id,))
        except sqlite3.OperationalError:
            continue  # ks_items exists only when the knowledge-store part of the sandbox is loaded
        if row is not None:
            return str(row["asset_id"])
    raise not_found(media_id, "assets, videos or knowledge-store items")


async def thumbnail_at(request: Request) -> Response:
    """Sandbox extension (no TwelveLabs route): the JPEG of the scene at ``?time=`` seconds of a video.

    Signed thumbnail URLs name the sandbox's address, which changes with every embedded start; this route
    lets a client that holds only (media id, seconds) fetch the same picture from whichever sandbox now
    serves the data folder.
    """
    engine = engine_of(request)
    asset_id = media_asset_id(engine, request.path_params["media_id"])
    raw = request.query_params.get("time", "0")
    try:
        at = float(raw)
    except ValueError:
        raise invalid(f"The `time` parameter must be a number of seconds (got {raw!r}).") from None
    if not math.isfinite(at) or at < 0:
        raise invalid(f"The `time` parameter must be a finite number of seconds, at least 0 (got {raw!r}).")
    segs = engine.db.all(
        "SELECT start, end, thumbnail FROM segments WHERE asset_id=? AND thumbnail IS NOT NULL ORDER BY idx",
        (asset_id,),
    )
    if not segs:
        raise ApiError(
            404,
            "thumbnail_not_available",
            f"Asset `{asset_id}` has no thumbnails (it is not analysed yet, or it is audio). Wait until "
            "it is ready, then ask again.",
        )
    if at > max(float(s["end"]) for s in segs) + 0.5:
        raise invalid(f"The `time` parameter ({at:g} s) is past the end of asset `{asset_id}`.")

    # The scene that holds the moment; a time between scenes (or a still image) takes the nearest one.
    def distance(seg: sqlite3.Row) -> tuple[bool, float]:
        start, end = float(seg["start"]), float(seg["end"])
        return not start <= at < end, min(abs(at - start), abs(at - end))

    seg = min(segs, key=distance)
    path = engine.media_dir / asset_id / "thumbs" / Path(str(seg["thumbnail"])).name
    if not path.is_file():
        raise not_found(str(seg["thumbnail"]), "thumbnails")
    return FileResponse(path, media_type="image/jpeg")


async def media_file(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    check_signature(request, f"/media/{asset_id}/file")
    row = get_asset_row(engine, asset_id)
    if not row["path"] or not await anyio.Path(row["path"]).is_file():
        raise not_found(asset_id, "media files")
    return FileResponse(row["path"], media_type=row["file_type"] or "application/octet-stream")


routes: list[BaseRoute] = [
    Route("/assets", create_asset, methods=["POST"]),
    Route("/assets", list_assets, methods=["GET"]),
    Route("/assets/multipart-uploads", create_upload, methods=["POST"]),
    Route("/assets/multipart-uploads", list_uploads, methods=["GET"]),
    Route("/assets/multipart-uploads/{upload_id}", get_upload, methods=["GET"]),
    Route("/assets/multipart-uploads/{upload_id}", report_chunks, methods=["POST"]),
    Route("/assets/multipart-uploads/{upload_id}/presigned-urls", more_part_urls, methods=["POST"]),
    Route("/assets/{asset_id}", get_asset, methods=["GET"]),
    Route("/assets/{asset_id}", delete_asset, methods=["DELETE"]),
    Route("/assets/{asset_id}/user-metadata", update_metadata, methods=["PUT", "PATCH", "DELETE"]),
    Route("/assets/{asset_id}/indexed-assets", asset_indexed_assets, methods=["GET"]),
    Route("/assets/{asset_id}/transcription", asset_transcription, methods=["GET"]),
    Route("/uploads/{upload_id}/{chunk:int}", put_part, methods=["PUT"]),
    Route("/media/{asset_id}/thumbs/{name}", media_thumb, methods=["GET"]),
    Route("/media/{asset_id}/file", media_file, methods=["GET"]),
    Route("/thumbnails/{media_id}", thumbnail_at, methods=["GET"]),
]

#: Paths served without an API key because they carry a signature instead.
SIGNED_PREFIXES = ("/uploads/", "/media/")
