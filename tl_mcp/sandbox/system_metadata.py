"""``system_metadata``: what TwelveLabs reports about the media behind an indexed asset, a legacy task, a
video or a knowledge-store item — one function for all of them.

The contract has two shapes on purpose. Indexed assets, videos and tasks carry one flat object
(``IndexedAssetSystemMetadata``: filename, duration, fps, width, height, size). A knowledge-store item's is
a ``oneOf`` on ``asset_type`` (``KnowledgeStoreItemSystemMetadata``), which also names the codec; both
shapes leave out what a still image cannot have (duration, frame rate).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol

from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.store.assets import probe_of


class MediaFacts(Protocol):
    """What ``system_metadata`` reads; :class:`ProbedFile` and the knowledge stores' ``AssetInfo`` are it."""

    @property
    def asset_type(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def duration(self) -> float | None: ...
    @property
    def fps(self) -> float | None: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def codec_name(self) -> str | None: ...
    @property
    def size(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class ProbedFile:
    """An asset's file name and what probing its file found (``None`` while nothing has probed it)."""

    filename: str
    probe: Probe | None

    @classmethod
    def of_asset(cls, row: sqlite3.Row | None) -> ProbedFile | None:
        """The media of an asset row (``None`` for no row: its asset was deleted)."""
        return None if row is None else cls(row["filename"], probe_of(row))

    @property
    def asset_type(self) -> str:
        return self.probe.kind if self.probe else "video"

    @property
    def duration(self) -> float | None:
        return self.probe.duration if self.probe else None

    @property
    def fps(self) -> float | None:
        return self.probe.fps if self.probe else None

    @property
    def width(self) -> int | None:
        return self.probe.width if self.probe else None

    @property
    def height(self) -> int | None:
        return self.probe.height if self.probe else None

    @property
    def codec_name(self) -> str | None:
        return self.probe.video_codec if self.probe else None

    @property
    def size(self) -> int | None:
        return self.probe.size if self.probe else None


def system_metadata(media: MediaFacts | None, *, typed: bool = False) -> dict[str, Any]:
    """The ``system_metadata`` object of ``media`` (``{}`` for none): the flat indexed-asset shape, or with
    ``typed`` the knowledge-store item's (``asset_type`` and ``codec_name`` as well). Unknown values are
    left out rather than sent as null."""
    if media is None:
        return {}
    fields: dict[str, Any] = {}
    if typed:
        fields["asset_type"] = media.asset_type
    fields.update(filename=media.filename, duration=media.duration, fps=media.fps)
    fields.update(width=media.width, height=media.height)
    if typed:
        fields["codec_name"] = media.codec_name
    fields["size"] = media.size
    if media.asset_type == "image":
        fields.pop("duration")
        fields.pop("fps")
    return {k: v for k, v in fields.items() if v is not None}
