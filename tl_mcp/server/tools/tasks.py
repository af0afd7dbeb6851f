"""Waiting on long work: the one way a job watches upstream work (`follow`), and `wait_for_task`.

`wait_for_task` serves every toolset (it belongs to `ingest` in the catalogue, where uploads start the
longest work): it resumes a job's relay, or watches a TwelveLabs id directly with progress and a
heartbeat. Both kinds of watch poll through `tl_mcp.api.poll`, so they back off alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from tl_mcp.api import PollPolicy, poll
from tl_mcp.api.errors import NotFoundError, TwelveLabsError
from tl_mcp.api.models.analyze_tasks import AnalyzeTask, parse_segments
from tl_mcp.redaction import mask_urls
from tl_mcp.server.errors import upstream
from tl_mcp.server.jobs.job import Job
from tl_mcp.server.jobs.relay import HEARTBEAT_S
from tl_mcp.server.results import Markdown, ToolResult, call, relayed_result, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import MAX_WAIT_S, Ctx, Id
from tl_mcp.server.toolspec import ToolSpec, tool

T = TypeVar("T")

TERMINAL_OK = frozenset({"ready", "completed", "complete", "done", "succeeded"})
TERMINAL_BAD = frozenset({"failed", "error", "canceled", "cancelled", "expired"})


#: What to do about a task that ended badly, by how it ended; any other bad end is told as a failure.
_AFTER_BAD_END = {
    "expired": "It ran out of time upstream and will not finish; start it again.",
    "canceled": "It was cancelled and will not finish; start it again if you still need it.",
    "cancelled": "It was cancelled and will not finish; start it again if you still need it.",
}
_AFTER_FAILURE = (
    "Nothing more will come of this task: fix what the reason names (for media: a video or audio file "
    "the API can decode, within its duration and size limits, at a URL it can fetch) and start it again."
)


def bad_end(what: str, task_id: str, status: str | None, reason: str | None) -> str | None:
    """What an agent is told about a task that ended badly (what, why, what to do); None if it did not."""
    if (status or "").lower() not in TERMINAL_BAD:
        return None
    why = mask_urls(reason.strip().rstrip(".")) if reason and reason.strip() else "no reason given"
    after = _AFTER_BAD_END.get((status or "").lower(), _AFTER_FAILURE)
    return f"{what} {task_id} ended with status {status}: {why}. {after}"


def refuse_bad_end(what: str, task_id: str, status: str, reason: str | None) -> None:
    """A task that `follow` saw end badly becomes the one error every task kind gives."""
    text = bad_end(what, task_id, status, reason)
    if text:
        raise ToolError(text)


def is_terminal(status: str | None) -> bool:
    return (status or "").lower() in TERMINAL_OK | TERMINAL_BAD


async def follow(
    job: Job,
    what: str,
    fetch: Callable[[], Awaitable[T]],
    status_of: Callable[[T], str | None],
    *,
    policy: PollPolicy,
    watching: str,
    known: str | None = None,
) -> T:
    """Watch upstream work for `job` until its status is terminal; every job's waiting goes through here.

    Each change becomes a note, the heartbeat says for how long, checks back off per `policy`, and the
    job's lifetime bounds the whole watch. `watching` is the call that checks the same work directly:
    an expired job names it.
    """
    job.watching = watching
    last: str | None = known or "<none>"
    started = time.monotonic()

    def seen(value: T) -> None:
        nonlocal last
        status = status_of(value)
        if status != last:
            job.emit_note(f"{what}: {status or 'unknown'}")
            last = status
        job.heartbeat = f"{what}: still {status or 'waiting'} after {time.monotonic() - started:.0f} s"

    def hiccup(exc: TwelveLabsError, delay: float) -> None:
        reason = f"HTTP {exc.status}" if exc.status else "no connection"
        job.heartbeat = f"{what}: TwelveLabs did not answer ({reason}); checking again in {delay:.0f} s"

    value = await poll(
        fetch, lambda v: is_terminal(status_of(v)), policy=policy, on_value=seen, on_transient=hiccup
    )
    job.watching = None
    return value


TaskKind = Literal[
    "auto",
    "job",
    "indexing_task",
    "indexed_asset",
    "knowledge_store_item",
    "embedding_task",
    "analyze_task",
    "asset",
]


class WaitResult(ToolResult):
    id: str
    kind: str
    status: str = Field(description='Upstream status, or "in_progress"/"completed"/"failed" for jobs.')
    done: bool = Field(description="True once nothing more will change.")
    job_id: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="For jobs: the original tool's result.")
    detail: dict[str, Any] | None = Field(default=None, description="The upstream object's key fields.")
    waited_s: float


Fetcher = Callable[[], Awaitable[tuple[str | None, dict[str, Any]]]]


def analyze_task_detail(task: AnalyzeTask) -> dict[str, Any]:
    """An analysis task's key fields; a time-based one's result as `segments` (start, end, fields)."""
    detail = task.model_dump(mode="json", exclude_none=True, exclude={"result"})
    if task.result is not None:
        detail["result"] = task.result.model_dump(mode="json", exclude_none=True, exclude={"data"})
        if task.analysis_mode == "time_based_metadata" and task.result.data:
            try:
                detail["segments"] = [s.model_dump(mode="json") for s in parse_segments(task.result.data)]
            except ValueError:
                detail["result"]["data"] = task.result.data
        else:
            detail["result"]["data"] = task.result.data
    return detail


async def _resolve(
    state: AppState, id: str, kind: TaskKind, index_id: str | None, knowledge_store_id: str | None
) -> tuple[str, Fetcher]:
    c = state.client

    def fetcher(k: str) -> Fetcher:
        async def fetch() -> tuple[str | None, dict[str, Any]]:
            if k == "indexed_asset":
                assert index_id
                obj: Any = await c.indexed_assets.get(index_id, id)
            elif k == "knowledge_store_item":
                assert knowledge_store_id
                obj = await c.knowledge.items.get(knowledge_store_id, id)
            elif k == "indexing_task":
                obj = await c.tasks.get(id)
            elif k == "embedding_task":
                obj = await c.embed.get_video_task(id)
            elif k == "analyze_task":
                task = await c.analyze.get_task(id)
                return task.status, analyze_task_detail(task)
            elif k == "analyze_batch":
                obj = await c.analyze.get_batch(id)
            else:
                obj = await c.assets.get(id)
            data = obj.model_dump(
                mode="json", exclude_none=True, exclude={"data", "transcription", "embedding"}
            )
            return getattr(obj, "status", None), data

        return fetch

    if kind == "indexed_asset" and not index_id:
        raise ToolError("kind=indexed_asset needs index_id.")
    if kind == "knowledge_store_item" and not knowledge_store_id:
        raise ToolError("kind=knowledge_store_item needs knowledge_store_id.")
    if kind != "auto":
        return kind, fetcher(kind)
    candidates: list[str] = []
    if knowledge_store_id:
        candidates.append("knowledge_store_item")
    if index_id:
        candidates.append("indexed_asset")
    candidates += ["indexing_task", "embedding_task", "analyze_task", "analyze_batch", "asset"]
    for k in candidates:
        fetch = fetcher(k)
        try:
            await fetch()
        except NotFoundError:
            continue
        return k, fetch
    raise ToolError(
        f"No task, indexed asset, item, embedding task, analysis task or batch, or asset has the id "
        f"{id!r}. For an indexed asset pass index_id, for a store item pass knowledge_store_id; job ids "
        "start with job_."
    )


@tool(toolset="ingest", title="Wait for a job or task", read_only=True, destructive=False, idempotent=True)
async def wait_for_task(
    ctx: Ctx,
    id: Annotated[Id, Field(description="A job_id from this server, or a TwelveLabs task/asset/item id.")],
    kind: Annotated[TaskKind, Field(description="What the id is; auto tries them in turn.")] = "auto",
    index_id: Annotated[Id | None, Field(description="Needed for indexed asset ids.")] = None,
    knowledge_store_id: Annotated[
        Id | None, Field(description="Needed for knowledge-store item ids.")
    ] = None,
    wait_s: Annotated[
        float, Field(ge=0, le=MAX_WAIT_S, description="Most seconds to wait now; call again to keep waiting.")
    ] = 60.0,
) -> Annotated[CallToolResult, WaitResult]:
    """Wait for long work and report its status: jobs, indexing, store items, embeddings, analyses.

    Use it after a result with status "in_progress" and a job_id: it resumes the progress where you left
    off and ends with the original tool's result. It also takes TwelveLabs task, asset and item ids.
    Each status change is a progress message (a heartbeat at least every 10 s); not done: call again.
    """
    state = app_state(ctx)
    started = time.monotonic()
    if id.startswith("job_") or kind == "job":
        job = await state.jobs.find(id)
        if job is None:
            raise ToolError(
                f"No job {id} on this server: jobs live in the server process and are forgotten "
                "after an hour or a restart, and belong to the credentials that started them. Start the "
                "work again."
            )
        job.handed_out = True
        outcome = await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)
        done = job.done.is_set()
        result = WaitResult(
            id=id,
            kind=f"job:{job.kind}",
            status=job.status,
            done=done,
            job_id=None if done else id,
            result=outcome.structured_content,
            waited_s=round(time.monotonic() - started, 3),
            backend=state.backend,
        )
        return relayed_result(result, outcome)

    with upstream(f"Checking {id}"):
        resolved, fetch = await _resolve(state, id, kind, index_id, knowledge_store_id)
        status, detail = await _watch(ctx, resolved, fetch, wait_s, state.client.poll)
    done = is_terminal(status)
    result = WaitResult(
        id=id,
        kind=resolved,
        status=status or "unknown",
        done=done,
        detail=detail,
        waited_s=round(time.monotonic() - started, 3),
        backend=state.backend,
    )
    md = Markdown(f"{resolved.replace('_', ' ')} {id}: {status or 'unknown'}")
    if not done:
        again = call(
            "wait_for_task",
            id=id,
            kind=resolved,
            index_id=index_id if resolved == "indexed_asset" else None,
            knowledge_store_id=knowledge_store_id if resolved == "knowledge_store_item" else None,
        )
        md.next_step(f"Not finished yet: {again} keeps waiting.")
    else:
        error = detail.get("error")
        reason = error.get("message") if isinstance(error, dict) else error
        ended = bad_end(resolved.replace("_", " ").capitalize(), id, status, str(reason) if reason else None)
        if ended:
            md.para(ended)
    return tool_result(result, md)


class _WaitOver(Exception):
    """No time left before the caller's wait_s ends."""


