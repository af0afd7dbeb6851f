"""What an analysis task or batch ends as: the result of `start_analysis_task` and of `wait_for_task` on
one (segments in time order, text, parsed JSON; a batch's result per video), its markdown, and following
the upstream work to that end.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from tl_mcp.api import TwelveLabsClient
from tl_mcp.api.models import GeneratedBy
from tl_mcp.api.models.analyze_tasks import AnalyzeBatch, AnalyzeTask, BatchResult, parse_segments
from tl_mcp.server.errors import upstream
from tl_mcp.server.jobs.job import Job
from tl_mcp.server.results import JobResult, JobStatus, Json, Markdown, call, fmt_seconds
from tl_mcp.server.state import AppState
from tl_mcp.server.tools.analyze import SANDBOX_NOTE
from tl_mcp.server.tools.tasks import follow, refuse_bad_end


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


def result_markdown(r: AnalysisTaskResult, made: GeneratedBy | None = None) -> Markdown:
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
    refuse_bad_end("Video analysis task", task_id, task.status, task.error.message if task.error else None)
    return task


def task_result(
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


def batch_result(
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
