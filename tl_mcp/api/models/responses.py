"""Jockey `POST /responses`: request, response object, citations, and the typed stream updates."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._base import GeneratedBy, RequestModel, WireModel

logger = logging.getLogger("tl_mcp.api")

MAX_INPUT_CHARS = 10_000
#: The documented cap on `instructions` (seed 001: "<=2000 characters"); the OpenAPI snapshot and the
#: SDK 1.3.6 delta state none, so the only documented figure applies. Input content stays 1–10,000.
MAX_INSTRUCTIONS_CHARS = 2_000
JOCKEY_MODEL = "jockey1.0"


# ---------------------------------------------------------------- request


class InputMessage(RequestModel):
    type: Literal["message"] = "message"
    role: Literal["user"] = "user"
    content: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)


class Selection(RequestModel):
    """Scopes a turn to an item (`ksi_…`) or item collection (`ksic_…`); referenced as `{{sel:N}}`."""

    kind: Literal["item", "collection"]
    id: str

    @model_validator(mode="after")
    def _prefix_matches_kind(self) -> Selection:
        expected = "ksi_" if self.kind == "item" else "ksic_"
        if not self.id.startswith(expected):
            raise ValueError(f"a {self.kind} selection id must start with {expected!r}, got {self.id!r}")
        return self


class JsonSchemaFormat(RequestModel):
    type: Literal["json_schema"] = "json_schema"
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseRequest(BaseModel):
    """A Jockey turn.

    Accepts the three documented request shapes — April (`model` + `metadata`), July/SDK 1.3.x (top-level
    `knowledge_store_id`, `selections`) and the docs variant (`tools: [{type: knowledge_store, ...}]`) — and
    always sends the current one (SDK 1.3.6: no `model`, `metadata` or `tools`; `stream` set by the method).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    knowledge_store_id: str
    input: list[InputMessage]
    session_id: str | None = None
    instructions: str | None = None
    include: list[Literal["intermediate_outputs"]] | None = None
    text_format: JsonSchemaFormat | None = None
    selections: list[Selection] | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        model = data.pop("model", None)
        if model is not None and model != JOCKEY_MODEL:
            raise ValueError(f"model must be {JOCKEY_MODEL!r} (or left out), got {model!r}")
        if data.pop("metadata", None) is not None:
            logger.debug("dropping April-2026 'metadata' from a /responses request: the current API has none")
        data.pop("stream", None)
        tools = data.pop("tools", None)
        if tools is not None:
            stores = [
                t.get("knowledge_store_id")
                for t in tools
                if isinstance(t, dict) and t.get("type") == "knowledge_store"
            ]
            if len(stores) != 1 or not stores[0]:
                raise ValueError(
                    "tools must hold exactly one {type: knowledge_store, knowledge_store_id} entry"
                )
            given = data.get("knowledge_store_id")
            if given is not None and given != stores[0]:
                raise ValueError("knowledge_store_id and tools[].knowledge_store_id disagree")
            data["knowledge_store_id"] = stores[0]
        text = data.pop("text", None)
        if isinstance(text, dict) and isinstance(text.get("format"), dict):
            fmt = text["format"]
            if fmt.get("type") == "json_schema":
                data.setdefault("text_format", {k: v for k, v in fmt.items() if k != "type"})
        return data

    @field_validator("input", mode="before")
    @classmethod
    def _string_input_is_one_message(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [{"type": "message", "role": "user", "content": value}]
        return value

    @field_validator("instructions")
    @classmethod
    def _instructions_within_limit(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_INSTRUCTIONS_CHARS:
            raise ValueError(
                f"instructions is {len(value):,} characters long; TwelveLabs accepts at most "
                f"{MAX_INSTRUCTIONS_CHARS:,}. Shorten it, or move detail into the input message."
            )
        return value

    @field_validator("input")
    @classmethod
    def _input_not_empty(cls, value: list[InputMessage]) -> list[InputMessage]:
        if not value:
            raise ValueError("input needs at least one message")
        return value

    def to_wire(self, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "knowledge_store_id": self.knowledge_store_id,
            "input": [m.to_wire() for m in self.input],
            "stream": stream,
        }
        if self.session_id is not None:
            body["session_id"] = self.session_id
        if self.instructions is not None:
            body["instructions"] = self.instructions
        if self.include:
            body["include"] = list(self.include)
        if self.selections:
            body["selections"] = [s.to_wire() for s in self.selections]
        if self.text_format is not None:
            body["text"] = {"format": self.text_format.to_wire()}
        return body


# ---------------------------------------------------------------- response object


class ResponseAnnotation(WireModel):
    """A citation on an `output_text` part; `start_index`..`end_index` (inclusive) locate its marker."""

    type: str
    start_index: int
    end_index: int
    item_id: str | None = None
    collection_id: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None
    title: str | None = None
    thumbnail_url: str | None = None
    hls_url: str | None = None


class ContentPart(WireModel):
    type: str = "output_text"
    text: str = ""
    annotations: list[ResponseAnnotation] = Field(default_factory=list)


class OutputItem(WireModel):
    type: str
    id: str | None = None
    status: str | None = None
    role: str | None = None
    phase: str | None = None
    content: list[ContentPart] | None = None
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None
    output: Any = None

    @property
    def is_answer(self) -> bool:
        """The answer is a message with phase `final_answer` or none; unknown phases are intermediate."""
        return self.type == "message" and self.phase in (None, "final_answer")

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.content or [] if part.type == "output_text")


class ResponseUsage(WireModel):
    input_tokens: int | None = None
    output_tokens: int | None = None


class IncompleteDetails(WireModel):
    reason: str | None = None


class Citation(WireModel):
    """An annotation resolved against its part: `marker` is the cited text span, e.g. `[1]`."""

    marker: str
    output_index: int
    content_index: int
    annotation: ResponseAnnotation


#: `[00:00-00:09]` / `[1:02:03 - 1:02:09]`: the time-range citations of answers without annotations.
_CLOCK = r"(\d{1,2}(?::\d{1,2}){1,2}(?:\.\d+)?)"
_RANGE = re.compile(rf"\[\s*{_CLOCK}\s*[-–]\s*{_CLOCK}\s*\]")
#: `<vref id="…" start="…" end="…"/>` (third-party clients): an item id, sometimes without its `ksi_`.
_VREF = re.compile(r"<vref\s+([^<>]*?)/?>(?:</vref>)?", re.IGNORECASE)
_ATTR = re.compile(r"""(\w+)\s*=\s*["']([^"']*)["']""")


def _seconds(value: str | None) -> float | None:
    """`12.5`, `00:12`, `1:02:03.5` as seconds; None for anything else."""
    if not value:
        return None
    try:
        parts = [float(p) for p in value.strip().split(":")]
    except ValueError:
        return None
    if len(parts) > 3 or any(p < 0 for p in parts):
        return None
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def inline_citations(text: str) -> list[ResponseAnnotation]:
    """Citations written into the text, for answers whose parts carry no `annotations` (servers before
    SDK 1.3.4): `[mm:ss-mm:ss]` ranges (no item: the caller may know it) and `<vref>` tags, in text order,
    as annotations locating each marker (inclusive `end_index`, code points)."""
    found: list[ResponseAnnotation] = []
    for m in _RANGE.finditer(text):
        start, end = _seconds(m.group(1)), _seconds(m.group(2))
        if start is not None and end is not None and end >= start:
            found.append(
                ResponseAnnotation(
                    type="video_citation",
                    start_index=m.start(),
                    end_index=m.end() - 1,
                    start_sec=start,
                    end_sec=end,
                )
            )
    for m in _VREF.finditer(text):
        attrs = {k.lower(): v for k, v in _ATTR.findall(m.group(1))}
        ref = attrs.get("id", "").strip()
        if not ref:
            continue
        start, end = _seconds(attrs.get("start")), _seconds(attrs.get("end"))
        if start is None or end is None or end < start:
            start = end = None  # the whole item, like an annotation without a range
        found.append(
            ResponseAnnotation(
                type="video_citation",
                start_index=m.start(),
                end_index=m.end() - 1,
                item_id=ref if ref.startswith("ksi_") else f"ksi_{ref}",
                start_sec=start,
                end_sec=end,
            )
        )
    return sorted(found, key=lambda a: a.start_index)


class ResponseObject(WireModel):
    id: str
    type: str | None = "response"
    status: str | None = None
    session_id: str | None = None
    knowledge_store_id: str | None = None
    output: list[OutputItem] = Field(default_factory=list)
    usage: ResponseUsage | None = None
    created_at: str | int | None = None
    incomplete_details: IncompleteDetails | None = None
    generated_by: GeneratedBy | None = None

    @property
    def answer_items(self) -> list[OutputItem]:
        return [item for item in self.output if item.is_answer]

    @property
    def output_text(self) -> str:
        return "".join(item.text for item in self.answer_items)

    @property
    def annotations(self) -> list[Citation]:
        """The answer's citations: each part's `annotations`, or, on a part without any, the citations
        written into its text (:func:`inline_citations`)."""
        found: list[Citation] = []
        for oi, item in enumerate(self.output):
            if not item.is_answer:
                continue
            for ci, part in enumerate(item.content or []):
                for ann in part.annotations or inline_citations(part.text):
                    marker = part.text[ann.start_index : ann.end_index + 1]
                    found.append(Citation(marker=marker, output_index=oi, content_index=ci, annotation=ann))
        return found


# ---------------------------------------------------------------- stream updates


class _Update(BaseModel):
    model_config = ConfigDict(frozen=True)


class ResponseStarted(_Update):
    kind: Literal["started"] = "started"
    response_id: str | None
    session_id: str | None
    knowledge_store_id: str | None = None


class TextDelta(_Update):
    """A fragment of the answer; the deltas of one stream concatenate to the answer text."""

    kind: Literal["text_delta"] = "text_delta"
    text: str
    output_index: int
    content_index: int = 0


class TextDone(_Update):
    """The authoritative full text of one answer part (replaces what the deltas built)."""

    kind: Literal["text_done"] = "text_done"
    text: str
    output_index: int
    content_index: int = 0


class StepUpdate(_Update):
    """An intermediate item finished: a tool call, its output, or a commentary message."""

    kind: Literal["step"] = "step"
    item: OutputItem
    summary: str


class Keepalive(_Update):
    kind: Literal["keepalive"] = "keepalive"


class ResponseDone(_Update):
    """Always the last update of a successful stream; `response.output_text` is authoritative."""

    kind: Literal["done"] = "done"
    response: ResponseObject


ResponseUpdate = ResponseStarted | TextDelta | TextDone | StepUpdate | Keepalive | ResponseDone
