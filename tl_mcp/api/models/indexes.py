"""Indexes, indexed assets, videos, legacy tasks."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import MetadataValue, Number, RequestModel, WireModel


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
    embedding: dict[str, Any] | None = None
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
