"""Pegasus analysis requests and the sync answers: `AnalyzeRequest` (one model whichever way it is sent:
`/analyze` as JSON or an NDJSON stream, or `/analyze/tasks`), its video, images, response format and
segment definitions, and what `/analyze` answers. Async tasks and batches: `analyze_tasks.py`.

Where the OpenAPI snapshot and SDK 1.3.6 differ (`pegasus1.6`, `image`, `time_array`, `max_tokens:
"unlimited"`), these models follow SDK 1.3.6.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ._base import GeneratedBy, RequestModel, WireModel

PegasusModel = Literal["pegasus1.6", "pegasus1.5"]
#: Only pegasus1.6 reads images and `time_array` fields; batches accept only pegasus1.5 (SDK 1.3.6).
IMAGE_MODEL = "pegasus1.6"
MAX_IMAGES = 20
#: `max_tokens` per analysis mode: (min, max, default) (SDK 1.3.6, `POST /analyze/tasks`).
TOKEN_RANGES: dict[str, tuple[int, int, int]] = {
    "general": (512, 98_304, 4_096),
    "time_based_metadata": (2_048, 98_304, 32_768),
}
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
#: `custom_id`: 1-64 letters, digits, hyphens and underscores.
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class VideoSource(RequestModel):
    """The `video` of an analyze request: exactly one of url / asset_id / base64_string.

    On the wire it is the discriminated `VideoContext` (`{"type": "url", "url": ...}`); `to_wire` adds `type`.
    """

    url: str | None = None
    asset_id: str | None = None
    base64_string: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> VideoSource:
        given = [v for v in (self.url, self.asset_id, self.base64_string) if v is not None]
        if len(given) != 1:
            raise ValueError("a video source needs exactly one of url, asset_id or base64_string")
        return self

    def to_wire(self) -> dict[str, Any]:
        for kind in ("url", "asset_id", "base64_string"):
            value = getattr(self, kind)
            if value is not None:
                return {"type": kind, kind: value}
        raise AssertionError("unreachable: validator guarantees one source")


class ImageInput(RequestModel):
    """One image of an `image` prompt (pegasus1.6): a name the prompt may cite as `<@name>`, one source."""

    name: str
    url: str | None = None
    asset_id: str | None = None
    base64_string: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageInput:
        if not _NAME.match(self.name):
            raise ValueError(f"image name {self.name!r} may use only letters, digits and underscores")
        given = [v for v in (self.url, self.asset_id, self.base64_string) if v is not None]
        if len(given) != 1:
            raise ValueError(f"image {self.name!r} needs exactly one of url, asset_id or base64_string")
        if self.url is not None and not self.url.startswith("https://"):
            raise ValueError(f"image {self.name!r}: the url must be https (TwelveLabs rejects http)")
        return self


class ResponseFormat(RequestModel):
    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any]


class ScalarItems(RequestModel):
    type: Literal["string", "number", "boolean", "integer"]


class TimeArrayItemField(RequestModel):
    """A field of each event inside a `time_array` segment field (no timestamp, time_array or format)."""

    name: str
    type: Literal["string", "boolean", "number", "integer", "array"]
    description: str
    enum: list[str] | None = None
    items: ScalarItems | None = None


class SegmentFieldItems(RequestModel):
    """`array` fields: the scalar element type; `time_array` fields: `object` and the event's fields."""

    type: Literal["string", "number", "boolean", "integer", "object"]
    fields: list[TimeArrayItemField] | None = None


SegmentFieldType = Literal["string", "boolean", "number", "integer", "array", "timestamp", "time_array"]
TimeFormat = Literal["seconds", "hh:mm:ss", "hh:mm:ss.fff"]
#: Added by the platform to every segment and event; a field may not use them.
RESERVED_FIELDS = frozenset({"start_time", "end_time", "metadata"})


