"""Jockey's citations: each annotation of an answer becomes a `Moment` that names the item, asset and
video it is about, so the caller can follow it into get_video, analyze_video or a search."""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from tl_mcp.api.errors import TwelveLabsError
from tl_mcp.api.models import ResponseObject, ResponseRequest
from tl_mcp.server.state import AppState
from tl_mcp.server.thumbnails import DURABLE_THUMBNAIL, thumbnail_uri

log = logging.getLogger(__name__)


class Moment(BaseModel):
    # A cited moment: which item/asset/video, when, and how it looks.
    marker: str = Field(description="As in the text, e.g. [1].")
    item_id: str | None = None
    asset_id: str | None = Field(default=None, description="For analyze_video.")
    video_id: str | None = Field(default=None, description="With index_id, for get_video.")
    index_id: str | None = None
    collection_id: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None
    title: str | None = None
    thumbnail_url: str | None = None
    thumbnail_uri: str | None = Field(default=None, description=DURABLE_THUMBNAIL)

    def ids(self) -> str:
        """The ids a citation can be followed by, as the answer's text lists them."""
        named = [
            ("item", self.item_id),
            ("asset", self.asset_id),
            ("video", self.video_id),
            ("index", self.index_id),
        ]
        return ", ".join(f"{kind} {value}" for kind, value in named if value)


class _Resolver:
    """Finds, once per turn, the asset behind each cited item and the video made from that asset, so a
    citation can be followed into get_video, analyze_video or a search. Cloud annotations name only the
    item (`ksi_…`); a failed lookup leaves the ids out, it never costs the answer."""

    def __init__(self, state: AppState, request: ResponseRequest) -> None:
        self.state, self.request = state, request
        self._assets: dict[str, str | None] = {}
        self._videos: dict[str, tuple[str, str] | None] = {}

    async def sole_item(self) -> str | None:
        """The one item a bare time range (`[00:00-00:09]`, no item) can be about, if there is one."""
        picked = [s.id for s in self.request.selections or [] if s.kind == "item"]
        if self.request.selections:
            return picked[0] if len(picked) == len(self.request.selections) == 1 else None
        try:
            page = await self.state.client.knowledge.items.list(
                self.request.knowledge_store_id, page=1, page_limit=2
            )
        except TwelveLabsError as exc:
            log.info("citation: listing the store's items failed: %s", type(exc).__name__)
            return None
        return page.data[0].id if len(page.data) == 1 else None

    async def asset(self, item_id: str) -> str | None:
        if item_id not in self._assets:
            try:
                item = await self.state.client.knowledge.items.get(self.request.knowledge_store_id, item_id)
                self._assets[item_id] = item.asset_id
            except TwelveLabsError as exc:
                log.info("citation: item %s not resolved: %s", item_id, type(exc).__name__)
                self._assets[item_id] = None
        return self._assets[item_id]

    async def video(self, asset_id: str) -> tuple[str, str] | None:
        """(index_id, video_id) of the newest video made from `asset_id`."""
        if asset_id not in self._videos:
            try:
                page = await self.state.client.assets.indexings(asset_id, page=1, page_limit=1)
                found = page.data[0] if page.data else None
                self._videos[asset_id] = (found.index.id, found.id) if found and found.index else None
            except TwelveLabsError as exc:
                log.info("citation: videos of asset %s not resolved: %s", asset_id, type(exc).__name__)
                self._videos[asset_id] = None
        return self._videos[asset_id]


async def cited_moments(state: AppState, request: ResponseRequest, response: ResponseObject) -> list[Moment]:
    cites = response.annotations
    resolve = _Resolver(state, request)
    bare = [c for c in cites if not c.annotation.item_id and not c.annotation.collection_id]
    sole = await resolve.sole_item() if bare else None
    out = []
    for cite in cites:
        ann = cite.annotation
        extra = ann.model_extra or {}
        item_id = ann.item_id or (sole if not ann.collection_id else None)
        asset_id = _str(extra.get("asset_id")) or (await resolve.asset(item_id) if item_id else None)
        placed = await resolve.video(asset_id) if asset_id else None
        media = (item_id or asset_id) if state.backend == "sandbox" else None
        out.append(
            Moment(
                marker=cite.marker,
                item_id=item_id,
                asset_id=asset_id,
                video_id=placed[1] if placed else None,
                index_id=placed[0] if placed else None,
                collection_id=ann.collection_id,
                start_sec=ann.start_sec,
                end_sec=ann.end_sec,
                title=ann.title,
                thumbnail_url=ann.thumbnail_url,
                thumbnail_uri=thumbnail_uri(media, ann.start_sec) if media else None,
            )
        )
    return out


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
