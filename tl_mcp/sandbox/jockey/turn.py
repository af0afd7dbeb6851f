"""One Jockey turn: retrieve moments, compose a cited answer, emit its events and save the turn.

The same event list drives both modes: the JSON body is the final ``response.completed`` payload, the
stream is every event in order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import anyio
from anyio.abc import ObjectSendStream

from tl_mcp.sandbox.answerers import Answerer, Cue, Made, Question, Reply
from tl_mcp.sandbox.jockey.compose import (
    MODEL_NAME,
    Answer,
    chunk_text,
    citation,
    compose_answer,
    count_tokens,
    marker,
    retrieval_query,
    strip_selection_tokens,
)
from tl_mcp.sandbox.jockey.recall import asked_sources, lead, recall_kind, same_moments
from tl_mcp.sandbox.jockey.request import TurnRequest
from tl_mcp.sandbox.jockey.session import Session, moment_json, validate_selections
from tl_mcp.sandbox.jockey.structured import fill, lookups, tighten
from tl_mcp.sandbox.knowledge.models import Evidence, JockeyOptions, JsonObj
from tl_mcp.sandbox.knowledge.service import KnowledgeService
from tl_mcp.sandbox.store import jockey_sessions
from tl_mcp.sandbox.store.db import now_iso
from tl_mcp.sandbox.store.ids import new_id

log = logging.getLogger(__name__)

_LABEL = {"subtitle": "subtitles", "speech": "speech", "ocr": "on screen"}
#: How many moments a field's own search adds to the evidence (the best of them; more would be noise).
_FIELD_MOMENTS = 2
#: The most fields one turn searches for; the rest are filled from what was found, or left unfilled.
_FIELD_SEARCHES = 8


def _message(item_id: str, text: str, annotations: list[JsonObj], phase: str, status: str) -> JsonObj:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "phase": phase,
        "content": [{"type": "output_text", "text": text, "annotations": annotations}],
    }


class Turn:
    """Runs one turn and produces its events (without sequence numbers) into a stream."""

    def __init__(
        self,
        svc: KnowledgeService,
        request: TurnRequest,
        session: Session,
        options: JockeyOptions,
        answerer: Answerer,
    ) -> None:
        self.svc = svc
        self.answerer = answerer
        self.made: Made = answerer.made
        self.req = request
        self.session = session
        self.options = options
        self.response_id = new_id("resp")
        self.created_at = now_iso()
        self.output: list[JsonObj] = []
        self.input_tokens = 0
        self.output_tokens = 0
        #: Structured output by the extractive answerer only: the schema fields no evidence fitted.
        self.unfilled: list[str] | None = None

    def response(self, status: str, *, final: bool) -> JsonObj:
        body: JsonObj = {
            "id": self.response_id,
            "type": "response",
            "object": "response",
            "status": status,
            "incomplete_details": None,
            "model": MODEL_NAME,
            "session_id": self.session.id,
            "knowledge_store_id": self.session.store_id,
            "output": list(self.output) if final else [],
            "created_at": self.created_at,
        }
        if final:
            body["usage"] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
            # Sandbox-only: which answerer (and model) wrote this answer, and why if it fell back.
            made = self.made
            if self.unfilled is not None and self.made.answerer == "extractive":
                # Sandbox-only: fields left null or empty because nothing retrieved fitted them.
                body["unfilled"] = self.unfilled
                made = made.with_placeholders(self.unfilled)
            body["generated_by"] = made.as_json()
        return body

    def _next_message_id(self) -> str:
        message_id = f"msg_{self.session.id}_{self.session.messages}"
        self.session.messages += 1
        return message_id

    async def run(self, send: ObjectSendStream[JsonObj]) -> None:
        async with send:
            await send.send(
                {"type": "response.created", "response": self.response("in_progress", final=False)}
            )
            await send.send(
                {"type": "response.in_progress", "response": self.response("in_progress", final=False)}
            )
            try:
                await self._answer(send)
            except Exception:
                log.exception("jockey turn %s failed", self.response_id)
                await send.send({"type": "response.failed", "response": self.response("failed", final=True)})
                return
            await send.send(
                {"type": "response.completed", "response": self.response("completed", final=True)}
            )

    async def _emit_item(self, send: ObjectSendStream[JsonObj], item: JsonObj) -> None:
        index = len(self.output)
        await send.send(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress"},
            }
        )
        if item["type"] == "function_call":
            await send.send(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "arguments": item["arguments"],
                }
            )
        self.output.append(item)
        await send.send({"type": "response.output_item.done", "output_index": index, "item": item})

    async def _emit_message(
        self,
        send: ObjectSendStream[JsonObj],
        deltas: AsyncIterator[str],
        annotate: Callable[[str], list[JsonObj]],
        phase: str,
    ) -> str:
        """Stream ``deltas`` as one message while they are produced; returns the joined text."""
        index = len(self.output)
        message_id = self._next_message_id()
        empty_part = {"type": "output_text", "text": "", "annotations": []}
        await send.send(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": _message(message_id, "", [], phase, "in_progress"),
            }
        )
        where = {"item_id": message_id, "output_index": index, "content_index": 0}
        await send.send({"type": "response.content_part.added", **where, "part": empty_part})
        pieces: list[str] = []
        async for chunk in deltas:
            pieces.append(chunk)
            await send.send({"type": "response.output_text.delta", **where, "delta": chunk})
        text = "".join(pieces)
        annotations = annotate(text)
        await send.send({"type": "response.output_text.done", **where, "text": text})
        part = {"type": "output_text", "text": text, "annotations": annotations}
        await send.send({"type": "response.content_part.done", **where, "part": part})
        item = _message(message_id, text, annotations, phase, "completed")
        self.output.append(item)
        await send.send({"type": "response.output_item.done", "output_index": index, "item": item})
        return text

    async def _paced(self, pieces: Sequence[str]) -> AsyncIterator[str]:
        for piece in pieces:
            if self.options.delta_delay_s:
                await anyio.sleep(self.options.delta_delay_s)
            yield piece

    async def _produced(self, reply: Reply) -> AsyncIterator[str]:
        """The reply's deltas as its answerer produces them (it blocks, so it runs in a worker thread)."""
        deltas = iter(reply)
        pace = self.answerer.made.answerer == "extractive"
        try:
            while (delta := await anyio.to_thread.run_sync(next, deltas, None)) is not None:
                if pace and self.options.delta_delay_s:
                    await anyio.sleep(self.options.delta_delay_s)
                yield delta
        finally:
            close = getattr(deltas, "close", None)
            if close is not None:
                await anyio.to_thread.run_sync(close)
        self.made = reply.made

    async def _answer(self, send: ObjectSendStream[JsonObj]) -> None:
        req, session = self.req, self.session
        question = strip_selection_tokens(req.question) or req.question
        query = retrieval_query(req.question, session.questions)
        scope = validate_selections(self.svc, session.store_id, session.selections)
        counts = self.svc.status_counts(session.store_id)
        ready = counts.get("ready", 0)
        pending = sum(counts.get(s, 0) for s in ("queued", "pending", "processing"))

        if req.intermediate:
            await self._emit_message(
                send,
                self._paced(
                    chunk_text(f'Searching the knowledge store for moments that match "{_short(query)}".')
                ),
                lambda _: [],
                "commentary",
            )
        if self.options.think_delay_s:
            await anyio.sleep(self.options.think_delay_s)
        kind = recall_kind(question) if session.last_moments else None
        lead_text = ""
        at_edge = False
        if kind is not None:
            # The question points back at the previous answer: its moments (or their neighbour) it is.
            moments = await self._recalled(kind, question)
            lead_text = lead(kind, session.last_moments[0], bool(moments))
            if not moments:
                # Nothing before (after) it: the cited moment is quoted again and stays what "that" points
                # at, instead of a "found nothing, try other words" the caller cannot act on.
                at_edge = True
                moments = session.last_moments[:1]
        else:
            found = await self.svc.moments(session.store_id, query, item_ids=scope)
            if scope is not None and not found:
                # Selections are a preference, not a boundary: fall back to the whole store.
                found = await self.svc.moments(session.store_id, query)
            # One moment per stretch of the same text already (retrieval joins them), so each is quoted once.
            moments = [m for m, _ in found]

        if req.intermediate:
            await self._emit_search(send, query, scope, moments[:10])
        looked_up: list[Evidence] = []
        if req.schema is not None and kind is None and moments:
            # A field the question's moments say nothing about gets its own search before it is left
            # unfilled, as a summary draws on the whole video; the search is a tool step like the first.
            # Bounded: a schema of many fields must not make a turn many searches long.
            for field_query in lookups(req.schema, moments[:5])[:_FIELD_SEARCHES]:
                hits = await self.svc.moments(session.store_id, field_query, item_ids=scope)
                more = [m for m, _ in hits][:_FIELD_MOMENTS]
                looked_up.extend(more)
                if req.intermediate:
                    await self._emit_search(send, field_query, scope, more)

        answer = compose_answer(question, moments, ready_items=ready, pending_items=pending, lead=lead_text)
        schema = tighten(req.schema) if req.schema is not None else None
        extractive = answer.text
        if req.schema is not None:
            extractive, _ = self._structured(question, answer, moments, looked_up)
        reply = self.answerer.answer(
            Question(
                question=question,
                # At the edge the only moment is the one asked about the other side of: nothing for a
                # model to answer from.
                cues=[_cue(m) for m in moments[:10]] if ready and not at_edge else [],
                extractive=lambda: extractive,
                history=session.history,
                instructions=req.instructions,
                schema=schema,
            )
        )

        def annotate(text: str) -> list[JsonObj]:
            # JSON text carries no citation markers, so there is nothing for annotations to locate.
            if req.schema is not None:
                return []
            return _annotations(text, answer.text, answer.annotations, moments[:10])

        evidence = " ".join(m.text for m in moments[:10])
        self.input_tokens = sum(
            count_tokens(t) for t in (req.instructions or "", req.question, evidence, *session.questions)
        )
        text = await self._emit_message(send, self._produced(reply), annotate, "final_answer")
        self.output_tokens = sum(count_tokens(_item_text(i)) for i in self.output)
        cited = {marker(m.start, m.end): m for m in reversed(moments[:10])}
        self._save(query, text, [m for mark, m in reversed(cited.items()) if mark in text])

    async def _emit_search(
        self, send: ObjectSendStream[JsonObj], query: str, scope: list[str] | None, found: Sequence[Evidence]
    ) -> None:
        call_id = new_id("call")
        arguments: JsonObj = {"knowledge_store_id": self.session.store_id, "query": query, "page_size": 10}
        if scope is not None:
            arguments["item_ids"] = scope
        await self._emit_item(
            send,
            {
                "type": "function_call",
                "id": new_id("fc"),
                "status": "completed",
                "name": "search_knowledge_store",
                "call_id": call_id,
                "arguments": json.dumps(arguments),
            },
        )
        await self._emit_item(
            send,
            {
                "type": "function_call_output",
                "id": new_id("fco"),
                "status": "completed",
                "call_id": call_id,
                "output": json.dumps({"results": [m.as_evidence() for m in found]}),
            },
        )

    async def _recalled(self, kind: str, question: str) -> list[Evidence]:
        previous = self.session.last_moments
        if kind == "same":
            return same_moments(question, previous)
        before = kind == "before"
        sources = asked_sources(question)
        near = await self.svc.neighbour(previous[0], before=before, sources=sources)
        if near is None and sources:
            # Nothing of that kind there: what is next to it at all beats "nothing comes before".
            near = await self.svc.neighbour(previous[0], before=before)
        return [near] if near is not None else []

    def _structured(
        self, question: str, answer: Answer, moments: Sequence[Evidence], looked_up: Sequence[Evidence]
    ) -> tuple[str, list[JsonObj]]:
        assert self.req.schema is not None
        summary = " ".join(answer.text.split())
        self.unfilled = []
        value, problems = fill(
            self.req.schema,
            question=question,
            summary=summary,
            moments=moments[:5],
            unfilled=self.unfilled,
            looked_up=looked_up,
        )
        if problems:
            raise ValueError(f"structured output does not validate: {problems[:3]}")
        return json.dumps(value, ensure_ascii=False), []

    def _save(self, query: str, answer: str, cited: Sequence[Evidence]) -> None:
        session = self.session
        jockey_sessions.save_turn(
            self.svc.db,
            jockey_sessions.SessionRecord(session.id, session.store_id, session.selections, session.messages),
            new=session.new,
            response_id=self.response_id,
            question=self.req.question,
            query=query,
            answer=answer,
            moments=[moment_json(m) for m in cited],
        )
        session.new = False


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _item_text(item: JsonObj) -> str:
    if item["type"] == "message":
        return "".join(part["text"] for part in item["content"])
    return str(item.get("arguments") or item.get("output") or "")


def _cue(moment: Evidence) -> Cue:
    said = [moment.text, *(text for _, text in moment.context)]
    return Cue(marker(moment.start, moment.end), _LABEL.get(moment.source, moment.source), " / ".join(said))


def _annotations(
    text: str, extractive: str, exact: list[JsonObj], moments: Sequence[Evidence]
) -> list[JsonObj]:
    """Citations of ``text``: the extractive answer's own where it is that text (or its tail, after a
    fallback), and one per marker of a retrieved moment in whatever a model wrote before it."""
    model_part = text
    shifted: list[JsonObj] = []
    if extractive and text.endswith(extractive):
        offset = len(text) - len(extractive)
        model_part = text[:offset]
        shifted = [
            {**a, "start_index": a["start_index"] + offset, "end_index": a["end_index"] + offset}
            for a in exact
        ]
    by_marker: dict[str, Evidence] = {}
    for moment in moments:
        by_marker.setdefault(marker(moment.start, moment.end), moment)
    found: list[JsonObj] = []
    for mark, moment in by_marker.items():
        start = model_part.find(mark)
        while start != -1:
            found.append(citation(moment, start, len(mark)))
            start = model_part.find(mark, start + 1)
    return sorted(found, key=lambda a: a["start_index"]) + shifted
