"""Toolset `analysis_tasks`: Pegasus analysis as async tasks (`/analyze/tasks`) and batches
(`/analyze/batches`), run as jobs: time-based segments with custom fields, long videos, one request over
many videos. `wait_for_task` follows the job and ends with the segments as structured data.

A retried call does not pay twice: the client derives the task's `custom_id` (and `Idempotency-Key`)
from the request, so the same arguments find the task the first call started.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, get_args

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field, ValidationError

from tl_mcp.api import TwelveLabsClient, TwelveLabsError
from tl_mcp.api.errors import ConflictError, NotFoundError
from tl_mcp.api.models import (
    AnalyzeBatchRequest,
    AnalyzeRequest,
    BatchItem,
    GeneratedBy,
    ResponseFormat,
    SegmentDefinition,
    SegmentFormat,
)
from tl_mcp.api.models.analyze import AnalyzeBatch, AnalyzeTask, BatchResult, PegasusModel, parse_segments
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Resumed
from tl_mcp.server.jobs.portable import unknown_kind
from tl_mcp.server.results import (
    JobResult,
    JobStatus,
    Json,
    Listing,
    Markdown,
    Page,
    ToolResult,
    call,
    fmt_seconds,
    tool_result,
)
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, PageLimit, PageNumber, WaitS
from tl_mcp.server.tools.analyze import SANDBOX_NOTE, AssetId, IndexId, Url, VideoId, resolve_source
from tl_mcp.server.tools.tasks import TERMINAL_BAD, follow
from tl_mcp.server.toolspec import ToolSpec, tool

#: Videos one call may batch; the API takes up to 1,000, but one result listing them all stays readable.
MAX_BATCH = 50


class Segment(BaseModel):
    definition: str = Field(description="The segment definition id it matches.")
    start: float
    end: float
    fields: dict[str, Json] = Field(default_factory=dict)


class BatchItemResult(BaseModel):
    asset_id: str | None = None
    task_id: str
    custom_id: str | None = None
    status: str
    error: str | None = None
    error_code: str | None = None
    text: str | None = None
    segments: list[Segment] | None = None


class AnalysisTaskResult(JobResult[JobStatus]):
    task_id: str | None = None
    batch_id: str | None = None
    video: dict[str, str] | None = None
    task_status: str | None = Field(default=None, description="TwelveLabs' status of the task or batch.")
    segments: list[Segment] | None = Field(default=None, description="Time-based metadata, in time order.")
    text: str | None = None
    parsed: Json = None
    warning: str | None = None
    items: list[BatchItemResult] | None = Field(default=None, description="A batch: one per video.")
    reused: bool = Field(default=False, description="An earlier identical call had started this work.")


def _outcome(mode: str, data: str | None) -> tuple[list[Segment] | None, str | None, Json]:
    """(segments, text, parsed JSON) of a finished task's `data`."""
    if data is None:
        return None, None, None
    if mode == "time_based_metadata":
        try:
            return [Segment(**s.model_dump()) for s in parse_segments(data)], None, None
        except ValueError:
            return None, data, None
    try:
        parsed: Json = json.loads(data)
    except ValueError:
        parsed = None
    return None, data, parsed if isinstance(parsed, dict | list) else None


def _markdown(r: AnalysisTaskResult, made: GeneratedBy | None = None) -> Markdown:
    md = Markdown(r.titled("Video analysis task" if r.batch_id is None else "Video analysis batch"))
    md.field("Task", r.task_id).field("Batch", r.batch_id).field("Status", r.task_status)
    if r.video:
        md.field("Source", ", ".join(f"{k} {v}" for k, v in r.video.items()))
    if r.reused:
        md.para("An identical earlier call had started this work; it is reused, not paid for again.")
    if r.segments is not None:
        md.section("Segments", [_segment_line(s) for s in r.segments] or ["_(no segment matched)_"])
    elif r.text is not None:
        md.para(r.text)
    for item in r.items or []:
        head = f"{item.asset_id or item.task_id}: {item.status}"
        if item.error:
            head += f" ({item.error_code + ': ' if item.error_code else ''}{item.error})"
        lines = [_segment_line(s) for s in item.segments or []]
        md.section(head, lines or ([item.text] if item.text else []))
    if r.warning:
        md.para(f"Warning: {r.warning}")
    if made is not None:
        md.para(made.line())
    elif r.backend == "sandbox":
        md.para(SANDBOX_NOTE)
    if r.in_progress:
        md.next_step(r.wait_step())
    return md


