"""Job handles: work that may outlast one tool call runs in the server's task group, not the caller's.

A tool starts a `Job`, relays its progress for up to `wait_s`, and either returns the finished result or a
partial one with `status: "in_progress"` and the `job_id`. `wait_for_task(job_id)` later resumes relaying
from the event the previous caller last saw. A call cancelled before it handed out its job id cancels the
job too, so an abandoned request never leaves upstream work running.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from tl_mcp.server.progress import ProgressReporter, relay

log = logging.getLogger(__name__)

JobStatus = Literal["in_progress", "completed", "failed", "cancelled"]


@dataclass(frozen=True)
class JobEvent:
    """One thing to tell the caller. `text` events are streamed answer text (merged when relayed)."""

    kind: Literal["text", "note"]
    message: str
    progress: float
    total: float | None = None


@dataclass(eq=False)
class Job:
    id: str
    kind: str
    label: str
    partial: Callable[[Job], CallToolResult]
    created: float = field(default_factory=time.monotonic)
    status: JobStatus = "in_progress"
    events: list[JobEvent] = field(default_factory=list)
    text: str = ""
    result: CallToolResult | None = None
    error: str | None = None
    #: Index into `events` up to which some caller has already been told.
    delivered: int = 0
    #: Set once a caller got the job id: from then on a cancelled wait no longer cancels the work.
    handed_out: bool = False
    #: What a heartbeat says while nothing else happens (None: a silent heartbeat).
    heartbeat: str | None = None
    #: Free-form state a worker keeps for its partial result (ids learned so far, upstream status...).
    state: dict[str, object] = field(default_factory=dict)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    finished_at: float | None = None
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def emit_text(self, delta: str) -> None:
        if not delta:
            return
        self.text += delta
        self._append(JobEvent("text", delta, float(len(self.text))))

    def emit_note(self, message: str, progress: float | None = None, total: float | None = None) -> None:
        self._append(
            JobEvent("note", message, float(len(self.text)) if progress is None else progress, total)
        )

    def _append(self, event: JobEvent) -> None:
        self.events.append(event)
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait_changed(self) -> None:
        if not self.done.is_set():
            await self._changed.wait()

    def outcome(self) -> CallToolResult:
        """The final result, or the error as a ToolError (the caller sees what failed and why)."""
        if self.status == "completed" and self.result is not None:
            return self.result
        if self.status == "cancelled":
            raise ToolError(f"Job {self.id} ({self.label}) was cancelled before it finished.")
        raise ToolError(self.error or f"Job {self.id} ({self.label}) failed.")


Worker = Callable[[Job], Awaitable[CallToolResult]]


class JobManager:
    def __init__(self, task_group: TaskGroup, *, keep_s: float = 3600.0, max_jobs: int = 200) -> None:
        self._tg = task_group
        self._jobs: dict[str, Job] = {}
        self._keep_s = keep_s
        self._max_jobs = max_jobs

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def start(self, kind: str, label: str, worker: Worker, partial: Callable[[Job], CallToolResult]) -> Job:
        self._prune()
        job = Job(id="job_" + secrets.token_hex(8), kind=kind, label=label, partial=partial)
        self._jobs[job.id] = job
        self._tg.start_soon(self._run, job, worker, name=f"tl-mcp job {job.id}")
        return job

    async def _run(self, job: Job, worker: Worker) -> None:
        with job.scope:
            try:
                job.result = await worker(job)
                job.status = "completed"
            except ToolError as exc:
                job.error, job.status = str(exc), "failed"
            except Exception as exc:
                log.exception("job %s (%s) crashed", job.id, job.kind)
                job.error, job.status = f"{job.label} failed unexpectedly ({type(exc).__name__}).", "failed"
        if job.scope.cancelled_caught:
            job.status = "cancelled"
        job.finished_at = time.monotonic()
        job.done.set()
        job._notify()

    async def run(self, job: Job, report: ProgressReporter, *, wait_s: float) -> CallToolResult:
        """Relay `job` to the caller for up to `wait_s`; finished → its result, else the partial + job id."""
        try:
            finished = await relay(job, report, wait_s=wait_s)
        except BaseException:
            if not job.handed_out:
                # The caller went away before learning the job id: nobody can ever collect this work.
                job.scope.cancel()
            raise
        if finished:
            if not job.handed_out:
                self._jobs.pop(job.id, None)
            return job.outcome()
        job.handed_out = True
        return job.partial(job)

    async def cancel_all(self) -> None:
        for job in self._jobs.values():
            job.scope.cancel()

    def _prune(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > self._keep_s:
                del self._jobs[job_id]
        while len(self._jobs) >= self._max_jobs:
            oldest = min(self._jobs.values(), key=lambda j: (j.finished_at is None, j.created))
            if oldest.finished_at is None:
                raise ToolError(
                    f"Too many jobs in progress ({len(self._jobs)}); wait for some with wait_for_task first."
                )
            del self._jobs[oldest.id]
