"""Pegasus analysis as async work: tasks (`/analyze/tasks`), their time-based-metadata results, and batches
(`/analyze/batches`: one request over many assets). The request of one task is `AnalyzeRequest`
(`analyze.py`).

Where the OpenAPI snapshot and SDK 1.3.6 differ (`time_array`, `max_tokens: "unlimited"`, the `canceled`
status), these models follow SDK 1.3.6.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator

from ._base import GeneratedBy, Page, RequestModel, WireModel
from .analyze import CUSTOM_ID, TOKEN_RANGES, AnalyzeUsage, ResponseFormat, SegmentFormat


class AnalyzeTaskCreated(WireModel):
    task_id: str
    status: str | None = None
    #: Set by the client: an earlier call with the same request had started this task.
    reused: bool = False


class AnalyzeTaskResult(WireModel):
    generation_id: str | None = None
    data: Any = None
    finish_reason: str | None = None
    usage: AnalyzeUsage | None = None
    generated_by: GeneratedBy | None = None


class TimedSegment(WireModel):
    """One segment of a time-based-metadata result, times in seconds whatever the requested format."""

    definition: str
    start: float
    end: float
    fields: dict[str, Any] = Field(default_factory=dict)


def segment_seconds(value: object) -> float:
    """A segment time in seconds, from a number or an `hh:mm:ss(.fff)` string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.count(":") == 2:
        h, m, s = value.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    raise ValueError(f"not a segment time: {value!r}")


def parse_segments(data: str) -> list[TimedSegment]:
    """`result.data` of a time-based-metadata task (`{definition id: [{start_time, end_time, metadata}]}`)
    as segments in time order; `ValueError` when it is not that shape."""
    try:
        parsed = json.loads(data)
        found = [
            TimedSegment(
                definition=definition,
                start=segment_seconds(s["start_time"]),
                end=segment_seconds(s["end_time"]),
                fields=s.get("metadata") or {},
            )
            for definition, entries in parsed.items()
            for s in entries
        ]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a time-based metadata result ({exc})") from exc
    return sorted(found, key=lambda s: (s.start, s.end, s.definition))


class AnalyzeTaskError(WireModel):
    """On a failed or canceled task the reason; on a ready one a warning (truncated, incomplete)."""

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

    @property
    def analysis_mode(self) -> str:
        return str((self.request_params or {}).get("analysis_mode") or "general")


class AnalyzeTaskCanceled(WireModel):
    task_id: str
    status: str


class BatchItem(RequestModel):
    """One video of a batch: an asset id and its own `custom_id` (unique within the batch)."""

    asset_id: str
    custom_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"video": {"type": "asset_id", "asset_id": self.asset_id}}
        if self.custom_id is not None:
            body["custom_id"] = self.custom_id
        return body


class AnalyzeBatchRequest(RequestModel):
    """One prompt (or one set of segment definitions) over many assets (`POST /analyze/batches`)."""

    items: list[BatchItem] = Field(min_length=1, max_length=1000)
    prompt: str | None = None
    analysis_mode: Literal["general", "time_based_metadata"] = "general"
    response_format: ResponseFormat | SegmentFormat | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    min_segment_duration: float | None = Field(default=None, ge=2)
    max_segment_duration: float | None = Field(default=None, ge=2)

    @model_validator(mode="after")
    def _consistent(self) -> AnalyzeBatchRequest:
        ids = [i.custom_id for i in self.items if i.custom_id is not None]
        if len(set(ids)) != len(ids):
            raise ValueError("custom_id values must be unique within a batch")
        if any(not CUSTOM_ID.match(c) for c in ids):
            raise ValueError("custom_id takes 1-64 letters, digits, hyphens or underscores")
        segmenting = isinstance(self.response_format, SegmentFormat)
        if segmenting != (self.analysis_mode == "time_based_metadata"):
            raise ValueError(
                "segment definitions go with analysis_mode time_based_metadata, and that mode needs them"
            )
        if segmenting:
            assert isinstance(self.response_format, SegmentFormat)
            if any(
                f.type == "time_array"
                for d in self.response_format.segment_definitions
                for f in d.fields or []
            ):
                raise ValueError("batches run on pegasus1.5, which has no time_array fields")
        elif self.prompt is None:
            raise ValueError("a general-analysis batch needs a prompt")
        if isinstance(self.max_tokens, int):
            low, high, _ = TOKEN_RANGES[self.analysis_mode]
            if not low <= self.max_tokens <= high:
                raise ValueError(f"max_tokens for {self.analysis_mode} batches is {low:,}-{high:,}")
        return self

    def to_wire(self) -> dict[str, Any]:
        defaults = self.model_dump(
            mode="json", exclude_none=True, exclude={"items", "prompt", "analysis_mode"}
        )
        if self.prompt is not None:
            defaults["prompt"] = {"input_text": self.prompt}
        return {
            "model_name": "pegasus1.5",
            "analysis_mode": self.analysis_mode,
            "defaults": defaults,
            "requests": [i.to_wire() for i in self.items],
        }


class CreatedBatchItem(WireModel):
    task_id: str
    custom_id: str | None = None


class AnalyzeBatchCreated(WireModel):
    batch_id: str
    status: str
    total_items: int | None = None
    items: list[CreatedBatchItem] = Field(default_factory=list)


class AnalyzeBatch(WireModel):
    """A batch and how many of its items are in each status."""

    batch_id: str
    status: str
    analysis_mode: str | None = None
    model_name: str | None = None
    total_items: int = 0
    queued_items: int = 0
    processing_items: int = 0
    ready_items: int = 0
    failed_items: int = 0
    canceled_items: int = 0
    created_at: str | None = None
    expires_at: str | None = None
    completed_at: str | None = None
    canceled_at: str | None = None
    expired_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("completed", "canceled", "expired")


class BatchItemError(WireModel):
    message: str | None = None
    code: str | None = None


class BatchResult(WireModel):
    """One line of `GET /analyze/batches/{id}/results`: an item's status, result or error."""

    task_id: str
    custom_id: str | None = None
    status: str
    data: AnalyzeTaskResult | None = None
    error: BatchItemError | None = None


AnalyzeTaskPage = Page[AnalyzeTask]
AnalyzeBatchPage = Page[AnalyzeBatch]


__all__ = [
    "AnalyzeBatch",
    "AnalyzeBatchCreated",
    "AnalyzeBatchRequest",
    "AnalyzeTask",
    "AnalyzeTaskCanceled",
    "AnalyzeTaskCreated",
    "BatchItem",
    "BatchResult",
    "TimedSegment",
    "parse_segments",
]
