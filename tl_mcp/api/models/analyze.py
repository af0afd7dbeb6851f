"""Pegasus analysis: sync (`/analyze`, JSON or NDJSON stream) and async tasks (`/analyze/tasks`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator, model_validator

from ._base import GeneratedBy, RequestModel, WireModel


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


class ResponseFormat(RequestModel):
    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, Any]


class AnalyzeRequest(RequestModel):
    """One Pegasus request, whichever way it is sent: `analyze.generate`, `.stream` or `.create_task`.

    `stream` is not a field: the method that sends the request decides it.
    """

    video: VideoSource
    prompt: str
    model_name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: ResponseFormat | None = None
    start_time: float | None = None
    end_time: float | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_given(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must not be empty")
        return prompt

    def to_wire(self, *, stream: bool | None = None) -> dict[str, Any]:
        body = super().to_wire()
        body["video"] = self.video.to_wire()
        if stream is not None:
            body["stream"] = stream
        return body


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


class AnalyzeTaskCreated(WireModel):
    task_id: str
    status: str | None = None


class AnalyzeTaskResult(WireModel):
    generation_id: str | None = None
    data: Any = None
    finish_reason: str | None = None
    usage: AnalyzeUsage | None = None
    generated_by: GeneratedBy | None = None


class AnalyzeTaskError(WireModel):
    message: str | None = None
    code: str | None = None


class AnalyzeTask(WireModel):
    task_id: str
    status: str
    custom_id: str | None = None
    video_source: dict[str, Any] | None = None
    request_params: dict[str, Any] | None = None
    created_at: str | None = None
    completed_at: str | None = None
    result: AnalyzeTaskResult | None = None
    error: AnalyzeTaskError | None = None
    batch_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("ready", "failed", "canceled")


__all__ = [
    "AnalyzeEnd",
    "AnalyzeEvent",
    "AnalyzeRequest",
    "AnalyzeResult",
    "AnalyzeStart",
    "AnalyzeTask",
    "AnalyzeTaskCreated",
    "AnalyzeText",
    "ResponseFormat",
    "VideoSource",
]
