"""The knowledge-store layer's domain values and its seam to the rest of the sandbox.

The seam is :class:`SandboxHooks`: knowledge stores never read the asset tables or the search index
directly, they ask through it. That keeps this part testable on its own and lets the core sandbox
change its storage without touching knowledge stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

JsonObj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """What knowledge stores need to know about an uploaded asset."""

    asset_id: str
    asset_type: Literal["video", "image"]
    status: str
    filename: str
    duration: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    codec_name: str | None = None
    size: int | None = None
    thumbnail_url: str | None = None
    hls_url: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One moment the sandbox's retrieval found in an asset."""

    asset_id: str
    start: float
    end: float
    text: str
    source: str
    score: float
    modalities: tuple[str, ...] = ("visual",)
    #: Other text of the same asset during this moment, as (source, text): what the screen shows while
    #: the matched words are spoken, and the reverse. It lets an answer say what the moment is about.
    context: tuple[tuple[str, str], ...] = ()
    #: The picture of this moment (its scene's key frame), not of the asset's first scene.
    thumbnail_url: str | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence: a time range of a knowledge-store item and the text found there. What the
    store's search returns and Jockey cites; :class:`Hit` is the asset-level match it is built from."""

    item_id: str
    asset_id: str
    title: str
    start: float
    end: float
    text: str
    source: str
    score: float
    thumbnail_url: str | None = None
    hls_url: str | None = None
    #: Other text of the same moment, as (source, text); quoted after the match.
    context: tuple[tuple[str, str], ...] = ()

    def as_evidence(self) -> dict[str, Any]:
        """The form Jockey's own tool step reports (function_call_output) and the JSON filler reads."""
        return {
            "item_id": self.item_id,
            "title": self.title,
            "start_sec": round(self.start, 3),
            "end_sec": round(self.end, 3),
            "source": self.source,
            "text": self.text,
            "score": round(self.score, 4),
        }


class SandboxHooks(Protocol):
    """What the knowledge-store layer needs from the rest of the sandbox."""

    async def get_asset(self, asset_id: str) -> AssetInfo | None: ...

    def enqueue_item(self, item_id: str, timeout_s: float) -> None:
        """Start processing a knowledge-store item in the background (durably, surviving restarts)."""
        ...

    async def retrieve(
        self, query: str, asset_ids: Sequence[str], modalities: Sequence[str], limit: int
    ) -> list[Hit]:
        """Up to ``limit`` hits for ``query``, best first, one per stretch of the same text: a sentence
        said across a scene cut or a picture held past a segment is one hit over all of it."""
        ...

    async def neighbour(
        self, asset_id: str, start: float, end: float, *, before: bool, sources: Sequence[str] = ()
    ) -> Hit | None:
        """The piece of text said or shown just before ``start`` (or just after ``end``), of one of
        ``sources`` when given, if any."""
        ...


@dataclass(slots=True)
class JockeyOptions:
    """Tunables for knowledge stores and `/responses`; the running sandbox fills them from its config."""

    #: Seconds of silence on a `/responses` stream before a `keepalive` event (SDK 1.3.6: about 10 s).
    keepalive_interval_s: float = 10.0
    #: How long a knowledge-store search page token stays usable.
    page_token_ttl_s: float = 3600.0
    #: Injected think time before Jockey answers (the `stall` fault, for keepalive tests).
    think_delay_s: float = 0.0
    #: Pause between streamed text deltas; 0 streams as fast as the socket takes them.
    delta_delay_s: float = 0.0
    #: Longest a knowledge-store item waits for its asset to finish processing.
    item_timeout_s: float = 900.0