def _segment_line(s: Segment) -> str:
    fields = "; ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in s.fields.items())
    return f"- {fmt_seconds(s.start)}–{fmt_seconds(s.end)} **{s.definition}** {fields}".rstrip()


@dataclass
class AnalysisTaskProgress(JobProgress):
    """An analysis task or batch: once it exists upstream, any replica can follow it."""

    code: ClassVar[str] = "t"
    movable: ClassVar[bool] = True

    kind: Literal["task", "batch"] = "task"
    upstream_id: str | None = None
    assets: list[str] = field(default_factory=list)

    def handles(self) -> list[str] | None:
        return [self.kind, self.upstream_id] if self.upstream_id else None


async def follow_task(client: TwelveLabsClient, job: Job, task_id: str) -> AnalyzeTask:
    with upstream("Video analysis task"):
        task = await follow(
            job,
            f"Analysis task {task_id}",
            lambda: client.analyze.get_task(task_id),
            lambda t: t.status,
            policy=client.poll,
            watching=call("wait_for_task", id=task_id, kind="analyze_task"),
        )
    if task.status.lower() in TERMINAL_BAD:
        reason = task.error.message if task.error and task.error.message else "no reason given"
        raise ToolError(f"Video analysis task {task_id} ended with status {task.status}: {reason}.")
    return task


def _task_result(
    task: AnalyzeTask, app: AppState, *, video: dict[str, str] | None, reused: bool
) -> AnalysisTaskResult:
    segments, text, parsed = _outcome(task.analysis_mode, task.result.data if task.result else None)
    return AnalysisTaskResult(
        status="completed",
        task_id=task.task_id,
        video=video,
        task_status=task.status,
        segments=segments,
        text=text,
        parsed=parsed,
        warning=task.error.message if task.error else None,
        reused=reused,
        backend=app.backend,
    )


async def follow_batch(client: TwelveLabsClient, job: Job, batch_id: str) -> list[BatchResult]:
    """Watch a batch until it ends (each change in its counts is a note), then read every item's result."""

    def status(b: AnalyzeBatch) -> str:
        # The counts ride along while it runs, so each item that ends is a note; the end is the bare status.
        done = b.ready_items + b.failed_items + b.canceled_items
        return b.status if b.done else f"{b.status} ({done}/{b.total_items} done, {b.failed_items} failed)"

    with upstream("Video analysis batch"):
        await follow(
            job,
            f"Analysis batch {batch_id}",
            lambda: client.analyze.get_batch(batch_id),
            status,
            policy=client.poll,
            # kind auto finds a batch id (a batch is not one of the kinds, to keep tools/list small).
            watching=call("wait_for_task", id=batch_id),
        )
        return await client.analyze.batch_results(batch_id)


def _batch_result(
    batch_id: str, mode: str, results: list[BatchResult], assets: dict[str, str], app: AppState
) -> AnalysisTaskResult:
    items = []
    for r in results:
        segments, text, _ = _outcome(mode, r.data.data if r.data and r.status == "ready" else None)
        items.append(
            BatchItemResult(
                asset_id=assets.get(r.task_id),
                task_id=r.task_id,
                custom_id=r.custom_id,
                status=r.status,
                error=r.error.message if r.error else None,
                error_code=r.error.code if r.error else None,
                text=text,
                segments=segments,
            )
        )
    failed = sum(1 for i in items if i.status != "ready")
    return AnalysisTaskResult(
        status="completed",
        batch_id=batch_id,
        task_status=f"{len(items) - failed} of {len(items)} ready",
        items=items,
        backend=app.backend,
    )