class SegmentField(RequestModel):
    name: str
    type: SegmentFieldType
    description: str
    format: TimeFormat | None = None
    enum: list[str] | None = Field(default=None, max_length=100)
    items: SegmentFieldItems | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SegmentField:
        where = f"segment field {self.name!r}"
        if self.name in RESERVED_FIELDS:
            raise ValueError(f"{where}: start_time, end_time and metadata are reserved names")
        if (self.type == "timestamp") != (self.format is not None):
            raise ValueError(f"{where}: `format` is required for a timestamp field and allowed only there")
        if self.type in ("array", "time_array") and self.items is None:
            raise ValueError(f"{where}: an {self.type} field needs `items`")
        if (
            self.type == "array"
            and self.items is not None
            and (self.items.type == "object" or self.items.fields)
        ):
            raise ValueError(f"{where}: an array holds scalars; use time_array for a list of timed events")
        if self.type == "time_array":
            assert self.items is not None
            if self.items.type != "object" or not self.items.fields:
                raise ValueError(f"{where}: a time_array needs items {{type: object, fields: [...]}}")
            for f in self.items.fields:
                if f.name in RESERVED_FIELDS:
                    raise ValueError(f"{where}: event field {f.name!r} uses a reserved name")
                if f.enum is not None and f.type != "string":
                    raise ValueError(f"{where}: event field {f.name!r} may have `enum` only as a string")
                if (f.type == "array") != (f.items is not None):
                    raise ValueError(f"{where}: event field {f.name!r} needs `items` exactly when an array")
        return self


class TimeRange(RequestModel):
    start_time: float = Field(ge=0)
    end_time: float

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end_time - self.start_time < 2:
            raise ValueError("a time range must span at least 2 seconds (end_time > start_time + 2)")
        return self


class SegmentDefinition(RequestModel):
    """One kind of segment to find (`id`, what it looks like), the fields to extract for each one."""

    id: str = Field(min_length=1)
    description: str = Field(min_length=1)
    fields: list[SegmentField] | None = None
    time_ranges: list[TimeRange] | None = None


class SegmentFormat(RequestModel):
    """`response_format` of a time-based-metadata task: segment definitions and the time format."""

    type: Literal["segment_definitions"] = "segment_definitions"
    segment_definitions: list[SegmentDefinition] = Field(min_length=1)
    segment_time_format: TimeFormat | None = None

    @field_validator("segment_definitions")
    @classmethod
    def _unique(cls, defs: list[SegmentDefinition]) -> list[SegmentDefinition]:
        ids = [d.id for d in defs]
        if len(set(ids)) != len(ids):
            raise ValueError("segment definition ids must be unique")
        return defs


MaxTokens = int | Literal["unlimited"]


