"""Knowledge stores on top of the sandbox engine: asset facts, retrieval, and item processing as a durable
engine job (``ks_item``), so an item interrupted by a restart resumes like any other ingest work."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.knowledge.models import AssetInfo, Hit
from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.retrieval import retrieve, sources_for
from tl_mcp.sandbox.store import assets, ks_items, segments, texts
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.texts import TRANSCRIPT_SOURCES
from tl_mcp.sandbox.system_metadata import system_metadata
from tl_mcp.sandbox.work.asset import analyze_asset

log = logging.getLogger(__name__)

JOB_KIND = "ks_item"
#: Pause before re-checking an asset that is still uploading or being processed by its own job.
_RECHECK_S = 0.25
_DEFAULT_TIMEOUT_S = 900.0


def _asset_type(kind: str | None) -> str:
    return "image" if kind == "image" else "video"


def asset_info(engine: Engine, asset_id: str, link: Callable[[str], str] | None = None) -> AssetInfo | None:
    row = assets.get(engine.db, asset_id)
    if row is None:
        return None
    probe: dict[str, Any] = loads(row["probe"]) or {}
    kind = probe.get("kind") or row["kind"]
    thumb = segments.first_thumbnail(engine.db, asset_id)
    thumbnail_url = None
    if thumb is not None and link is not None:
        thumbnail_url = link(f"/media/{asset_id}/thumbs/{thumb}")
    return AssetInfo(
        asset_id=asset_id,
        asset_type="image" if kind == "image" else "video",
        status=str(row["status"]),
        filename=str(row["filename"]),
        duration=probe.get("duration"),
        fps=probe.get("fps"),
        width=probe.get("width"),
        height=probe.get("height"),
        codec_name=probe.get("video_codec"),
        size=row["size"] if row["size"] is not None else probe.get("size"),
        thumbnail_url=thumbnail_url,
    )


class EngineHooks:
    """:class:`~tl_mcp.sandbox.knowledge.models.SandboxHooks` backed by the engine of the running sandbox."""

    def __init__(self, engine: Engine, link: Callable[[str], str] | None = None) -> None:
        self.engine = engine
        self.link = link

    async def get_asset(self, asset_id: str) -> AssetInfo | None:
        return asset_info(self.engine, asset_id, self.link)

    def enqueue_item(self, item_id: str, timeout_s: float) -> None:
        self.engine.jobs.enqueue(JOB_KIND, item_id, {"deadline": time.time() + timeout_s})

    async def retrieve(
        self, query: str, asset_ids: Sequence[str], modalities: Sequence[str], limit: int
    ) -> list[Hit]:
        found = retrieve(self.engine, list(asset_ids), query, limit, sources=sources_for(modalities))
        hits: list[Hit] = []
        for m in found:
            modality = "audio" if m.modality in TRANSCRIPT_SOURCES else "visual"
            context = moment_context(self.engine, m.asset_id, m.start, m.end, exclude=m.text)
            thumb = self.link(m.thumbnail_path) if self.link and m.thumbnail_path else None
            hits.append(
                Hit(m.asset_id, m.start, m.end, m.text, m.modality, m.score, (modality,), context, thumb)
            )
        return hits

    async def neighbour(
        self, asset_id: str, start: float, end: float, *, before: bool, sources: Sequence[str] = ()
    ) -> Hit | None:
        near = texts.next_to(self.engine.db, asset_id, start, end, before=before, sources=sources)
        if near is None:
            return None
        s, e, text = float(near.start), float(near.end), near.text
        modality = "audio" if near.source in TRANSCRIPT_SOURCES else "visual"
        context = moment_context(self.engine, asset_id, s, e, exclude=text)
        return Hit(asset_id, s, e, text, near.source, 1.0, (modality,), context)


#: At most this many other pieces of text are quoted beside a moment's own.
_CONTEXT_LIMIT = 2


def moment_context(
    engine: Engine, asset_id: str, start: float, end: float, *, exclude: str
) -> tuple[tuple[str, str], ...]:
    """Other text of ``asset_id`` overlapping ``start``–``end``, one piece per source, in time order.

    A piece whose words all appear in the matched text (or in a piece already picked) adds nothing,
    e.g. a subtitle that repeats the speech, and is left out.
    """
    known = set(_words(exclude))
    picked: dict[str, str] = {}
    for piece in texts.overlapping(engine.db, asset_id, start, end):
        source, text = piece.source, " ".join(piece.text.split())
        words = set(_words(text))
        if source in picked or not words or words <= known:
            continue
        picked[source] = text
        known |= words
        if len(picked) == _CONTEXT_LIMIT:
            break
    return tuple(picked.items())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9$%]+", text.lower())


def run(engine: Engine, item_id: str, payload: dict[str, Any]) -> None:
    """Engine job: make the item's asset searchable, then mark the item ready (or failed, with why)."""
    item = ks_items.get(engine.db, item_id)
    if item is None:
        return  # deleted while queued
    asset = assets.get(engine.db, item.asset_id)
    if asset is None:
        raise RuntimeError(f"asset {item.asset_id} was deleted before the item was processed")
    if asset["status"] == "failed":
        raise RuntimeError(f"asset {item.asset_id} failed to process: {asset['error'] or 'unknown error'}")
    if item.status != "processing":
        ks_items.set_status(engine.db, item_id, "processing")
    if not asset["analyzed"]:
        if asset["status"] != "ready" or not asset["path"]:
            deadline = float(payload.get("deadline") or time.time() + _DEFAULT_TIMEOUT_S)
            if time.time() > deadline:
                raise RuntimeError(f"asset {item.asset_id} did not become ready in time")
            # The asset is still uploading or queued behind its own job: look again shortly.
            time.sleep(_RECHECK_S)
            engine.jobs.enqueue(JOB_KIND, item_id, payload)
            return
        info = Probe.from_dict(loads(asset["probe"]) or {})
        analyze_asset(engine, item.asset_id, Path(asset["path"]), info)
    described = asset_info(engine, item.asset_id)
    if described is not None:
        ks_items.set_system_metadata(engine.db, item_id, system_metadata(described, typed=True))
    if ks_items.get(engine.db, item_id) is not None:
        ks_items.set_status(engine.db, item_id, "ready")


def failed(engine: Engine, ref: str, message: str) -> None:
    ks_items.set_status(engine.db, ref, "failed", message)
