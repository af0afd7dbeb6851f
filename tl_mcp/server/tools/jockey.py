"""Toolset `jockey`: ask Jockey about a knowledge store, streaming its answer as progress."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api.errors import NotFoundError, StreamError, TwelveLabsError
from tl_mcp.api.models import (
    MAX_INSTRUCTIONS_CHARS,
    GeneratedBy,
    JsonSchemaFormat,
    Keepalive,
    ResponseDone,
    ResponseObject,
    ResponseRequest,
    ResponseStarted,
    Selection,
    StepUpdate,
    TextDelta,
)
from tl_mcp.server.errors import explain
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Resumed
from tl_mcp.server.principals import current_principal
from tl_mcp.server.results import FILL, JobResult, Json, Markdown, call, fmt_seconds, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS
from tl_mcp.server.tools.citations import Moment, cited_moments
from tl_mcp.server.toolspec import ToolSpec, tool

MAX_INPUT = 10_000


class Step(BaseModel):
    type: str
    name: str | None = None
    summary: str


class Usage(BaseModel):
    input_tokens: int | None = None
    output_tokens: int | None = None


class JockeyResult(JobResult[Literal["completed", "in_progress", "incomplete"]]):
    awaited: ClassVar[str] = "to receive the rest of the answer"

    response_id: str | None = None
    session_id: str | None = Field(default=None, description="For continue_session.")
    knowledge_store_id: str
    text: str
    citations: list[Moment] = Field(default_factory=list)
    parsed: Json = None
    steps: list[Step] | None = None
    usage: Usage | None = None


class SelectionArg(BaseModel):
    kind: Literal["item", "collection"] = Field(description="item (ksi_…) or collection (ksic_…).")
    id: Id


Input = Annotated[str, Field(min_length=1, max_length=MAX_INPUT, description="The question or instruction.")]
Instructions = Annotated[
    str | None,
    Field(
        default=None,
        max_length=MAX_INSTRUCTIONS_CHARS,
        description="System prompt, e.g. 'You are a compliance reviewer…'.",
    ),
]
OutputSchema = Annotated[
    dict[str, Any] | None,
    Field(default=None, description="JSON Schema (object) for a JSON answer in `parsed`."),
]
Selections = Annotated[
    list[SelectionArg] | None,
    Field(default=None, max_length=20, description="Limit the turn to these items/collections ({{sel:N}})."),
]
Intermediate = Annotated[
    bool,
    Field(description="Also return (and stream) Jockey's steps."),
]


def _text_format(schema: dict[str, Any] | None) -> JsonSchemaFormat | None:
    if schema is None:
        return None
    # jsonschema (and its referencing/rpds stack) only matters once a schema is given: not at start-up.
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ToolError(
            f"output_schema is not a valid JSON Schema: {exc.message}. Fix it and call again."
        ) from None
    if schema.get("type") not in (None, "object"):
        raise ToolError('output_schema must describe a JSON object ({"type": "object", "properties": …}).')
    return JsonSchemaFormat.model_validate({"name": "answer", "schema": schema})


def _markdown(
    result: JockeyResult, *, parse_error: str | None = None, made: GeneratedBy | None = None
) -> Markdown:
    md = Markdown(result.titled("Jockey answer")).para(result.text or "_(no text yet)_")
    if made is not None:
        md.para(made.line())
    if result.citations:
        md.section(
            "Cited moments",
            [
                f"- {c.marker} {c.title or c.item_id or c.video_id or ''} "
                f"{fmt_seconds(c.start_sec)}–{fmt_seconds(c.end_sec)}"
                + (f" ({c.ids()})" if c.item_id or c.asset_id else "")
                for c in result.citations
            ],
        )
    followed = next((c for c in result.citations if c.asset_id), None)
    if followed:
        window = (
            f", start_time={followed.start_sec:g}, end_time={followed.end_sec:g}"
            if followed.start_sec is not None and followed.end_sec is not None
            else ""
        )
        md.next_step(
            f"Look closer at {followed.marker}: "
            f'analyze_video(asset_id="{followed.asset_id}"{window}, prompt=…)'
            + (
                f'; get_video(index_id="{followed.index_id}", video_id="{followed.video_id}")'
                if followed.video_id
                else ""
            )
            + "."
        )
    if result.steps:
        md.section("Intermediate steps", [f"- {s.summary}" for s in result.steps])
    if parse_error:
        md.para(f"Note: the answer is not valid JSON for output_schema ({parse_error}); `parsed` is empty.")
    md.field("Knowledge store", result.knowledge_store_id).field("Session", result.session_id)
    if result.in_progress:
        md.next_step(result.wait_step())
    elif result.session_id:
        md.next_step(
            f"Ask a follow-up with {call('continue_session', session_id=result.session_id, input=FILL)}."
        )
    if result.status == "incomplete":
        md.para("The answer is incomplete (Jockey stopped early); ask again or narrow the question.")
    return md


async def _turn(
    ctx: Ctx,
    *,
    knowledge_store_id: str,
    input: str,
    session_id: str | None,
    instructions: str | None,
    include_intermediate_outputs: bool,
    output_schema: dict[str, Any] | None,
    selections: list[SelectionArg] | None,
    wait_s: float,
) -> CallToolResult:
    state = app_state(ctx)
    try:
        request = ResponseRequest(
            knowledge_store_id=knowledge_store_id,
            input=[{"type": "message", "role": "user", "content": input}],
            session_id=session_id,
            instructions=instructions,
            include=["intermediate_outputs"] if include_intermediate_outputs else None,
            text_format=_text_format(output_schema),
            selections=[Selection(kind=s.kind, id=s.id) for s in selections] if selections else None,
        )
    except ValueError as exc:
        raise ToolError(f"Invalid request: {exc}") from None

    progress = JockeyProgress(
        session_id=session_id, knowledge_store_id=knowledge_store_id, follows=session_id
    )

    def base(job: Job, status: Literal["completed", "in_progress", "incomplete"], text: str) -> JockeyResult:
        steps = progress.steps if include_intermediate_outputs else None
        return JockeyResult(
            status=status,
            job_id=job.id,
            response_id=progress.response_id,
            session_id=progress.session_id or session_id,
            knowledge_store_id=knowledge_store_id,
            text=text,
            steps=None if steps is None else list(steps),
            backend=state.backend,
        )

    def partial(job: Job) -> CallToolResult:
        result = base(job, "in_progress", job.text)
        return tool_result(result, _markdown(result))

    async def work(job: Job) -> CallToolResult:
        return await _stream(state, job, progress, request, base)

    job = state.jobs.start("jockey", f"Jockey answer on {knowledge_store_id}", work, partial, progress)
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


@dataclass
class JockeyProgress(JobProgress):
    """A Jockey answer streaming in this process: what it learned of its response and session."""

    code: ClassVar[str] = "j"

    session_id: str | None = None
    response_id: str | None = None
    #: None until the stream starts.
    steps: list[Step] | None = None
    knowledge_store_id: str | None = None
    #: The session this turn continues (None: a first turn, whose session may not have kept it).
    follows: str | None = None

    def handles(self) -> list[str]:
        # Never resumable elsewhere, but a signed id lets another replica explain what to do instead.
        return [secrets.token_hex(6), self.session_id or ""]

    def again(self) -> str:
        if self.follows:
            return call("continue_session", session_id=self.follows, input=FILL)
        return call("create_response", knowledge_store_id=self.knowledge_store_id, input=FILL)


def resume_jockey(state: Callable[[], AppState], job_id: str, fields: list[str]) -> Resumed:
    """A Jockey stream cannot move between processes: say how to ask again."""
    session = fields[1] if len(fields) > 1 else ""
    retry = (
        f'continue_session(session_id="{session}", input=<the same question>)'
        if session
        else "create_response with the same question"
    )
    raise ToolError(
        f"Job {job_id[:40]}… is a Jockey answer that was streaming on another replica of this "
        "server. A Jockey stream lives in the process that opened it and cannot be picked up "
        f"elsewhere (or the replica restarted). Ask again: {retry}; a longer wait_s keeps the "
        "answer in one call."
    )


async def _stream(
    state: AppState, job: Job, progress: JockeyProgress, request: ResponseRequest, base: Any
) -> CallToolResult:
    steps: list[Step] = []
    progress.steps = steps
    final: ResponseObject | None = None
    try:
        async for update in state.client.responses.stream(request):
            if isinstance(update, ResponseStarted):
                progress.response_id = update.response_id
                if update.session_id:
                    progress.session_id = update.session_id
                    await state.sessions.remember(update.session_id, request.knowledge_store_id, job.owner)
            elif isinstance(update, TextDelta):
                job.emit_text(update.text)
            elif isinstance(update, StepUpdate):
                step = Step(type=update.item.type, name=update.item.name, summary=update.summary)
                steps.append(step)
                job.emit_note(f"[step] {update.summary}")
            elif isinstance(update, ResponseDone):
                final = update.response
            elif isinstance(update, Keepalive):
                continue
    except StreamError as exc:
        raise ToolError(await _cut_off(state, job, request, exc)) from None
    except NotFoundError as exc:
        if request.session_id and "session" in exc.message.lower():
            raise ToolError(_no_such_session(request.session_id, request.knowledge_store_id)) from None
        raise ToolError(explain("Jockey response", exc)) from None
    except TwelveLabsError as exc:
        raise ToolError(explain("Jockey response", exc)) from None
    if final is None:
        raise ToolError(
            "Jockey response failed: the stream ended without a final response. Retry the question."
        )
    text = final.output_text
    if text.startswith(job.text):
        # The final text is authoritative; relaying the missing tail keeps progress == text.
        job.emit_text(text[len(job.text) :])
    else:
        # A piece of the stream was lost on the way (an unreadable event): progress cannot be taken back.
        job.emit_note("[note] the streamed text missed a piece; the result holds the complete answer")
    if final.session_id:
        progress.session_id = final.session_id
        await state.sessions.remember(final.session_id, request.knowledge_store_id, job.owner)
    progress.response_id = final.id
    status: Literal["completed", "incomplete"] = "incomplete" if final.status == "incomplete" else "completed"
    result: JockeyResult = base(job, status, text)
    result.citations = await cited_moments(state, request, final)
    if final.usage:
        result.usage = Usage(input_tokens=final.usage.input_tokens, output_tokens=final.usage.output_tokens)
    parse_error = None
    if request.text_format is not None:
        try:
            result.parsed = json.loads(text)
        except ValueError as exc:
            parse_error = str(exc)
    return tool_result(result, _markdown(result, parse_error=parse_error, made=final.generated_by))


def _no_such_session(session_id: str, knowledge_store_id: str) -> str:
    # Also the answer for another caller's session, so it tells nothing about whether that one exists.
    return (
        f"Jockey response failed: session {session_id} does not exist upstream (HTTP 404); a turn "
        "that was cut off before it completed may never have saved its session. Start a new "
        f"conversation with create_response on {knowledge_store_id}."
    )


async def _cut_off(state: AppState, job: Job, request: ResponseRequest, exc: StreamError) -> str:
    """The error for a stream that ended early: the partial answer, the session, and how to go on."""
    session = exc.session_id or request.session_id
    if session:
        await state.sessions.remember(session, request.knowledge_store_id, job.owner)
    partial_text = exc.partial_text or job.text
    text = explain("Jockey response", exc)
    if partial_text:
        text += f"\n\nPartial answer before the failure:\n{partial_text}"
    if request.session_id:
        # The earlier turns of an existing session are kept upstream whatever happened to this one.
        text += (
            f"\n\nSession {request.session_id} still holds the earlier turns: ask again with "
            f'continue_session(session_id="{request.session_id}", input=…).'
        )
    else:
        # Whether an interrupted first turn saved its session is undocumented: only a fresh start is sure.
        text += (
            f"\n\nSession {session or '(none yet)'} may not have recorded this interrupted turn: ask again "
            f'with create_response(knowledge_store_id="{request.knowledge_store_id}", input=…).'
        )
    return text


@tool(
    toolset="jockey",
    title="Ask Jockey about a knowledge store",
    read_only=True,
    destructive=False,
    idempotent=False,
)
async def create_response(
    knowledge_store_id: Annotated[Id, Field(description="From list_knowledge_stores.")],
    input: Input,
    ctx: Ctx,
    instructions: Instructions = None,
    include_intermediate_outputs: Intermediate = False,
    output_schema: OutputSchema = None,
    selections: Selections = None,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, JockeyResult]:
    """Ask Jockey about the videos in a knowledge store; the answer cites exact moments.

    Use it to understand, summarize, compare or find things across a collection ("What are the main
    themes?", "When is pricing mentioned?"). The text streams as progress.

    Hints:
    - The store needs a ready item (upload_asset with knowledge_store_id, then wait_for_task).
    - Follow-ups: continue_session. Just the moments: search_videos is faster.
    """
    return await _turn(
        ctx,
        knowledge_store_id=knowledge_store_id,
        input=input,
        session_id=None,
        instructions=instructions,
        include_intermediate_outputs=include_intermediate_outputs,
        output_schema=output_schema,
        selections=selections,
        wait_s=wait_s,
    )


@tool(
    toolset="jockey",
    title="Continue a Jockey conversation",
    read_only=True,
    destructive=False,
    idempotent=False,
)
async def continue_session(
    session_id: Annotated[Id, Field(description="From create_response.")],
    input: Input,
    ctx: Ctx,
    knowledge_store_id: Annotated[
        Id | None, Field(description="Only if the server forgot the session's store.")
    ] = None,
    instructions: Instructions = None,
    include_intermediate_outputs: Intermediate = False,
    output_schema: OutputSchema = None,
    selections: Selections = None,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, JockeyResult]:
    """Ask a follow-up in a Jockey session; Jockey keeps the earlier turns in mind.

    Use it after create_response, with its session_id ("tell me more", "and in the second video?");
    the result is like create_response's.
    """
    state = app_state(ctx)
    caller = current_principal()
    if await state.sessions.foreign(session_id, caller):
        # Someone else's session: answer as for a session that is unknown here or gone upstream.
        if knowledge_store_id is not None:
            raise ToolError(_no_such_session(session_id, knowledge_store_id))
        store = None
    else:
        store = knowledge_store_id or await state.sessions.get(session_id, caller)
    if store is None:
        raise ToolError(
            f"Session {session_id} is not known to this server (it may have been created before a restart, "
            "by another server, or with other credentials). Call continue_session again with "
            "knowledge_store_id set to the store the session was started on."
        )
    return await _turn(
        ctx,
        knowledge_store_id=store,
        input=input,
        session_id=session_id,
        instructions=instructions,
        include_intermediate_outputs=include_intermediate_outputs,
        output_schema=output_schema,
        selections=selections,
        wait_s=wait_s,
    )


TOOLS: list[ToolSpec] = [create_response, continue_session]
