"""The ``index`` job: index an asset into an index once the asset's own job has analysed it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, invalid
from tl_mcp.sandbox.media import MediaError, Probe
from tl_mcp.sandbox.store import assets
from tl_mcp.sandbox.store.db import dumps, loads, now_iso
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
    row = engine.db.one("SELECT * FROM indexed_assets WHERE id=?", (ia_id,))
    if row is None or row["status"] in ("ready", "failed"):
        return
    asset = assets.get(engine.db, row["asset_id"])
    if asset is None:
        raise MediaError("resource_not_exist", "The asset was deleted before indexing finished.")
    if asset["status"] == "processing":
        # The asset job was queued first, so reaching this means it is being retried; check again later.
        engine.db.run(
            "UPDATE indexed_assets SET status='queued', updated_at=? WHERE id=?", (now_iso(), ia_id)
        )
        engine.jobs.enqueue("index", ia_id)
        return
    if asset["status"] == "failed":
        raise MediaError("video_file_broken", asset["error"] or "The asset failed to process.")
    engine.db.run("UPDATE indexed_assets SET status='indexing', updated_at=? WHERE id=?", (now_iso(), ia_id))
    info = Probe.from_dict(loads(asset["probe"]))
    try:
        check_indexable(engine, info, what="The video")
    except ApiError as exc:
        raise MediaError(exc.code, exc.message) from exc
    if not asset["analyzed"]:
        analyze_asset(engine, asset["id"], Path(asset["path"]), info)
    now = now_iso()
    engine.db.run(
        "UPDATE indexed_assets SET status='ready', indexed_at=?, updated_at=? WHERE id=?", (now, now, ia_id)
    )


def failed(engine: Engine, ref: str, message: str) -> None:
    engine.db.run(
        "UPDATE indexed_assets SET status='failed', error=?, updated_at=? WHERE id=?",
        (message, now_iso(), ref),
    )


def start_indexing(
    engine: Engine,
    index_id: str,
    asset_id: str,
    *,
    user_metadata: dict[str, Any] | None,
    enable_video_stream: bool | None,
    task_id: str | None = None,
) -> str:
    ia_id, now = new_id(), now_iso()
    with engine.db.tx() as conn:
        conn.execute(
            "INSERT INTO indexed_assets(id, index_id, asset_id, status, created_at, updated_at, "
            "user_metadata, "
            "task_id, enable_video_stream) VALUES(?,?,?,?,?,?,?,?,?)",
            (
                ia_id,
                index_id,
                asset_id,
                "pending",
                now,
                now,
                dumps(user_metadata) if user_metadata else None,
                task_id,
                None if enable_video_stream is None else int(enable_video_stream),
            ),
        )
        engine.jobs.add(conn, "index", ia_id)
    engine.jobs.wake()
    return ia_id
