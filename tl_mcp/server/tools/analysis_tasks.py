"""Toolset `analysis_tasks`: Pegasus analysis as async tasks (`/analyze/tasks`) and batches
(`/analyze/batches`), run as jobs: time-based segments with custom fields, long videos, one request over
many videos. `wait_for_task` follows the job and ends with the segments as structured data
(`analysis_results.py`). Listing and cancelling them: `analysis_tasks_manage.py`.

A retried call does not pay twice: the client derives the task's `custom_id` (and `Idempotency-Key`)
from the request, so the same arguments find the task the first call started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field, ValidationError

from tl_mcp.api import TwelveLabsError
from tl_mcp.api.models import (
    AnalyzeBatchRequest,
    AnalyzeRequest,
    BatchItem,
    ResponseFormat,
    SegmentDefinition,
    SegmentFormat,
)
from tl_mcp.api.models.analyze import PegasusModel
from tl_mcp.api.models.analyze_tasks import AnalyzeTask
from tl_mcp.server.errors import upstream
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Resumed
from tl_mcp.server.jobs.portable import unknown_kind
from tl_mcp.server.results import tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS
from tl_mcp.server.tools.analysis_results import (
    AnalysisTaskResult,
    batch_result,
    follow_batch,
    follow_task,
    result_markdown,
    task_result,
)
from tl_mcp.server.tools.analyze import AssetId, IndexId, Url, VideoId, resolve_source
from tl_mcp.server.toolspec import ToolSpec, tool

#: Videos one call may batch; the API takes up to 1,000, but one result listing them all stays readable.
MAX_BATCH = 50


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
        return tool_result(r, result_markdown(r))

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
            r = batch_result(created.batch_id, mode, results, by_task, state)
            return tool_result(r, result_markdown(r))
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
        r = task_result(task, state, video=described, reused=reused)
        return tool_result(r, result_markdown(r, task.result.generated_by if task.result else None))

    label = f"analysis task of {next(iter(described.values()))}" if described else "analysis batch"
    job = state.jobs.start("analysis_task", label, work, partial, progress)
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


async def _cancel_upstream_on_exit(job: Job, watch: Any, cancel: Callable[[], Any]) -> Any:
    """Await `watch`; if the job is cancelled before its id was handed out (nobody can collect it), cancel
    the upstream work too, so it stops billing. A handed-out job's work is left running: the server may
    only be stopping, and another replica can follow the job from its id. So is an expired job's: its
    error hands out the call that follows the upstream work."""
    try:
        return await watch
    except anyio.get_cancelled_exc_class():
        if not job.handed_out and not job.out_of_time:
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
        return tool_result(r, result_markdown(r))

    async def work(job: Job) -> CallToolResult:
        if kind == "batch":
            results = await follow_batch(app.client, job, upstream_id)
            with upstream("Reading the analysis batch"):
                batch = await app.client.analyze.get_batch(upstream_id)
            r = batch_result(upstream_id, batch.analysis_mode or "general", results, {}, app)
        else:
            task = await follow_task(app.client, job, upstream_id)
            r = task_result(task, app, video=None, reused=False)
            return tool_result(r, result_markdown(r, task.result.generated_by if task.result else None))
        return tool_result(r, result_markdown(r))

    return Resumed("analysis_task", f"analysis {kind}", work, partial, progress)


TOOLS: list[ToolSpec] = [start_analysis_task]
