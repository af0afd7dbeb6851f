"""`POST /search` and `GET /search/{page_token}`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import WireModel


class SearchClip(WireModel):
    start: float
    end: float
    video_id: str | None = None
    rank: int | None = None
    score: float | None = None
    confidence: str | None = None
    thumbnail_url: str | None = None
    transcription: str | None = None
    user_metadata: dict[str, Any] | None = None


class SearchResult(WireModel):
    """A hit: a clip (`group_by=clip`) or a video with its clips (`group_by=video`, `id` + `clips`)."""

    start: float | None = None
    end: float | None = None
    video_id: str | None = None
    rank: int | None = None
    score: float | None = None
    confidence: str | None = None
    thumbnail_url: str | None = None
    transcription: str | None = None
    user_metadata: dict[str, Any] | None = None
    id: str | None = None
    clips: list[SearchClip] | None = None


class SearchPageInfo(WireModel):
    limit_per_page: int | None = None
    page_expires_at: str | None = None
    total_results: int | None = None
    total_inner_matches: int | None = None
    next_page_token: str | None = None
    prev_page_token: str | None = None


class SearchPool(WireModel):
    total_count: int | None = None
    total_duration: float | None = None
    index_id: str | None = None


class SearchPage(WireModel):
    data: list[SearchResult] = Field(default_factory=list)
    page_info: SearchPageInfo = Field(default_factory=SearchPageInfo)
    search_pool: SearchPool | None = None
    #: Not in the contract: what the sandbox says about how it searched (`notes`, `entity_search`).
    search_metadata: dict[str, Any] | None = None