def _request(
    *,
    video: Any,
    prompt: str | None,
    segment_definitions: list[SegmentDefinition] | None,
    output_schema: dict[str, Any] | None,
    model_name: str | None,
    max_tokens: int | Literal["unlimited"] | None,
    start_time: float | None,
    end_time: float | None,
    min_segment_duration: float | None,
    max_segment_duration: float | None,
) -> AnalyzeRequest:
    segmenting = segment_definitions is not None
    if segmenting and (prompt is not None or output_schema is not None):
        raise ToolError(
            "Give either segment_definitions (time-based segments) or prompt (+ output_schema), not both."
        )
    if not segmenting and prompt is None:
        raise ToolError("Give prompt (what to find out) or segment_definitions (which segments to find).")
    if output_schema is not None:
        # jsonschema (and its referencing/rpds stack) only matters once a schema is given: not at start-up.
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(output_schema)
        except jsonschema.SchemaError as exc:
            raise ToolError(f"output_schema is not a valid JSON Schema: {exc.message}.") from None
    try:
        request = AnalyzeRequest(
            video=video,
            prompt=prompt,
            model_name=model_name,
            max_tokens=max_tokens,
            start_time=start_time,
            end_time=end_time,
            min_segment_duration=min_segment_duration,
            max_segment_duration=max_segment_duration,
            analysis_mode="time_based_metadata" if segmenting else "general",
            response_format=SegmentFormat(segment_definitions=segment_definitions)
            if segment_definitions is not None
            else ResponseFormat(json_schema=output_schema)
            if output_schema is not None
            else None,
        )
        request.check_task_tokens()
    except (ValidationError, ValueError) as exc:
        raise ToolError(
            f"This analysis cannot run: {_reason(exc)}. Change that argument and call again."
        ) from None
    return request


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    return str(exc)


