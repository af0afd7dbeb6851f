"""Media files behind signed URLs (an asset's file, its thumbnails) and the thumbnail-at-a-time route."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, invalid, not_found
from tl_mcp.sandbox.store import assets, indexed_assets, ks_items, segments
from tl_mcp.sandbox.store.assets import get_asset_row
from tl_mcp.sandbox.store.segments import Segment
from tl_mcp.sandbox.web import (
    check_signature,
    engine_of,
)


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
    if assets.exists(engine.db, media_id):
        return media_id
    video_asset = indexed_assets.asset_id_of(engine.db, media_id)
    if video_asset is not None:
        return video_asset
    item_asset = ks_items.asset_id_of(engine.db, media_id)
    if item_asset is not None:
        return item_asset
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
    segs = segments.of_asset(engine.db, asset_id, with_thumbnail=True)
    if not segs:
        raise ApiError(
            404,
            "thumbnail_not_available",
            f"Asset `{asset_id}` has no thumbnails (it is not analysed yet, or it is audio). Wait until "
            "it is ready, then ask again.",
        )
    if at > max(s.end for s in segs) + 0.5:
        raise invalid(f"The `time` parameter ({at:g} s) is past the end of asset `{asset_id}`.")

    # The scene that holds the moment; a time between scenes (or a still image) takes the nearest one.
    def distance(seg: Segment) -> tuple[bool, float]:
        return not seg.start <= at < seg.end, min(abs(at - seg.start), abs(at - seg.end))

    seg = min(segs, key=distance)
    path = engine.media_dir / asset_id / "thumbs" / Path(str(seg.thumbnail)).name
    if not path.is_file():
        raise not_found(str(seg.thumbnail), "thumbnails")
    return FileResponse(path, media_type="image/jpeg")


async def media_file(request: Request) -> Response:
    engine = engine_of(request)
    asset_id = request.path_params["asset_id"]
    check_signature(request, f"/media/{asset_id}/file")
    row = get_asset_row(engine.db, asset_id)
    if not row["path"] or not await anyio.Path(row["path"]).is_file():
        raise not_found(asset_id, "media files")
    return FileResponse(row["path"], media_type=row["file_type"] or "application/octet-stream")


routes: list[BaseRoute] = [
    Route("/media/{asset_id}/thumbs/{name}", media_thumb, methods=["GET"]),
    Route("/media/{asset_id}/file", media_file, methods=["GET"]),
    Route("/thumbnails/{media_id}", thumbnail_at, methods=["GET"]),
]
