"""Toolset `analysis_tasks`, the work already started: list analysis tasks and batches, cancel one.
Deleting one is in `admin.py` (toolset admin); starting one is `analysis_tasks.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, get_args

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api import TwelveLabsError
from tl_mcp.api.errors import ConflictError, NotFoundError
from tl_mcp.api.models.analyze_tasks import AnalyzeBatch, AnalyzeTask
from tl_mcp.redaction import display_url
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.results import Listing, Markdown, Page, ToolResult, call, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import Ctx, Id, PageLimit, PageNumber
from tl_mcp.server.toolspec import ToolSpec, tool

TaskStatus = Literal["queued", "pending", "processing", "ready", "failed", "canceled"]
BatchStatus = Literal["pending", "processing", "canceling", "canceled", "completed", "expired"]
_TASK_STATUSES: frozenset[str] = frozenset(get_args(TaskStatus))
_BATCH_STATUSES: frozenset[str] = frozenset(get_args(BatchStatus))


class AnalysisTaskInfo(BaseModel):
    task_id: str | None = None
    batch_id: str | None = Field(default=None, description="A task's batch, or the batch listed.")
    status: str
    analysis_mode: str | None = None
    source: str | None = Field(default=None, description="The task's asset_id or URL.")
    items: str | None = Field(default=None, description="A batch: how many of its videos are done.")
    created_at: str | None = None
    completed_at: str | None = None


class AnalysisTaskList(Listing):
    kind: Literal["task", "batch"]
    tasks: list[AnalysisTaskInfo]


def _task_info(t: AnalyzeTask) -> AnalysisTaskInfo:
    source = t.video_source or {}
    return AnalysisTaskInfo(
        task_id=t.task_id,
        batch_id=t.batch_id,
        status=t.status,
        analysis_mode=t.analysis_mode,
        source=source.get("asset_id") or display_url(source.get("url") or "") or source.get("video_id"),
        created_at=t.created_at,
        completed_at=t.completed_at,
    )


def _batch_info(b: AnalyzeBatch) -> AnalysisTaskInfo:
    done = b.ready_items + b.failed_items + b.canceled_items
    return AnalysisTaskInfo(
        batch_id=b.batch_id,
        status=b.status,
        analysis_mode=b.analysis_mode,
        items=f"{done} of {b.total_items} done ({b.ready_items} ready, {b.failed_items} failed, "
        f"{b.canceled_items} canceled)",
        created_at=b.created_at,
        completed_at=b.completed_at or b.canceled_at or b.expired_at,
    )


def _list_line(i: AnalysisTaskInfo) -> str:
    if i.task_id is None:
        return f"- batch `{i.batch_id}` {i.status} — {i.analysis_mode or 'general'}, {i.items}"
    batch = f", in batch `{i.batch_id}`" if i.batch_id else ""
    return f"- `{i.task_id}` {i.status} — {i.analysis_mode or 'general'} of {i.source or 'an image'}{batch}"


@tool(
    toolset="analysis_tasks",
    title="List video analysis tasks or batches",
    read_only=True,
    destructive=False,
    idempotent=True,
)
async def list_analysis_tasks(
    ctx: Ctx,
    kind: Annotated[Literal["task", "batch"], Field(description="Tasks, or batches of them.")] = "task",
    status: Annotated[
        list[TaskStatus | BatchStatus] | None,
        Field(
            min_length=1,
            description="Tasks: queued pending processing ready failed canceled. Batches: "
            "pending processing canceling canceled completed expired.",
        ),
    ] = None,
    asset_id: Annotated[Id | None, Field(description="Tasks of this asset.")] = None,
    video_url: Annotated[str | None, Field(max_length=2048, description="Tasks of this URL.")] = None,
    analysis_mode: Literal["general", "time_based_metadata"] | None = None,
    page: PageNumber = 1,
    page_limit: PageLimit = 20,
) -> Annotated[CallToolResult, AnalysisTaskList]:
    """List analysis tasks (or batches), newest first, with their status.

    Use it to find a task_id or batch_id for wait_for_task, cancel_analysis_task or
    delete_analysis_task, or to see what is still running (status).
    """
    state = app_state(ctx)
    allowed = _TASK_STATUSES if kind == "task" else _BATCH_STATUSES
    wrong = [s for s in status or [] if s not in allowed]
    if wrong:
        raise ToolError(
            f"status {', '.join(wrong)} is not a {kind} status; a {kind} is one of "
            f"{', '.join(sorted(allowed))}."
        )
    if kind == "batch" and (asset_id is not None or video_url is not None):
        raise ToolError(
            "Batches are not listed by asset_id or video_url; list their tasks instead (kind task)."
        )
    infos: list[AnalysisTaskInfo]
    with upstream(f"Listing analysis {kind}s"):
        if kind == "task":
            tasks = await state.client.analyze.list_tasks(
                page,
                page_limit,
                status=status,
                asset_id=asset_id,
                video_url=video_url,
                analysis_mode=analysis_mode,
            )
            infos, has_more, total = [_task_info(t) for t in tasks.data], tasks.has_more, tasks.page_info
        else:
            found = await state.client.analyze.list_batches(
                page, page_limit, status=status, analysis_mode=analysis_mode
            )
            infos, has_more, total = [_batch_info(b) for b in found.data], found.has_more, found.page_info
    out = AnalysisTaskList(
        kind=kind, tasks=infos, page=page, total_pages=total.total_page, backend=state.backend
    )
    more = call(
        "list_analysis_tasks",
        kind=None if kind == "task" else kind,
        status=status,
        asset_id=asset_id,
        video_url=video_url,
        analysis_mode=analysis_mode,
        page=page + 1,
        page_limit=page_limit,
    )
    filtered = any(v is not None for v in (status, asset_id, video_url, analysis_mode))
    md = Page(infos, more if has_more else None).render(
        Markdown(f"Analysis {kind}s ({len(infos)})"),
        f"{kind.capitalize()}s",
        _list_line,
        f"No {kind} matches." if filtered else f"No analysis {kind}s yet: start_analysis_task starts one.",
    )
    if infos:
        first = infos[0]
        follow_it = (
            call("wait_for_task", id=first.task_id, kind="analyze_task")
            if first.task_id
            else call("wait_for_task", id=first.batch_id)
        )
        md.next_step(f"Status or result of one: {follow_it}.")
        running = next((i for i in infos if i.status in _RUNNING), None)
        if running is not None:
            stop = (
                call("cancel_analysis_task", batch_id=running.batch_id)
                if running.task_id is None or running.batch_id
                else call("cancel_analysis_task", task_id=running.task_id)
            )
            md.next_step(f"Stop one still running: {stop}.")
    return tool_result(out, md)


#: Statuses of a task or batch that cancelling stops.
_RUNNING = frozenset({"queued", "pending", "processing"})


class AnalysisCanceled(ToolResult):
    task_id: str | None = None
    batch_id: str | None = None
    task_status: str = Field(description="TwelveLabs' status of the task or batch, after the call.")
    canceled: bool = Field(description="false: it had already ended or been canceled; nothing changed.")
    items: str | None = Field(default=None, description="A batch: how many of its videos are done.")


@tool(
    toolset="analysis_tasks",
    title="Cancel a video analysis task or batch",
    read_only=False,
    destructive=True,
    idempotent=True,
)
async def cancel_analysis_task(
    ctx: Ctx,
    task_id: Annotated[Id | None, Field(description="The task to stop.")] = None,
    batch_id: Annotated[Id | None, Field(description="The batch to stop (its queued videos).")] = None,
) -> Annotated[CallToolResult, AnalysisCanceled]:
    """Stop a queued or running analysis task, or a batch's queued videos. Irreversible; safe to repeat.

    Use it when the user no longer wants the result (it stops billing). One already ended is left as is.
    """
    state = app_state(ctx)
    if (task_id is None) == (batch_id is None):
        raise ToolError("Give task_id or batch_id (one of them); list_analysis_tasks shows both.")
    analyze = state.client.analyze
    if task_id is not None:
        task = await _read(f"analysis task {task_id}", lambda: analyze.get_task(task_id), "task")
        if task.status not in _RUNNING:
            return _canceled(state, task_id, None, task.status, changed=False)
        if task.batch_id:
            raise ToolError(
                f"Analysis task {task_id} belongs to batch {task.batch_id}, and is cancelled with it: "
                f"call {call('cancel_analysis_task', batch_id=task.batch_id)}. Nothing was changed."
            )
        try:
            done = await analyze.cancel_task(task_id)
        except ConflictError:
            # It ended between the read and the cancel: that end is what there is to tell.
            task = await _read(f"analysis task {task_id}", lambda: analyze.get_task(task_id), "task")
            return _canceled(state, task_id, None, task.status, changed=False)
        except TwelveLabsError as exc:
            raise ToolError(explain(f"Cancelling analysis task {task_id}", exc)) from None
        return _canceled(state, task_id, None, done.status, changed=True)
    assert batch_id is not None
    batch = await _read(f"analysis batch {batch_id}", lambda: analyze.get_batch(batch_id), "batch")
    if batch.done or batch.status == "canceling":
        return _canceled(state, None, batch_id, batch.status, changed=False, items=_batch_info(batch).items)
    try:
        batch = await analyze.cancel_batch(batch_id)
    except ConflictError:
        batch = await _read(f"analysis batch {batch_id}", lambda: analyze.get_batch(batch_id), "batch")
        return _canceled(state, None, batch_id, batch.status, changed=False, items=_batch_info(batch).items)
    except TwelveLabsError as exc:
        raise ToolError(explain(f"Cancelling analysis batch {batch_id}", exc)) from None
    return _canceled(state, None, batch_id, batch.status, changed=True, items=_batch_info(batch).items)


async def _read(what: str, get: Callable[[], Awaitable[Any]], kind: str) -> Any:
    try:
        return await get()
    except NotFoundError:
        lister = call("list_analysis_tasks", kind=None if kind == "task" else kind)
        raise ToolError(
            f"There is no {what}: the id is wrong or it was deleted ({lister} shows what exists). "
            "Nothing was changed."
        ) from None
    except TwelveLabsError as exc:
        raise ToolError(explain(f"Reading {what}", exc)) from None


def _canceled(
    state: AppState,
    task_id: str | None,
    batch_id: str | None,
    status: str,
    *,
    changed: bool,
    items: str | None = None,
) -> CallToolResult:
    out = AnalysisCanceled(
        task_id=task_id,
        batch_id=batch_id,
        task_status=status,
        canceled=changed,
        items=items,
        backend=state.backend,
    )
    what = f"analysis task {task_id}" if task_id else f"analysis batch {batch_id}"
    if changed:
        md = Markdown(f"Canceled {what}").field("Status", status).field("Videos", items)
        md.para("This cannot be undone; work already started may run on briefly.")
    else:
        md = Markdown(f"Nothing to cancel: {what} is already {status}").field("Videos", items)
        md.para("Nothing was changed.")
    ref = {"task_id": task_id} if task_id else {"batch_id": batch_id}
    follow_it = (
        call("wait_for_task", id=task_id, kind="analyze_task")
        if task_id
        else call("wait_for_task", id=batch_id)
    )
    md.next_step(f"What it holds now: {follow_it}.")
    md.next_step(f"To remove it (toolset admin): {call('delete_analysis_task', **ref)}.")
    return tool_result(out, md)


TOOLS: list[ToolSpec] = [list_analysis_tasks, cancel_analysis_task]
