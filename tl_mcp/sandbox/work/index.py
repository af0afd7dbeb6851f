"""The ``index`` job: index an asset into an index once the asset's own job has analysed it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, invalid
from tl_mcp.sandbox.media import MediaError, Probe
from tl_mcp.sandbox.store import assets, indexed_assets
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.work.asset import analyze_asset


def check_indexable(engine: Engine, info: Probe | None, *, what: str) -> None:
    if info is None:
        return
    if info.kind == "image":
        raise invalid(f"{what} is an image; indexes hold video and audio. Use it as an image query instead.")
    if info.duration is not None and info.duration < engine.config.min_video_s:
        raise ApiError(
            400,
            "video_duration_too_short",
            f"{what} is {info.duration:.2f} s long; indexing needs at least {engine.config.min_video_s:g} s.",
        )


def run(engine: Engine, ia_id: str, payload: dict[str, Any]) -> None:
    item = indexed_assets.get(engine.db, ia_id)
    if item is None or item.status in ("ready", "failed"):
        return
    asset = assets.get(engine.db, item.asset_id)
    if asset is None:
        raise MediaError("resource_not_exist", "The asset was deleted before indexing finished.")
    if asset["status"] == "processing":
        # The asset job was queued first, so reaching this means it is being retried; check again later.
        indexed_assets.set_status(engine.db, ia_id, "queued")
        engine.jobs.enqueue("index", ia_id)
        return
    if asset["status"] == "failed":
        raise MediaError("video_file_broken", asset["error"] or "The asset failed to process.")
    indexed_assets.set_status(engine.db, ia_id, "indexing")
    info = assets.probe_of(asset)
    try:
        check_indexable(engine, info, what="The video")
    except ApiError as exc:
        raise MediaError(exc.code, exc.message) from exc
    if not asset["analyzed"]:
        if info is None:
            raise MediaError("video_file_broken", "The asset was never probed; upload it again.")
        analyze_asset(engine, asset["id"], Path(asset["path"]), info)
    indexed_assets.set_ready(engine.db, ia_id)


def failed(engine: Engine, ref: str, message: str) -> None:
    indexed_assets.set_failed(engine.db, ref, message)


def start_indexing(
    engine: Engine,
    index_id: str,
    asset_id: str,
    *,
    user_metadata: dict[str, Any] | None,
    enable_video_stream: bool | None,
    task_id: str | None = None,
) -> str:
    ia_id = new_id()
    with engine.db.tx() as conn:
        indexed_assets.insert(
            conn,
            ia_id,
            index_id,
            asset_id,
            user_metadata=user_metadata,
            task_id=task_id,
            enable_video_stream=enable_video_stream,
        )
        engine.jobs.add(conn, "index", ia_id)
    engine.jobs.wake()
    return ia_id