class AnalyzeRequest(RequestModel):
    """One Pegasus request, whichever way it is sent: `analyze.generate`, `.stream`, `.create_task`.

    `stream` is not a field: the method that sends the request decides it. Task-only fields
    (`analysis_mode`, segment definitions, `custom_id`, `"unlimited"`) are checked when a task is built.
    """

    video: VideoSource | None = None
    image: list[ImageInput] | None = None
    prompt: str | None = None
    model_name: str | None = None
    temperature: float | None = None
    max_tokens: MaxTokens | None = None
    response_format: ResponseFormat | SegmentFormat | None = None
    start_time: float | None = None
    end_time: float | None = None
    analysis_mode: Literal["general", "time_based_metadata"] | None = None
    min_segment_duration: float | None = Field(default=None, ge=2)
    max_segment_duration: float | None = Field(default=None, ge=2)
    custom_id: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_given(cls, prompt: str | None) -> str | None:
        if prompt is not None and not prompt.strip():
            raise ValueError("prompt must not be empty")
        return prompt

    @model_validator(mode="after")
    def _consistent(self) -> AnalyzeRequest:
        if (self.video is None) == (self.image is None):
            raise ValueError("give exactly one of video or image")
        segmenting = isinstance(self.response_format, SegmentFormat)
        if segmenting != (self.analysis_mode == "time_based_metadata"):
            raise ValueError(
                "segment definitions go with analysis_mode time_based_metadata, and that mode needs them"
            )
        if not segmenting and self.prompt is None:
            raise ValueError("prompt is required (except for time-based metadata)")
        if segmenting and self.prompt is not None:
            raise ValueError("time-based metadata takes segment definitions, not a prompt")
        if self.image is not None:
            if self.model_name != IMAGE_MODEL:
                raise ValueError(f"image prompts need model_name {IMAGE_MODEL} (got {self.model_name!r})")
            if not 1 <= len(self.image) <= MAX_IMAGES:
                raise ValueError(f"give 1 to {MAX_IMAGES} images (got {len(self.image)})")
            names = [i.name for i in self.image]
            if len(set(names)) != len(names):
                raise ValueError("image names must be unique")
            if segmenting:
                raise ValueError("image prompts are for general analysis only, not time-based metadata")
        if segmenting:
            assert isinstance(self.response_format, SegmentFormat)
            defs = self.response_format.segment_definitions
            if self.model_name != IMAGE_MODEL and any(
                f.type == "time_array" for d in defs for f in d.fields or []
            ):
                raise ValueError(f"time_array fields need model_name {IMAGE_MODEL}")
            ranged = any(d.time_ranges for d in defs)
            if ranged and (self.start_time is not None or self.end_time is not None):
                raise ValueError("time_ranges and start_time/end_time exclude each other")
            if ranged and (self.min_segment_duration or self.max_segment_duration):
                raise ValueError("time_ranges and min/max_segment_duration exclude each other")
        elif self.min_segment_duration is not None or self.max_segment_duration is not None:
            raise ValueError("min/max_segment_duration apply to time-based metadata only")
        if (
            self.min_segment_duration is not None
            and self.max_segment_duration is not None
            and self.max_segment_duration < self.min_segment_duration
        ):
            raise ValueError("max_segment_duration must be at least min_segment_duration")
        if self.max_tokens == "unlimited":
            if not segmenting or self.model_name != IMAGE_MODEL:
                raise ValueError(f'max_tokens "unlimited" needs time-based metadata and {IMAGE_MODEL}')
            assert isinstance(self.response_format, SegmentFormat)
            if any(d.time_ranges for d in self.response_format.segment_definitions):
                raise ValueError('max_tokens "unlimited" and time_ranges exclude each other')
        if self.custom_id is not None and not CUSTOM_ID.match(self.custom_id):
            raise ValueError("custom_id takes 1-64 letters, digits, hyphens or underscores")
        return self

    def check_task_tokens(self) -> None:
        """The documented `max_tokens` range of an async task in its mode; ValueError outside it."""
        if isinstance(self.max_tokens, int):
            low, high, _ = TOKEN_RANGES[self.analysis_mode or "general"]
            if not low <= self.max_tokens <= high:
                raise ValueError(
                    f"max_tokens for {self.analysis_mode or 'general'} analysis tasks is {low:,}-{high:,} "
                    f"(got {self.max_tokens:,})"
                )

    def to_wire(self, *, stream: bool | None = None) -> dict[str, Any]:
        body = super().to_wire()
        if self.video is not None:
            body["video"] = self.video.to_wire()
        if stream is not None:
            body["stream"] = stream
        return body

    def derived_custom_id(self) -> str:
        """A stable `custom_id` for this request: the same request always gets the same one.

        It is how a retried call finds the task it already paid for (`Analyze.create_task`).
        """
        body = self.model_copy(update={"custom_id": None}).to_wire()
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
        return "tlmcp-" + digest.hexdigest()[:40]


class AnalyzeUsage(WireModel):
    output_tokens: int | None = None
    input_tokens: int | None = None


class AnalyzeWarning(WireModel):
    message: str | None = None


class AnalyzeResult(WireModel):
    id: str | None = None
    data: str = ""
    finish_reason: str | None = None
    usage: AnalyzeUsage | None = None
    error: AnalyzeWarning | None = None
    generated_by: GeneratedBy | None = None


class AnalyzeStart(WireModel):
    """`stream_start`: carries the generation id."""

    kind: Literal["start"] = "start"
    generation_id: str | None = None


class AnalyzeText(WireModel):
    """`text_generation`: one fragment; fragments concatenate to the answer."""

    kind: Literal["text"] = "text"
    text: str


class AnalyzeEnd(WireModel):
    """`stream_end`: the full text assembled from the fragments, finish reason, usage, truncation warning."""

    kind: Literal["end"] = "end"
    text: str
    generation_id: str | None = None
    finish_reason: str | None = None
    usage: AnalyzeUsage | None = None
    warning: str | None = None
    generated_by: GeneratedBy | None = None


AnalyzeEvent = AnalyzeStart | AnalyzeText | AnalyzeEnd


__all__ = [
    "IMAGE_MODEL",
    "MAX_IMAGES",
    "TOKEN_RANGES",
    "AnalyzeEnd",
    "AnalyzeEvent",
    "AnalyzeRequest",
    "AnalyzeResult",
    "AnalyzeStart",
    "AnalyzeText",
    "ImageInput",
    "PegasusModel",
    "ResponseFormat",
    "SegmentDefinition",
    "SegmentField",
    "SegmentFormat",
    "TimeArrayItemField",
    "TimeRange",
    "VideoSource",
]
