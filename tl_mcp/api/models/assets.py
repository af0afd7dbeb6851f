"""Assets, multipart upload sessions, transcriptions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ._base import MetadataValue, PageInfo, RequestModel, WireModel

AssetStatus = Literal["processing", "ready", "failed"] | str


class AssetHLS(WireModel):
    manifest_url: str | None = None
    status: str | None = None


class AssetThumbnail(WireModel):
    representative_url: str | None = None
    status: str | None = None


class AssetError(WireModel):
    message: str | None = None


class Asset(WireModel):
    """`Asset` (create) and `AssetDetail` (get/list) in one model; detail fields are optional."""

    id: str = Field(alias="_id")
    method: str | None = None
    status: AssetStatus | None = None
    filename: str | None = None
    file_type: str | None = None
    created_at: str | None = None
    user_metadata: dict[str, Any] | None = None
    hls: AssetHLS | None = None
    thumbnail: AssetThumbnail | None = None
    technical_metadata: dict[str, Any] | None = None
    size: int | None = None
    duration: float | None = None
    error: AssetError | None = None


class TranscriptionSegment(WireModel):
    start: float
    end: float
    value: str
    speaker: str | None = None


class AssetTranscription(WireModel):
    status: str
    words: list[TranscriptionSegment] | None = None
    sentences: list[TranscriptionSegment] | None = None
    utterances: list[TranscriptionSegment] | None = None
    error: AssetError | None = None


class CreateMultipartUploadRequest(RequestModel):
    filename: str
    type: Literal["video", "audio", "image"]
    total_size: int
    enable_hls: bool | None = None
    enable_thumbnail: bool | None = None
    user_metadata: dict[str, MetadataValue] | None = None


class PresignedURL(WireModel):
    chunk_index: int
    url: str
    expires_at: str | None = None


class MultipartUploadSession(WireModel):
    upload_id: str
    asset_id: str
    upload_urls: list[PresignedURL] = Field(default_factory=list)
    upload_headers: dict[str, str] = Field(default_factory=dict)
    chunk_size: int
    total_chunks: int
    expires_at: str | None = None


class PresignedURLsRequest(RequestModel):
    start: int
    count: int


class PresignedURLs(WireModel):
    upload_id: str | None = None
    start_index: int | None = None
    count: int | None = None
    upload_urls: list[PresignedURL] = Field(default_factory=list)
    expires_at: str | None = None


class CompletedChunk(RequestModel):
    chunk_index: int
    proof: str
    proof_type: Literal["etag"] = "etag"
    chunk_size: int


class ReportChunksRequest(RequestModel):
    completed_chunks: list[CompletedChunk]


class ReportChunksResult(WireModel):
    url: str | None = None
    asset_id: str | None = None
    processed_chunks: int | None = None
    duplicate_chunks: int | None = None
    total_completed: int | None = None


class UploadedChunk(WireModel):
    index: int
    status: str
    error: Any | None = None


class MultipartUploadStatus(WireModel):
    upload_id: str
    status: str
    uploaded_chunks: list[UploadedChunk] = Field(default_factory=list)
    chunks_completed: int | None = None
    chunks_failed: int | None = None
    chunks_pending: int | None = None
    total_size: int | None = None
    uploaded_size: int | None = None
    page_info: PageInfo | None = None
