"""`POST /responses` for the sandbox: an extractive Jockey over one knowledge store, as JSON or SSE.

One turn: validate the request (any of the three documented shapes), resolve the session, retrieve
moments across the store's ready items (the session's earlier questions widen short follow-ups), compose
a cited answer, and emit it. The same event list drives both modes: the JSON body is the final
``response.completed`` payload, the stream is every event in order. Sessions and turns live in SQLite.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.abc import ObjectSendStream
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tl_mcp.sandbox.errors import ApiError, found, invalid, missing
from tl_mcp.sandbox.jockey.compose import (
    MODEL_NAME,
    Answer,
    chunk_text,
    compose_answer,
    count_tokens,
    retrieval_query,
    selection_indexes,
    strip_selection_tokens,
)
from tl_mcp.sandbox.jockey.sse import DONE_FRAME, frame, sequence
from tl_mcp.sandbox.jockey.structured import SchemaError, check_schema, fill
from tl_mcp.sandbox.knowledge.models import Evidence, JockeyOptions, JsonObj
from tl_mcp.sandbox.knowledge.routes import get_service
from tl_mcp.sandbox.knowledge.service import KnowledgeService
from tl_mcp.sandbox.store.db import dumps, loads, now_iso
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.web import json_body

log = logging.getLogger(__name__)

MAX_INSTRUCTIONS = 2000
MAX_CONTENT = 10_000
MAX_METADATA_PAIRS = 16
_SELECTION_PREFIX = {"item": "ksi_", "collection": "ksic_"}


@dataclass(slots=True)
class TurnRequest:
    knowledge_store_id: str
    question: str
    stream: bool
    session_id: str | None = None
    instructions: str | None = None
    intermediate: bool = False
    schema: JsonObj | None = None
    schema_name: str | None = None
    selections: list[JsonObj] = field(default_factory=list)


def parse_request(body: JsonObj) -> TurnRequest:
    """Validate a `/responses` body; accepts shapes A (model + metadata), B (selections) and C (tools)."""
    model = body.get("model")
    if model is not None and model != MODEL_NAME:
        raise invalid(f"`model` must be `{MODEL_NAME}` (or left out); got `{str(model)[:40]}`.")

    store_id = body.get("knowledge_store_id")
    if store_id is not None and (not isinstance(store_id, str) or not store_id):
        raise invalid("`knowledge_store_id` must be a non-empty string (`ks_…`).")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("`tools` must be an array.")
        stores = [t for t in tools if isinstance(t, dict) and t.get("type") == "knowledge_store"]
        others = [t for t in tools if not (isinstance(t, dict) and t.get("type") == "knowledge_store")]
        if others:
            raise invalid(
                '`tools` accepts only `{"type": "knowledge_store", "knowledge_store_id": …}` entries.'
            )
        if len(stores) > 1:
            raise invalid(
                "`tools` must hold exactly one `knowledge_store` entry: a response reasons over one store."
            )
        if stores:
            tool_store = stores[0].get("knowledge_store_id")
            if not isinstance(tool_store, str) or not tool_store:
                raise invalid("`tools[0].knowledge_store_id` must be a non-empty string.")
            if store_id is not None and store_id != tool_store:
                raise invalid("`knowledge_store_id` and `tools[0].knowledge_store_id` name different stores.")
            store_id = tool_store
    if store_id is None:
        raise missing("knowledge_store_id", "Pass the `ks_…` id of the knowledge store to reason over.")

    raw_input = body.get("input")
    if raw_input is None:
        raise missing("input", 'Send `[{"type": "message", "role": "user", "content": "…"}]`.')
    if not isinstance(raw_input, list) or not raw_input:
        raise invalid(
            '`input` must be a non-empty array of `{"type": "message", "role": "user", "content": "…"}`.'
        )
    texts: list[str] = []
    for i, item in enumerate(raw_input):
        if not isinstance(item, dict):
            raise invalid(f"`input[{i}]` must be an object.")
        for name in ("type", "role", "content"):
            if name not in item:
                raise missing(f"input[{i}].{name}", "Each message needs `type`, `role` and `content`.")
        if item["type"] != "message":
            raise invalid(f"`input[{i}].type` must be `message`.")
        if item["role"] != "user":
            raise invalid(f"`input[{i}].role` must be `user`; use `instructions` for system guidance.")
        content = item["content"]
        if not isinstance(content, str):
            raise invalid(
                f"`input[{i}].content` must be a plain string (content-part arrays are not supported)."
            )
        if not 1 <= len(content) <= MAX_CONTENT:
            raise invalid(
                f"`input[{i}].content` must be 1 to {MAX_CONTENT} characters long; got {len(content)}."
            )
        texts.append(content)

    session_id = body.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise invalid("`session_id` must be the `sess_…` string of an earlier response.")
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid("`instructions` must be a string.")
        if len(instructions) > MAX_INSTRUCTIONS:
            raise invalid(
                f"`instructions` is {len(instructions)} characters long; the limit is {MAX_INSTRUCTIONS}. "
                "Shorten it."
            )
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or any(v != "intermediate_outputs" for v in include)
    ):
        raise invalid('`include` must be an array whose only allowed value is `"intermediate_outputs"`.')
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("`stream` must be a boolean.")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise invalid("`metadata` must be an object of string values.")
        if len(metadata) > MAX_METADATA_PAIRS:
            raise invalid(f"`metadata` allows at most {MAX_METADATA_PAIRS} pairs.")

    schema: JsonObj | None = None
    schema_name: str | None = None
    text = body.get("text")
    if text is not None:
        fmt = text.get("format") if isinstance(text, dict) else None
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_schema"):
            raise invalid(
                '`text.format` must be `{"type": "text"}` or `{"type": "json_schema", "name", "schema"}`.'
            )
        if fmt["type"] == "json_schema":
            if not isinstance(fmt.get("name"), str) or not fmt["name"]:
                raise missing("text.format.name")
            if "schema" not in fmt:
                raise missing("text.format.schema")
            try:
                schema = check_schema(fmt["schema"])
            except SchemaError as exc:
                raise invalid(str(exc)) from exc
            schema_name = fmt["name"]

    selections = body.get("selections") or []
    if not isinstance(selections, list):
        raise invalid("`selections` must be an array of `{kind, id}` objects.")
    for i, sel in enumerate(selections):
        if (
            not isinstance(sel, dict)
            or sel.get("kind") not in _SELECTION_PREFIX
            or not isinstance(sel.get("id"), str)
        ):
            raise invalid(f'`selections[{i}]` must be `{{"kind": "item"|"collection", "id": "…"}}`.')
        if not sel["id"].startswith(_SELECTION_PREFIX[sel["kind"]]):
            raise invalid(
                f"`selections[{i}].id` must start with `{_SELECTION_PREFIX[sel['kind']]}` "
                f"for kind `{sel['kind']}`."
            )
    question = "\n".join(texts)
    for n in selection_indexes(question):
        if n >= len(selections):
            raise invalid(f"`{{{{sel:{n}}}}}` refers to selection {n}, but only {len(selections)} were sent.")

    return TurnRequest(
        knowledge_store_id=store_id,
        question=question,
        stream=stream,
        session_id=session_id,
        instructions=instructions,
        intermediate=include is not None and "intermediate_outputs" in include,
        schema=schema,
        schema_name=schema_name,
        selections=[{"kind": s["kind"], "id": s["id"]} for s in selections],
    )


@dataclass(slots=True)
class Session:
    id: str
    store_id: str
    selections: list[JsonObj]
    messages: int
    questions: list[str]
    new: bool


def _open_session(svc: KnowledgeService, turn: TurnRequest) -> Session:
    if turn.session_id is None:
        return Session(new_id("sess"), turn.knowledge_store_id, list(turn.selections), 0, [], True)
    row = svc.db.one("SELECT * FROM jockey_sessions WHERE id = ?", (turn.session_id,))
    row = found(row, turn.session_id, "sessions")
    if row["store_id"] != turn.knowledge_store_id:
        raise invalid(
            f"Session `{turn.session_id}` belongs to knowledge store `{row['store_id']}`, not "
            f"`{turn.knowledge_store_id}`. Use the same store on every turn, or omit `session_id` to start "
            "a new session."
        )
    previous = [
        r["query"]
        for r in svc.db.all(
            "SELECT query FROM jockey_turns WHERE session_id = ? ORDER BY turn", (turn.session_id,)
        )
    ]
    selections = loads(row["selections"]) or []
    for sel in turn.selections:
        if sel not in selections:
            selections.append(sel)
    return Session(row["id"], row["store_id"], selections, int(row["messages"]), previous, False)


def _validate_selections(
    svc: KnowledgeService, store_id: str, selections: Sequence[JsonObj]
) -> list[str] | None:
    """Item ids the selections point at (None when there are none)."""
    if not selections:
        return None
    ids: list[str] = []
    for sel in selections:
        if sel["kind"] == "item":
            if (
                svc.db.one("SELECT id FROM ks_items WHERE id = ? AND store_id = ?", (sel["id"], store_id))
                is None
            ):
                raise invalid(f"Selection `{sel['id']}` is not an item of knowledge store `{store_id}`.")
            ids.append(sel["id"])
        else:
            if (
                svc.db.one(
                    "SELECT id FROM ks_collections WHERE id = ? AND store_id = ?", (sel["id"], store_id)
                )
                is None
            ):
                raise invalid(
                    f"Selection `{sel['id']}` is not an item collection of knowledge store `{store_id}`."
                )
            ids.extend(svc.collection_item_ids(sel["id"]))
    return list(dict.fromkeys(ids))


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
        self, svc: KnowledgeService, request: TurnRequest, session: Session, options: JockeyOptions
    ) -> None:
        self.svc = svc
        self.req = request
        self.session = session
        self.options = options
        self.response_id = new_id("resp")
        self.created_at = now_iso()
        self.output: list[JsonObj] = []
        self.input_tokens = 0
        self.output_tokens = 0
        #: Structured output only: the schema fields no evidence fitted.
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
            if self.unfilled is not None:
                # Sandbox-only: fields left null or empty because nothing retrieved fitted them.
                body["unfilled"] = self.unfilled
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
        self, send: ObjectSendStream[JsonObj], text: str, annotations: list[JsonObj], phase: str
    ) -> None:
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
        for chunk in chunk_text(text):
            if self.options.delta_delay_s:
                await anyio.sleep(self.options.delta_delay_s)
            await send.send({"type": "response.output_text.delta", **where, "delta": chunk})
        await send.send({"type": "response.output_text.done", **where, "text": text})
        part = {"type": "output_text", "text": text, "annotations": annotations}
        await send.send({"type": "response.content_part.done", **where, "part": part})
        item = _message(message_id, text, annotations, phase, "completed")
        self.output.append(item)
        await send.send({"type": "response.output_item.done", "output_index": index, "item": item})

    async def _answer(self, send: ObjectSendStream[JsonObj]) -> None:
        req, session = self.req, self.session
        question = strip_selection_tokens(req.question) or req.question
        query = retrieval_query(req.question, session.questions)
        scope = _validate_selections(self.svc, session.store_id, session.selections)
        counts = self.svc.status_counts(session.store_id)
        ready = counts.get("ready", 0)
        pending = sum(counts.get(s, 0) for s in ("queued", "pending", "processing"))

        if req.intermediate:
            await self._emit_message(
                send,
                f'Searching the knowledge store for moments that match "{_short(query)}".',
                [],
                "commentary",
            )
        if self.options.think_delay_s:
            await anyio.sleep(self.options.think_delay_s)
        found = await self.svc.moments(session.store_id, query, item_ids=scope)
        if scope is not None and not found:
            # Selections are a preference, not a boundary: fall back to the whole store.
            found = await self.svc.moments(session.store_id, query)
        moments = [m for m, _ in found]

        if req.intermediate:
            call_id = new_id("call")
            arguments = {"knowledge_store_id": session.store_id, "query": query, "page_size": 10}
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
                    "output": json.dumps({"results": [m.as_evidence() for m in moments[:10]]}),
                },
            )

        answer = compose_answer(question, moments, ready_items=ready, pending_items=pending)
        text, annotations = answer.text, answer.annotations
        if req.schema is not None:
            text, annotations = self._structured(question, answer, moments)

        evidence = " ".join(m.text for m in moments[:10])
        self.input_tokens = sum(
            count_tokens(t) for t in (req.instructions or "", req.question, evidence, *session.questions)
        )
        await self._emit_message(send, text, annotations, "final_answer")
        self.output_tokens = sum(count_tokens(_item_text(i)) for i in self.output)
        self._save(query, text)

    def _structured(
        self, question: str, answer: Answer, moments: Sequence[Evidence]
    ) -> tuple[str, list[JsonObj]]:
        assert self.req.schema is not None
        summary = " ".join(answer.text.split())
        self.unfilled = []
        value, problems = fill(
            self.req.schema, question=question, summary=summary, moments=moments[:5], unfilled=self.unfilled
        )
        if problems:
            raise ValueError(f"structured output does not validate: {problems[:3]}")
        # JSON text carries no citation markers, so there is nothing for annotations to locate.
        return json.dumps(value, ensure_ascii=False), []

    def _save(self, query: str, answer: str) -> None:
        session, stamp = self.session, now_iso()
        with self.svc.db.tx() as conn:
            if session.new:
                conn.execute(
                    "INSERT INTO jockey_sessions (id, store_id, selections, messages, created_at, updated_at)"
                    " "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (session.id, session.store_id, dumps(session.selections), session.messages, stamp, stamp),
                )
                session.new = False
            else:
                conn.execute(
                    "UPDATE jockey_sessions SET selections = ?, messages = ?, updated_at = ? WHERE id = ?",
                    (dumps(session.selections), session.messages, stamp, session.id),
                )
            turn = conn.execute(
                "SELECT COALESCE(MAX(turn), -1) + 1 AS n FROM jockey_turns WHERE session_id = ?",
                (session.id,),
            ).fetchone()["n"]
            conn.execute(
                "INSERT INTO jockey_turns (session_id, turn, response_id, question, query, answer,"
                " created_at)"
                " "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session.id, turn, self.response_id, self.req.question, query, answer, stamp),
            )


def _short(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _item_text(item: JsonObj) -> str:
    if item["type"] == "message":
        return "".join(part["text"] for part in item["content"])
    return str(item.get("arguments") or item.get("output") or "")


async def _frames(turn: Turn, options: JockeyOptions) -> AsyncIterator[bytes]:
    send, receive = anyio.create_memory_object_stream[JsonObj](16)
    async with anyio.create_task_group() as tg:
        tg.start_soon(turn.run, send)
        async for event in sequence(receive, keepalive_interval=options.keepalive_interval_s):
            yield frame(event)
    yield DONE_FRAME


async def create_response(request: Request) -> Response:
    try:
        svc = get_service(request)
        turn_request = parse_request(await json_body(request))
        svc.store_row(turn_request.knowledge_store_id)
        session = _open_session(svc, turn_request)
        _validate_selections(svc, session.store_id, session.selections)
    except ApiError as exc:
        return exc.response()
    options = svc.options
    turn = Turn(svc, turn_request, session, options)
    if turn_request.stream:
        return StreamingResponse(
            _frames(turn, options),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    send, receive = anyio.create_memory_object_stream[JsonObj](1024)
    final: JsonObj | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(turn.run, send)
        async with receive:
            async for event in receive:
                if event["type"] in ("response.completed", "response.failed"):
                    final = event["response"]
    assert final is not None
    return JSONResponse(final)


routes: list[Route] = [Route("/responses", create_response, methods=["POST"])]