@tool(
    toolset="analysis_tasks",
    title="Analyze videos as a task (segments, batches)",
    read_only=True,
    destructive=False,
    idempotent=True,
)
async def start_analysis_task(
    ctx: Ctx,
    segment_definitions: Annotated[
        list[SegmentDefinition] | None,
        Field(
            min_length=1,
            description="Time-based segments to find: {id, description, fields?: [{name, type, "
            "description}]}. Types: string number integer boolean array timestamp (+format) time_array "
            "(pegasus1.6).",
        ),
    ] = None,
    prompt: Annotated[
        str | None, Field(min_length=1, max_length=4000, description="General analysis.")
    ] = None,
    asset_id: AssetId = None,
    url: Url = None,
    video_id: VideoId = None,
    index_id: IndexId = None,
    asset_ids: Annotated[
        list[Id] | None, Field(min_length=2, max_length=MAX_BATCH, description="Several videos: a batch.")
    ] = None,
    model_name: PegasusModel | None = None,
    output_schema: Annotated[dict[str, Any] | None, Field(description="JSON Schema for `parsed`.")] = None,
    max_tokens: Annotated[int | Literal["unlimited"] | None, Field(description="Task range applies.")] = None,
    start_time: Annotated[float | None, Field(ge=0)] = None,
    end_time: Annotated[float | None, Field(gt=0)] = None,
    min_segment_duration: Annotated[float | None, Field(ge=2)] = None,
    max_segment_duration: Annotated[float | None, Field(ge=2)] = None,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, AnalysisTaskResult]:
    """Run Pegasus as an async task: timed segments with custom fields, long videos, or many videos.

    Use it for "find each X with its start/end and fields" (segment_definitions), videos over an hour,
    or one prompt over several asset_ids (a batch, pegasus1.5). Returns a job_id: wait_for_task gives
    the segments. Repeating a call reuses its task. Quick question on one video: analyze_video.
    """
    state = app_state(ctx)
    if start_time is not None and end_time is not None and end_time <= start_time:
        raise ToolError("end_time must be after start_time.")
    progress = AnalysisTaskProgress()
    plan: AnalyzeBatchRequest | AnalyzeRequest
    described: dict[str, str] | None = None
    if asset_ids is not None:
        if any(v is not None for v in (asset_id, url, video_id)):
            raise ToolError("Give asset_ids (a batch) or one of asset_id, url, video_id, not both.")
        if len(set(asset_ids)) != len(asset_ids):
            raise ToolError("asset_ids lists a video twice; list each once.")
        if model_name not in (None, "pegasus1.5"):
            raise ToolError(
                "Batches (asset_ids) run on pegasus1.5 only; leave model_name out or analyze one by one."
            )
        if max_tokens == "unlimited":
            raise ToolError('max_tokens "unlimited" is not available for batches; give a number.')
        # Checked as one task first, so each video's request is valid before the batch is sent.
        single = _request(
            video={"asset_id": asset_ids[0]},
            prompt=prompt,
            segment_definitions=segment_definitions,
            output_schema=output_schema,
            model_name="pegasus1.5",
            max_tokens=max_tokens,
            start_time=start_time,
            end_time=end_time,
            min_segment_duration=min_segment_duration,
            max_segment_duration=max_segment_duration,
        )
        try:
            plan = AnalyzeBatchRequest(
                # The item's custom_id is its place in asset_ids: results come back keyed by it.
                items=[BatchItem(asset_id=a, custom_id=f"item-{n}") for n, a in enumerate(asset_ids)],
                prompt=single.prompt,
                analysis_mode=single.analysis_mode or "general",
                response_format=single.response_format,
                max_tokens=max_tokens if isinstance(max_tokens, int) else None,
                start_time=start_time,
                end_time=end_time,
                min_segment_duration=min_segment_duration,
                max_segment_duration=max_segment_duration,
            )
        except ValidationError as exc:
            raise ToolError(
                f"This batch cannot run: {_reason(exc)}. Change that argument and call again."
            ) from None
        progress.kind, progress.assets = "batch", list(asset_ids)
        mode = plan.analysis_mode
    else:
        source, described = await resolve_source(state, asset_id, url, video_id, index_id)
        plan = _request(
            video=source,
            prompt=prompt,
            segment_definitions=segment_definitions,
            output_schema=output_schema,
            model_name=model_name,
            max_tokens=max_tokens,
            start_time=start_time,
            end_time=end_time,
            min_segment_duration=min_segment_duration,
            max_segment_duration=max_segment_duration,
        )
        mode = plan.analysis_mode or "general"

    def partial(job: Job) -> CallToolResult:
        r = AnalysisTaskResult(
            status="in_progress",
            job_id=job.id,
            task_id=progress.upstream_id if progress.kind == "task" else None,
            batch_id=progress.upstream_id if progress.kind == "batch" else None,
            video=described,
            backend=state.backend,
        )
        return tool_result(r, _markdown(r))

    async def work(job: Job) -> CallToolResult:
        client = state.client
        if isinstance(plan, AnalyzeBatchRequest):
            with upstream("Starting the analysis batch"):
                created = await client.analyze.create_batch(plan)
            progress.upstream_id = created.batch_id
            job.emit_note(f"Analysis batch {created.batch_id} started ({created.total_items} videos)")
            by_task = {
                i.task_id: progress.assets[int(i.custom_id.split("-")[1])]
                for i in created.items
                if i.custom_id
            }
            results = await _cancel_upstream_on_exit(
                job,
                follow_batch(client, job, created.batch_id),
                lambda: client.analyze.cancel_batch(created.batch_id),
            )
            r = _batch_result(created.batch_id, mode, results, by_task, state)
            return tool_result(r, _markdown(r))
        # Set here, not by the client, so a task whose creation was cut short can still be found.
        request = plan.model_copy(update={"custom_id": plan.custom_id or plan.derived_custom_id()})
        reused, posting = False, False

        async def start_and_follow() -> AnalyzeTask:
            nonlocal reused, posting
            try:
                with upstream("Starting the analysis task"):
                    earlier = await client.analyze.find_live(request)
                    if earlier is None:
                        posting = True
                        task_id = (await client.analyze.create_task(request, reuse=False)).task_id
                    else:
                        reused, task_id = True, earlier.task_id
            except ValueError as exc:
                raise ToolError(f"This analysis cannot run: {exc}.") from None
            progress.upstream_id = task_id
            job.emit_note(f"Analysis task {task_id} {'found (started earlier)' if reused else 'started'}")
            return await follow_task(client, job, task_id)

        async def cancel() -> None:
            # Never a task an earlier call started (its caller may be following it); one whose creation
            # was cut short is found by its custom_id.
            if reused or not posting:
                return
            task_id = progress.upstream_id
            if task_id is None:
                found = await client.analyze.find_live(request)
                task_id = found.task_id if found else None
            if task_id is not None:
                await client.analyze.cancel_task(task_id)

        task = await _cancel_upstream_on_exit(job, start_and_follow(), cancel)
        r = _task_result(task, state, video=described, reused=reused)
        return tool_result(r, _markdown(r, task.result.generated_by if task.result else None))

    label = f"analysis task of {next(iter(described.values()))}" if described else "analysis batch"
    job = state.jobs.start("analysis_task", label, work, partial, progress)
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


