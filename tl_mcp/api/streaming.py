"""Incremental SSE and NDJSON decoding, and the assemblers that turn events into typed updates.

Decoders are pure (bytes in, events out) so they can be fed any chunking; `iter_with_idle_timeout` bounds the
silence between chunks of a live body.

One module on purpose (a little over 500 lines): it is the whole sans-IO half of the two streams the client
reads, and `ResponseAssembler`, half of it, is Jockey's event vocabulary, which reads best in one place.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import ValidationError

from .errors import APITimeoutError, StreamError, TwelveLabsError
from .models._base import GeneratedBy
from .models.analyze import AnalyzeEnd, AnalyzeEvent, AnalyzeStart, AnalyzeText, AnalyzeUsage
from .models.responses import (
    Keepalive,
    OutputItem,
    ResponseDone,
    ResponseObject,
    ResponseStarted,
    ResponseUpdate,
    StepUpdate,
    TextDelta,
    TextDone,
)

logger = logging.getLogger("tl_mcp.api")

_LOG_PAYLOAD_CHARS = 200


async def iter_with_idle_timeout(chunks: AsyncIterator[bytes], idle: float) -> AsyncIterator[bytes]:
    """Yield chunks, raising `APITimeoutError` when none arrives within `idle` seconds."""
    iterator = chunks.__aiter__()
    while True:
        try:
            with anyio.fail_after(idle):
                chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise APITimeoutError(f"the stream sent nothing for {idle:g} s") from exc
        yield chunk


# ---------------------------------------------------------------- SSE


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """WHATWG-style SSE parsing, fed arbitrary byte chunks.

    Handles split UTF-8 sequences, `\\n` / `\\r\\n` / lone `\\r` line ends (also when a `\\r\\n` pair is split
    across chunks), a leading BOM, comments, multi-line `data:`, and ignores `id:`/`retry:`/unknown fields.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._skip_lf = False
        self._started = False
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return self._consume(self._utf8.decode(chunk))

    def flush(self) -> list[SSEEvent]:
        """End of stream: process the unterminated tail and dispatch pending data (lenient, as §6 #8 asks)."""
        events = self._consume(self._utf8.decode(b"", final=True))
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = ""
        self._dispatch(events)
        return events

    def _consume(self, text: str) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        buffer = self._buffer + text
        start = 0
        length = len(buffer)
        while True:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                break
            end = min(ends)
            self._line(buffer[start:end], events)
            if buffer[end] == "\r":
                if end + 1 < length:
                    start = end + 2 if buffer[end + 1] == "\n" else end + 1
                else:
                    self._skip_lf = True
                    start = end + 1
            else:
                start = end + 1
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if line == "":
            self._dispatch(events)
            return
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(SSEEvent(self._event or None, "\n".join(self._data)))
        self._event = None
        self._data = []


# ---------------------------------------------------------------- NDJSON


