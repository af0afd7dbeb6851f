"""Embeddings: v1 `/embed` (text/image/audio) and video tasks on `/embed-v2/tasks`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ._base import RequestModel, WireModel


class EmbeddingSegment(WireModel):
    float_: list[float] = Field(default_factory=list, alias="float")
    start_offset_sec: float | None = None
    end_offset_sec: float | None = None
    embedding_option: str | None = None
    embedding_scope: str | None = None


class EmbeddingPart(WireModel):
    segments: list[EmbeddingSegment] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    error_message: str | None = None


class EmbeddingUsage(WireModel):
    """Marengo 3.5's token count of a request, and whether its text was cut to the context window."""

    input_tokens: dict[str, int] | None = None
    truncated: bool | None = None
    truncation_reason: str | None = None


class Embedding(WireModel):
    """`POST /embed` result; exactly the modalities that were sent are filled. A Marengo 3.5 text embedding
    (`POST /embed-v2`, multi_input) is given the same shape, with its `usage`."""

    model_name: str | None = None
    text_embedding: EmbeddingPart | None = None
    image_embedding: EmbeddingPart | None = None
    audio_embedding: EmbeddingPart | None = None
    usage: EmbeddingUsage | None = None

    @property
    def parts(self) -> list[EmbeddingPart]:
        return [p for p in (self.text_embedding, self.image_embedding, self.audio_embedding) if p is not None]

    @property
    def vectors(self) -> list[list[float]]:
        return [seg.float_ for part in self.parts for seg in part.segments]


class MediaSource(RequestModel):
    """Exactly one of url / asset_id / base64_string (embed-v2 `media_source`)."""

    url: str | None = None
    asset_id: str | None = None
    base64_string: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MediaSource:
        given = [v for v in (self.url, self.asset_id, self.base64_string) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of url, asset_id or base64_string")
        return self


VideoEmbeddingOption = Literal["visual", "audio", "transcription"]
VideoEmbeddingScope = Literal["clip", "asset"]


class FixedClips(RequestModel):
    duration_sec: float


class DynamicClips(RequestModel):
    min_duration_sec: float


class VideoSegmentation(RequestModel):
    """How the video is cut into clips: Marengo 3.0's flat shape (`{strategy, fixed | dynamic}`)."""

    strategy: Literal["fixed", "dynamic"]
    fixed: FixedClips | None = None
    dynamic: DynamicClips | None = None


class TemporalSegmentation(RequestModel):
    """Marengo 3.5 nests the same choice under `temporal` (SDK 1.3.6 delta §7.4); the wrong shape → 400."""

    temporal: VideoSegmentation


class TimeBasedMetadataEntry(RequestModel):
    """Text folded into the fused embedding of every segment it overlaps (Marengo 3.5, with fused)."""

    start: float
    end: float
    text: str


class VideoEmbeddingInput(RequestModel):
    media_source: MediaSource
    start_sec: float | None = None
    end_sec: float | None = None
    segmentation: VideoSegmentation | TemporalSegmentation | None = None
    embedding_option: list[VideoEmbeddingOption] | None = None
    embedding_scope: list[VideoEmbeddingScope] | None = None
    embedding_type: list[Literal["separate_embedding", "fused_embedding"]] | None = None
    time_based_metadata: list[TimeBasedMetadataEntry] | None = None


class CreateVideoEmbeddingTaskRequest(RequestModel):
    input_type: Literal["video"] = "video"
    model_name: str = "marengo3.0"
    video: VideoEmbeddingInput


class MultiInput(RequestModel):
    input_text: str


class MultiInputEmbeddingRequest(RequestModel):
    """`POST /embed-v2` with text only, the way Marengo 3.5 takes text (SDK 1.3.6 delta §7.2)."""

    input_type: Literal["multi_input"] = "multi_input"
    model_name: str
    multi_input: MultiInput
    auto_truncate: bool | None = None


class EmbeddingData(WireModel):
    embedding: list[float] = Field(default_factory=list)
    embedding_option: str | None = None
    embedding_scope: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None


class EmbeddingResponse(WireModel):
    """`POST /embed-v2`: the vectors, what was embedded, and (Marengo 3.5) the usage."""

    data: list[EmbeddingData] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    usage: EmbeddingUsage | None = None


class IndexedVideoEmbedding(WireModel):
    segments: list[EmbeddingSegment] = Field(default_factory=list)


class IndexedEmbedding(WireModel):
    """The stored embeddings of an indexed video (`GET …/indexed-assets/{id}?embedding_option=…`)."""

    model_name: str | None = None
    video_embedding: IndexedVideoEmbedding | None = None

    @property
    def segments(self) -> list[EmbeddingSegment]:
        return self.video_embedding.segments if self.video_embedding else []


class EmbeddingTaskError(WireModel):
    message: str | None = None


class EmbeddingTask(WireModel):
    """`GET /embed-v2/tasks/{id}`: `data` is null until the task is ready."""

    id: str = Field(alias="_id")
    status: str
    created_at: str | None = None
    updated_at: str | None = None
    data: list[EmbeddingData] | None = None
    metadata: dict[str, Any] | None = None
    error: EmbeddingTaskError | None = None