async def _cancel_upstream_on_exit(job: Job, watch: Any, cancel: Callable[[], Any]) -> Any:
    """Await `watch`; if the job is cancelled before its id was handed out (nobody can collect it), cancel
    the upstream work too, so it stops billing. A handed-out job's work is left running: the server may
    only be stopping, and another replica can follow the job from its id."""
    try:
        return await watch
    except anyio.get_cancelled_exc_class():
        if not job.handed_out:
            # Best effort: the job's own cancellation is what the caller asked for.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(10),
                contextlib.suppress(TwelveLabsError),
            ):
                await cancel()
        raise


def resume_analysis_task(state: Callable[[], AppState], job_id: str, fields: list[str]) -> Resumed:
    """An analysis task or batch started on another replica, from its portable id: follow it upstream."""
    if len(fields) != 2 or fields[0] not in ("task", "batch"):
        raise unknown_kind(job_id)
    kind, upstream_id = fields
    app = state()
    progress = AnalysisTaskProgress(kind="task" if kind == "task" else "batch", upstream_id=upstream_id)

    def partial(job: Job) -> CallToolResult:
        r = AnalysisTaskResult(
            status="in_progress",
            job_id=job_id,
            task_id=upstream_id if kind == "task" else None,
            batch_id=upstream_id if kind == "batch" else None,
            backend=app.backend,
        )
        return tool_result(r, _markdown(r))

    async def work(job: Job) -> CallToolResult:
        if kind == "batch":
            results = await follow_batch(app.client, job, upstream_id)
            with upstream("Reading the analysis batch"):
                batch = await app.client.analyze.get_batch(upstream_id)
            r = _batch_result(upstream_id, batch.analysis_mode or "general", results, {}, app)
        else:
            task = await follow_task(app.client, job, upstream_id)
            r = _task_result(task, app, video=None, reused=False)
            return tool_result(r, _markdown(r, task.result.generated_by if task.result else None))
        return tool_result(r, _markdown(r))

    return Resumed("analysis_task", f"analysis {kind}", work, partial, progress)


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
        source=source.get("asset_id") or source.get("url") or source.get("video_id"),
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


TOOLS: list[ToolSpec] = [start_analysis_task, list_analysis_tasks, cancel_analysis_task]
