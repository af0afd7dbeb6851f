"""Incoming files, for every route that takes one (assets, multipart uploads, legacy tasks, embed): the
name kept, the bytes saved within a cap, and the probe that turns bad media into a 400."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx2
from starlette.datastructures import UploadFile
from starlette.requests import Request

from tl_mcp.redaction import display_url
from tl_mcp.sandbox import urls
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, invalid
from tl_mcp.sandbox.media import MediaError, Probe
from tl_mcp.sandbox.web import checked_url, engine_of


def safe_filename(name: str) -> str:
    cleaned = Path(name.replace("\\", "/")).name.strip() or "upload"
    return cleaned[:255]


async def receive_media(
    engine: Engine, upload: UploadFile, dest: Path, *, check: Callable[[Probe], None] | None = None
) -> Probe:
    """Save an uploaded form file to ``dest`` within the direct-upload cap and probe it; when the file is
    too large, is not media, or fails ``check`` (which raises :class:`ApiError`), the 4xx is raised and the
    folder ``dest`` was saved in is removed: nothing of a refused upload is kept."""
    folder = dest.parent
    try:
        await save_upload(engine, upload, dest, engine.config.max_upload_bytes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    info = await probe_or_reject(engine, dest, cleanup=folder)
    if check is not None:
        try:
            check(info)
        except ApiError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return info


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


async def fetch_bytes(request: Request, url: str, cap: int, *, name: str, nested: bool = False) -> bytes:
    """The body of ``url`` (an http(s) URL the sandbox may fetch), at most ``cap`` bytes; any failure is a
    400 naming the field ``name``."""
    shown = display_url(url)[:100]
    if not url.startswith(("http://", "https://")):
        raise invalid(f"`{name}` must be an http(s) URL (got {shown!r}).", nested=nested)
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
            raise invalid(f"{shown} could not be fetched ({type(exc).__name__}).", nested=nested) from exc
    if resp.status_code >= 400:
        raise invalid(f"{shown} returned HTTP {resp.status_code}.", nested=nested)
    if len(resp.content) > cap:
        raise invalid(f"{shown} is larger than {cap} bytes.", nested=nested)
    return resp.content