class NDJSONDecoder:
    """Newline-delimited JSON fed arbitrary byte chunks; blank lines skipped, malformed ones logged."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self._buffer += self._utf8.decode(chunk)
        *lines, self._buffer = self._buffer.split("\n")
        return self._parse(lines)

    def flush(self) -> list[dict[str, Any]]:
        self._buffer += self._utf8.decode(b"", final=True)
        lines, self._buffer = [self._buffer], ""
        return self._parse(lines)

    @staticmethod
    def _parse(lines: Iterable[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for raw in lines:
            line = raw.strip().removeprefix("\ufeff")
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                logger.warning("skipping a malformed NDJSON line: %.200s", line)
                continue
            if isinstance(obj, dict):
                out.append(obj)
            else:
                logger.warning("skipping an NDJSON line that is not an object: %.200s", line)
        return out


class AnalyzeAssembler:
    """`stream_start` / `text_generation` / `stream_end` lines → typed analyze events."""

    def __init__(self) -> None:
        self.text = ""
        self.generation_id: str | None = None
        self.ended = False

    def feed(self, obj: dict[str, Any]) -> list[AnalyzeEvent]:
        kind = obj.get("event_type")
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        assert isinstance(metadata, dict)
        if kind == "stream_start":
            self.generation_id = metadata.get("generation_id") or self.generation_id
            return [AnalyzeStart(generation_id=self.generation_id)]
        if kind == "text_generation":
            text = obj.get("text")
            if not isinstance(text, str) or not text:
                return []
            self.text += text
            return [AnalyzeText(text=text)]
        if kind == "stream_end":
            self.ended = True
            self.generation_id = metadata.get("generation_id") or self.generation_id
            usage = metadata.get("usage")
            error = obj.get("error")
            warning = error.get("message") if isinstance(error, dict) else None
            return [
                AnalyzeEnd(
                    text=self.text,
                    generation_id=self.generation_id,
                    finish_reason=obj.get("finish_reason"),
                    usage=AnalyzeUsage.model_validate(usage) if isinstance(usage, dict) else None,
                    warning=warning,
                    generated_by=_generated_by(metadata.get("generated_by")),
                )
            ]
        if kind is None and isinstance(obj.get("data"), str):
            # A plain JSON result (the server ignored `stream`): present it as a one-piece stream.
            self.ended = True
            self.text = obj["data"]
            usage = obj.get("usage")
            error = obj.get("error")
            events: list[AnalyzeEvent] = [AnalyzeStart(generation_id=obj.get("id"))]
            if self.text:
                events.append(AnalyzeText(text=self.text))
            events.append(
                AnalyzeEnd(
                    text=self.text,
                    generation_id=obj.get("id"),
                    finish_reason=obj.get("finish_reason"),
                    usage=AnalyzeUsage.model_validate(usage) if isinstance(usage, dict) else None,
                    warning=error.get("message") if isinstance(error, dict) else None,
                    generated_by=_generated_by(obj.get("generated_by")),
                )
            )
            return events
        logger.debug("ignoring analyze stream event %r", kind)
        return []

    def finish(self) -> None:
        if not self.ended:
            raise StreamError(
                "the analyze stream ended before stream_end; the text may be incomplete",
                partial_text=self.text,
            )


# ---------------------------------------------------------------- /responses


def _summarise_item(item: OutputItem) -> str:
    if item.type == "function_call":
        args = (item.arguments or "").strip()
        return f"{item.name or 'tool'}({args[:300]})"
    if item.type == "function_call_output":
        out = item.output if isinstance(item.output, str) else json.dumps(item.output)
        return f"result: {out[:300]}"
    if item.type == "message":
        return item.text[:500]
    return item.type


class ResponseAssembler:
    """Folds `/responses` SSE events into typed updates, following jockey-responses-streaming.md §6.

    Text deltas are appended per (output_index, content_index); every full-text event replaces, never appends.
    Only answer messages (phase `final_answer` or none) produce `TextDelta`; commentary and tool steps are
    reported as `StepUpdate` when their item is done.
    """

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.session_id: str | None = None
        self.knowledge_store_id: str | None = None
        self.items: dict[int, OutputItem] = {}
        self.texts: dict[tuple[int, int], str] = {}
        self.final: ResponseObject | None = None
        self.saw_done_marker = False
        self._started_sent = False
        self._last_seq: int | None = None
        #: Text of items whose `output_item.added` never arrived (a lost or unreadable event): answer or
        #: commentary is unknown until the item shows up, so it waits.
        self._held: dict[int, str] = {}

    # ------------------------------------------------------------ state helpers

    @property
    def partial_text(self) -> str:
        keys = sorted(k for k in self.texts if self._is_answer_index(k[0]))
        return "".join(self.texts[k] for k in keys)

    def _is_answer_index(self, output_index: int) -> bool:
        item = self.items.get(output_index)
        return item is None or item.is_answer

    def _error(self, message: str, *, code: str | None = None) -> StreamError:
        return StreamError(
            message,
            partial_text=self.partial_text,
            session_id=self.session_id,
            response_id=self.response_id,
            code=code,
        )

    def _note_response(self, data: Any) -> ResponseObject | None:
        if not isinstance(data, dict):
            return None
        self.response_id = data.get("id") or self.response_id
        self.session_id = data.get("session_id") or self.session_id
        self.knowledge_store_id = data.get("knowledge_store_id") or self.knowledge_store_id
        try:
            return ResponseObject.model_validate(data)
        except ValidationError as exc:
            logger.warning("a /responses event carried an unreadable response object: %s", exc.errors()[:3])
            return None

    def _started(self) -> list[ResponseUpdate]:
        if self._started_sent:
            return []
        self._started_sent = True
        return [
            ResponseStarted(
                response_id=self.response_id,
                session_id=self.session_id,
                knowledge_store_id=self.knowledge_store_id,
            )
        ]

    # ------------------------------------------------------------ SSE entry points

    def feed_sse(self, event: SSEEvent) -> list[ResponseUpdate]:
        if event.data.strip() == "[DONE]":
            self.saw_done_marker = True
            return []
        try:
            obj = json.loads(event.data)
        except ValueError:
            logger.warning("skipping a malformed /responses event: %s", event.data[:_LOG_PAYLOAD_CHARS])
            return []
        if not isinstance(obj, dict):
            logger.warning("skipping a /responses event that is not an object")
            return []
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = event.event
        elif event.event and event.event != kind:
            logger.info("SSE event name %r disagrees with payload type %r; using the type", event.event, kind)
        return self.feed(kind, obj)

    def feed(self, kind: str | None, obj: dict[str, Any]) -> list[ResponseUpdate]:
        seq = obj.get("sequence_number")
        if isinstance(seq, int):
            if self._last_seq is not None and seq != self._last_seq + 1 and kind != "keepalive":
                logger.debug("sequence gap: %s after %s", seq, self._last_seq)
            self._last_seq = seq
        if self.final is not None:
            return []
        handler = _HANDLERS.get(kind or "")
        if handler is None:
            if kind == "error":
                raise self._error_event(obj)
            logger.debug("ignoring /responses event type %r", kind)
            return []
        return handler(self, obj)

    def _error_event(self, obj: dict[str, Any]) -> StreamError:
        inner = obj.get("error") if isinstance(obj.get("error"), dict) else obj
        assert isinstance(inner, dict)
        code = inner.get("code")
        message = inner.get("message") or "Jockey reported an error"
        return self._error(
            f"the response stream reported an error: {message}", code=str(code) if code else None
        )

    # ------------------------------------------------------------ event handlers

    def _on_lifecycle(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        self._note_response(obj.get("response"))
        return self._started()

    def _on_terminal(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        response = self._note_response(obj.get("response"))
        updates = self._started()
        kind = obj.get("type")
        status = response.status if response is not None else None
        if kind == "response.failed" or status == "failed":
            raise self._error("Jockey reported the response as failed")
        if response is None:
            raise self._error("the final response event could not be read")
        if status not in ("completed", "incomplete"):
            logger.info("terminal /responses event with status %r", status)
        self.final = response
        return [*updates, ResponseDone(response=response)]

    def _on_item(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        index = obj.get("output_index")
        raw = obj.get("item")
        if not isinstance(index, int) or not isinstance(raw, dict):
            return []
        try:
            item = OutputItem.model_validate(raw)
        except ValidationError:
            logger.warning("skipping an unreadable output item at index %s", index)
            return []
        self.items[index] = item
        held = self._held.pop(index, "")
        released: list[ResponseUpdate] = (
            [TextDelta(text=held, output_index=index, content_index=0)] if held and item.is_answer else []
        )
        if obj.get("type") != "response.output_item.done":
            return released
        if item.type == "message" and item.is_answer:
            for ci, part in enumerate(item.content or []):
                self.texts[(index, ci)] = part.text
            return released
        return [*released, StepUpdate(item=item, summary=_summarise_item(item))]

    def _on_part(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        oi, ci, part = obj.get("output_index"), obj.get("content_index", 0), obj.get("part")
        if not isinstance(oi, int) or not isinstance(ci, int) or not isinstance(part, dict):
            return []
        text = part.get("text")
        if obj.get("type") == "response.content_part.done" and isinstance(text, str):
            self.texts[(oi, ci)] = text
        else:
            self.texts.setdefault((oi, ci), "")
        return []

    def _on_delta(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        oi, ci, delta = obj.get("output_index"), obj.get("content_index", 0), obj.get("delta")
        if not isinstance(oi, int) or not isinstance(ci, int) or not isinstance(delta, str) or not delta:
            return []
        self.texts[(oi, ci)] = self.texts.get((oi, ci), "") + delta
        if (self.items or self.response_id) and oi not in self.items:
            # A server that sends `response.created` announces every item before its text (TL and the
            # Open Responses spec do), so this item's announcement was lost: hold its text.
            self._held[oi] = self._held.get(oi, "") + delta
            return []
        if not self._is_answer_index(oi):
            return []
        return [TextDelta(text=delta, output_index=oi, content_index=ci)]

    def _on_text_done(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        oi, ci, text = obj.get("output_index"), obj.get("content_index", 0), obj.get("text")
        if not isinstance(oi, int) or not isinstance(ci, int) or not isinstance(text, str):
            return []
        self.texts[(oi, ci)] = text
        if not self._is_answer_index(oi):
            return []
        return [TextDone(text=text, output_index=oi, content_index=ci)]

    def _on_arguments(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        oi, args = obj.get("output_index"), obj.get("arguments")
        if isinstance(oi, int) and isinstance(args, str) and oi in self.items:
            self.items[oi] = self.items[oi].model_copy(update={"arguments": args})
        return []

    def _on_keepalive(self, obj: dict[str, Any]) -> list[ResponseUpdate]:
        return [Keepalive()]

    # ------------------------------------------------------------ end of body

    def finish(self) -> None:
        """Raise `StreamError` when the body ended without a terminal event."""
        if self.final is not None:
            return
        if self.saw_done_marker:
            raise self._error("the response stream ended ([DONE]) without a completed response")
        raise self._error("the response stream ended before the response completed (connection dropped?)")

    def from_json_body(self, body: bytes) -> list[ResponseUpdate]:
        """A 200 `application/json` answer to a streamed request: the server ignored `stream`."""
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise self._error("the server answered with an unreadable body instead of a stream") from exc
        if not isinstance(data, dict):
            raise self._error("the server answered with an unexpected JSON body instead of a stream")
        response = self._note_response(data)
        if response is None:
            raise self._error("the server's JSON answer is not a response object")
        updates = self._started()
        if response.status == "failed":
            raise self._error("Jockey reported the response as failed")
        for oi, item in enumerate(response.output):
            if item.is_answer:
                for ci, part in enumerate(item.content or []):
                    self.texts[(oi, ci)] = part.text
                    if part.text:
                        updates.append(TextDelta(text=part.text, output_index=oi, content_index=ci))
            else:
                updates.append(StepUpdate(item=item, summary=_summarise_item(item)))
        self.final = response
        updates.append(ResponseDone(response=response))
        return updates


_HANDLERS = {
    "response.created": ResponseAssembler._on_lifecycle,
    "response.in_progress": ResponseAssembler._on_lifecycle,
    "response.queued": ResponseAssembler._on_lifecycle,
    "response.completed": ResponseAssembler._on_terminal,
    "response.incomplete": ResponseAssembler._on_terminal,
    "response.failed": ResponseAssembler._on_terminal,
    "response.output_item.added": ResponseAssembler._on_item,
    "response.output_item.done": ResponseAssembler._on_item,
    "response.content_part.added": ResponseAssembler._on_part,
    "response.content_part.done": ResponseAssembler._on_part,
    "response.output_text.delta": ResponseAssembler._on_delta,
    "response.output_text.done": ResponseAssembler._on_text_done,
    "response.function_call_arguments.done": ResponseAssembler._on_arguments,
    "keepalive": ResponseAssembler._on_keepalive,
}

__all__ = [
    "AnalyzeAssembler",
    "NDJSONDecoder",
    "ResponseAssembler",
    "SSEDecoder",
    "SSEEvent",
    "TwelveLabsError",
    "iter_with_idle_timeout",
]


def _generated_by(value: object) -> GeneratedBy | None:
    # Sandbox only; anything else in that place is ignored rather than failing the whole answer.
    if not isinstance(value, dict):
        return None
    try:
        return GeneratedBy.model_validate(value)
    except ValidationError:
        return None
