"""Job handles: work that may outlast one tool call runs in the server's task group, not the caller's.

A tool starts a `Job`, relays its progress for up to `wait_s`, and either returns the finished result or a
partial one with `status: "in_progress"` and the `job_id`. `wait_for_task(job_id)` later resumes relaying
from the event the previous caller last saw. A call cancelled before it handed out its job id cancels the
job too, so an abandoned request never leaves upstream work running. When a job is handed out, its id
becomes portable if its progress declares upstream handles (see `portable`). With shared state, a
handed-out job is also published for the other replicas (see `replicas`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

import anyio
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from tl_mcp.server.jobs import replicas
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Partial, Resumed, Worker, span
from tl_mcp.server.jobs.relay import ProgressReporter, relay
from tl_mcp.server.principals import LOCAL
from tl_mcp.server.shared.base import SharedState

log = logging.getLogger(__name__)


class IdSigner(Protocol):
    """Mints and opens portable job ids (`portable.JobIds`)."""

    def mint(self, code: str, fields: Sequence[str], owner: str) -> str | None: ...

    def open(self, job_id: str, owner: str) -> tuple[str, list[str]] | None: ...


class JobPorter(Protocol):
    """Rebuilds a job another replica started, from its portable id."""

    def resume(self, job_id: str, code: str, fields: list[str]) -> Resumed:
        """The job watching upstream; ToolError when that kind of job cannot move."""


class JobManager:
    """The job table. Every job belongs to the principal `principal()` names when it starts, and only
    that principal can look it up; another one's job id answers exactly like an unknown id.

    Bounds: at most `max_jobs` jobs in all (finished ones are dropped first, from whichever principal
    keeps the most), at most `max_jobs_per_owner` in progress per principal, and no job runs longer than
    `lifetime_s`: then it ends with status "expired" and says how to check the upstream work directly.
    """

    def __init__(
        self,
        task_group: TaskGroup,
        *,
        keep_s: float = 3600.0,
        max_jobs: int = 200,
        max_jobs_per_owner: int = 20,
        lifetime_s: float = 7200.0,
        principal: Callable[[], str] = lambda: LOCAL,
        ids: IdSigner | None = None,
        porter: JobPorter | None = None,
        handoff_grace_s: float = 0.0,
        shared: SharedState | None = None,
        replica_timeout_s: float = 15.0,
    ) -> None:
        self._tg = task_group
        self._jobs: dict[str, Job] = {}
        self._keep_s = keep_s
        self._max_jobs = max_jobs
        self._max_per_owner = max_jobs_per_owner
        self._lifetime_s = lifetime_s
        self._principal = principal
        self._ids = ids
        self._porter = porter
        self._handoff_grace_s = handoff_grace_s
        self._shared = shared
        self._replica_timeout_s = replica_timeout_s

    async def find(self, job_id: str) -> Job | None:
        """`get`, and with shared state also a job that another replica runs or ran."""
        owner = self._principal()
        job = self._jobs.get(job_id)
        if (job is not None and job.owner == owner) or self._shared is None:
            return self.get(job_id)
        record = await self._shared.load_job(job_id)
        if record is None or record.owner != owner:
            return self.get(job_id)
        if record.status == "in_progress" and not await self._shared.alive(record.replica):
            # Upstream handles let this replica take the job over; any other work died with its replica.
            try:
                taken = self.get(job_id)
            except ToolError:
                taken = None
            if taken is None:
                raise ToolError(replicas.lost(record, self._replica_timeout_s))
            return taken
        return replicas.remote_job(record, owner)

    def running(self) -> int:
        """Jobs of this process still in progress."""
        return sum(1 for job in self._jobs.values() if job.status == "in_progress")

    def get(self, job_id: str) -> Job | None:
        """The caller's job of this process, or one rebuilt from a portable id issued by any replica."""
        owner = self._principal()
        job = self._jobs.get(job_id)
        if job is not None and job.owner == owner:
            return job
        if self._ids is None or self._porter is None:
            return None
        opened = self._ids.open(job_id, owner)
        if opened is None:
            return None
        resumed = self._porter.resume(job_id, *opened)
        self._admit(owner)
        job = Job(
            id=job_id,
            kind=resumed.kind,
            label=resumed.label,
            partial=resumed.partial,
            owner=owner,
            handed_out=True,
            progress=resumed.progress,
        )
        self._jobs[job_id] = job
        self._tg.start_soon(self._run, job, resumed.worker, name=f"tl-mcp resumed job {job_id[:40]}")
        log.info("resumed %s job from a portable id", resumed.kind)
        return job

    def start(
        self, kind: str, label: str, worker: Worker, partial: Partial, progress: JobProgress | None = None
    ) -> Job:
        """Run `worker` in the server's task group; `progress` is the record `worker` and `partial` share."""
        owner = self._principal()
        self._admit(owner)
        job = Job(
            id="job_" + secrets.token_hex(8),
            kind=kind,
            label=label,
            partial=partial,
            owner=owner,
            progress=progress or JobProgress(),
        )
        self._jobs[job.id] = job
        self._tg.start_soon(self._run, job, worker, name=f"tl-mcp job {job.id}")
        return job

    async def _run(self, job: Job, worker: Worker) -> None:
        job.scope.deadline = anyio.current_time() + self._lifetime_s
        with job.scope:
            try:
                job.result = await worker(job)
                job.status = "completed"
            except ToolError as exc:
                job.error, job.status = str(exc), "failed"
            except Exception as exc:
                log.exception("job %s (%s) crashed", job.id, job.kind)
                job.error = (
                    f"{job.label} failed unexpectedly ({type(exc).__name__}). Try the call again; if it "
                    "keeps failing, the server log (stderr) has the details."
                )
                job.status = "failed"
        if job.scope.cancelled_caught:
            if anyio.current_time() >= job.scope.deadline:
                job.status, job.error = "expired", self._expired(job)
                log.warning("job %s (%s) expired after %.0f s", job.id[:40], job.kind, self._lifetime_s)
            else:
                job.status = "cancelled"
        job.ended()

    def _expired(self, job: Job) -> str:
        text = (
            f"Job {job.id} ({job.label}) expired: the server gave up after {span(self._lifetime_s)} "
            "(TL_MCP_JOB_LIFETIME_S) without a final answer from TwelveLabs."
        )
        if job.watching:
            return text + f" The work may still go on upstream; check it with {job.watching}."
        return text + " Start the work again if you still need it."

    async def run(self, job: Job, report: ProgressReporter, *, wait_s: float) -> CallToolResult:
        """Relay `job` to the caller for up to `wait_s`; finished → its result, else the partial + job id."""
        if job.remote is not None:
            assert self._shared is not None
            return await replicas.relay_remote(
                job,
                self._shared,
                report,
                wait_s=wait_s,
                keep_s=self._keep_s,
                replica_timeout_s=self._replica_timeout_s,
            )
        movable = self._porter is not None and job.progress.movable
        grace = self._handoff_grace_s if movable else 0.0
        if job.shared and self._shared is not None:
            # A caller on another replica may have been told more of it meanwhile. Redis not
            # answering (logged where it failed) must not cost this job's own callers its result.
            with contextlib.suppress(ToolError):
                job.delivered = max(job.delivered, await self._shared.cursor(job.id))
        try:
            if grace > 0 and not job.handed_out:
                finished = await self._relay_until_portable(job, report, wait_s=wait_s, grace_s=grace)
            else:
                finished = await relay(job, report, wait_s=wait_s)
        except BaseException:
            if not job.handed_out:
                # The caller went away before learning the job id: nobody can ever collect this work.
                job.scope.cancel()
            raise
        if finished and not job.handed_out:
            self._jobs.pop(job.id, None)
            return job.outcome()
        if not job.handed_out:
            self._make_portable(job)
        job.handed_out = True
        if self._shared is not None:
            await self._share(job, self._shared)
        return job.outcome() if finished else job.partial(job)

    async def _share(self, job: Job, shared: SharedState) -> None:
        """Publish a handed-out job and where its caller is, before the caller hears back.

        The caller's next call may reach any replica: that one must know at least what this one told
        (the end, the text so far), not what the background publisher last got round to writing.
        """
        if not job.shared:
            job.shared = True
            keep = partial(
                replicas.keep_published,
                keep_s=self._keep_s,
                lifetime_s=self._lifetime_s,
                refresh_s=self._replica_timeout_s / 3,
            )
            self._tg.start_soon(keep, job, shared, name=f"tl-mcp share {job.id[:40]}")
        try:
            await replicas.publish(job, shared, keep_s=self._keep_s, lifetime_s=self._lifetime_s)
        except ToolError:
            # Redis is not answering (logged where it failed): the job runs here all the same, so its
            # caller gets its id; the publisher writes it once Redis is back.
            return
        await replicas.tell(job, shared)

    async def _relay_until_portable(
        self, job: Job, report: ProgressReporter, *, wait_s: float, grace_s: float
    ) -> bool:
        """Past `wait_s`, keep relaying (up to `grace_s` more) until the job has a portable id.

        On replicas an id without upstream handles could only be followed here, and a load balancer
        will send the next call anywhere; a few more seconds of progress is the better trade.
        """
        finished = False
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                nonlocal finished
                finished = await relay(job, report, wait_s=wait_s + grace_s)
                tg.cancel_scope.cancel()

            async def portable() -> None:
                await anyio.sleep(wait_s)
                while job.progress.handles() is None:
                    if job.done.is_set():
                        return
                    with anyio.move_on_after(0.5):
                        await job.wait_changed()
                tg.cancel_scope.cancel()

            tg.start_soon(follow)
            tg.start_soon(portable)
        return finished

    def _make_portable(self, job: Job) -> None:
        if self._ids is None or self._porter is None:
            return
        code, fields = job.progress.code, job.progress.handles()
        if code is None or fields is None:
            return
        new_id = self._ids.mint(code, fields, job.owner)
        if new_id is None:
            log.warning(
                "job %s (%s) keeps a process-local id: its upstream ids do not fit one", job.id, job.kind
            )
            return
        self._jobs.pop(job.id, None)
        job.id = new_id
        self._jobs[new_id] = job

    def _admit(self, owner: str) -> None:
        """Room for one more job of `owner`, or a ToolError that says which bound was hit."""
        now = time.monotonic()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > self._keep_s:
                del self._jobs[job_id]
        running = sum(1 for j in self._jobs.values() if j.owner == owner and j.finished_at is None)
        if running >= self._max_per_owner:
            raise ToolError(
                f"You have {running} jobs in progress, the most one client may have "
                f"(TL_MCP_MAX_JOBS_PER_CLIENT={self._max_per_owner}). Follow them with "
                f"wait_for_task(id=<job_id>) until some finish; none runs longer than "
                f"{span(self._lifetime_s)}."
            )
        while len(self._jobs) >= self._max_jobs:
            finished = [j for j in self._jobs.values() if j.finished_at is not None]
            if not finished:
                raise ToolError(
                    f"The server is at its limit of {self._max_jobs} jobs in progress across all clients "
                    "(TL_MCP_MAX_JOBS). Try again in a few minutes."
                )
            # Drop from whoever keeps the most, so one client's churn cannot push out others' results.
            kept = Counter(j.owner for j in self._jobs.values())
            oldest = min(finished, key=lambda j: (-kept[j.owner], j.finished_at or 0.0))
            del self._jobs[oldest.id]