async def _watch(
    ctx: Ctx, what: str, fetch: Fetcher, wait_s: float, policy: PollPolicy
) -> tuple[str | None, dict[str, Any]]:
    """Poll until terminal or wait_s; each change is a progress message, plus a heartbeat when quiet.

    The checks back off like every other wait on upstream work; the one at the deadline is the last. If
    no check got an answer by then, the last transient error is the result.
    """
    started = time.monotonic()
    deadline = started + wait_s
    progress = 0.0
    last_status: str | None = None
    last_sent = float("-inf")
    latest: tuple[str | None, dict[str, Any]] | None = None
    failure: TwelveLabsError | None = None

    async def say(message: str) -> None:
        nonlocal progress, last_sent
        progress += 1
        last_sent = time.monotonic()
        await ctx.report_progress(progress, None, message)

    async def seen(value: tuple[str | None, dict[str, Any]]) -> None:
        nonlocal latest, last_status
        first = latest is None
        latest = value
        if first or value[0] != last_status:
            last_status = value[0]
            await say(f"{what}: {value[0]}")

    def failed(exc: TwelveLabsError, delay: float) -> None:
        nonlocal failure
        failure = exc

    async def wait(delay: float) -> None:
        if time.monotonic() >= deadline:
            raise _WaitOver
        until = min(time.monotonic() + delay, deadline)
        while (left := until - time.monotonic()) > 0:
            quiet = last_sent + HEARTBEAT_S - time.monotonic()
            if quiet <= 0:
                await say(f"{what}: still {last_status} after {time.monotonic() - started:.0f} s")
                continue
            await anyio.sleep(min(left, quiet))

    try:
        return await poll(
            fetch,
            lambda v: is_terminal(v[0]) or time.monotonic() >= deadline,
            policy=policy,
            on_value=seen,
            on_transient=failed,
            sleep=wait,
        )
    except _WaitOver:
        if latest is None:
            assert failure is not None
            raise failure from None
        return latest


TOOLS: list[ToolSpec] = [wait_for_task]
