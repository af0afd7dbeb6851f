"""Indexes, indexed assets, videos, legacy tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from ._base import MetadataValue, Number, RequestModel, WireModel
from .embed import IndexedEmbedding


class IndexModel(RequestModel):
    model_name: str = "marengo3.0"
    model_options: list[str] = Field(default_factory=lambda: ["visual", "audio"])


class CreateIndexRequest(RequestModel):
    index_name: str
    models: list[IndexModel]
    addons: list[str] | None = None


class IndexModelInfo(WireModel):
    model_name: str
    model_options: list[str] = Field(default_factory=list)


class Index(WireModel):
    id: str = Field(alias="_id")
    index_name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    expires_at: str | None = None
    total_duration: float | None = None
    video_count: Number | None = None
    models: list[IndexModelInfo] = Field(default_factory=list)
    addons: list[str] = Field(default_factory=list)


class CreatedId(WireModel):
    id: str = Field(alias="_id")


class IndexAssetRequest(RequestModel):
    asset_id: str
    enable_video_stream: bool | None = None
    user_metadata: dict[str, MetadataValue] | None = None


class SystemMetadata(WireModel):
    filename: str | None = None
    duration: float | None = None
    fps: float | None = None
    # The spec types these as `number`, and real answers may carry floats.
    width: Number | None = None
    height: Number | None = None
    size: Number | None = None


class TranscriptionEntry(WireModel):
    start: float
    end: float
    value: str


class VideoHLS(WireModel):
    video_url: str | None = None
    thumbnail_urls: list[str] | None = None
    status: str | None = None
    updated_at: str | None = None


class _IndexedVideoFields(WireModel):
    """What the API says of a video in an index, in both its views."""

    id: str = Field(alias="_id")
    asset_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    indexed_at: str | None = None
    system_metadata: SystemMetadata | None = None
    user_metadata: dict[str, Any] | None = None
    hls: VideoHLS | None = None
    embedding: IndexedEmbedding | None = None
    transcription: list[TranscriptionEntry] | None = None


class IndexedAsset(_IndexedVideoFields):
    status: str | None = None


class Video(_IndexedVideoFields):
    """The legacy per-index view of an indexed video (`/indexes/{id}/videos`)."""


class IndexRef(WireModel):
    id: str = Field(alias="_id")
    name: str | None = None


class AssetIndexing(WireModel):
    """Where an asset is indexed (`GET /assets/{id}/indexed-assets`): the video id and its index."""

    id: str = Field(alias="_id")
    index: IndexRef | None = None


class TaskRef(WireModel):
    id: str = Field(alias="_id")
    video_id: str | None = None


class Task(WireModel):
    id: str = Field(alias="_id")
    index_id: str | None = None
    video_id: str | None = None
    status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    system_metadata: SystemMetadata | None = None
    hls: VideoHLS | None = None


#: A media range of a list filter: `{"gte": 10, "lte": 60}` (either bound may be left out).
Bounds = Mapping[Literal["gte", "lte"], float]


def list_filter_params(
    *,
    filename: str | None = None,
    ranges: Mapping[str, Bounds] | None = None,
    created_at: str | None = None,
    updated_at: str | None = None,
    user_metadata: Mapping[str, str | float | bool] | None = None,
) -> dict[str, Any]:
    """The query filters of the indexed-asset and video lists, encoded as the SDK encodes nested
    objects (`duration[gte]=10`, `user_metadata[team]=red`). `ranges` keys: duration, fps, width,
    height, size; `created_at` / `updated_at`: RFC 3339, "on or after"."""
    params: dict[str, Any] = {"filename": filename, "created_at": created_at, "updated_at": updated_at}
    for name, bounds in (ranges or {}).items():
        for op, bound in bounds.items():
            params[f"{name}[{op}]"] = bound
    for key, value in (user_metadata or {}).items():
        params[f"user_metadata[{key}]"] = ("true" if value else "false") if isinstance(value, bool) else value
    return {k: v for k, v in params.items() if v is not None}
