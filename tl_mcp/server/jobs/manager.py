"""Job handles: work that may outlast one tool call runs in the server's task group, not the caller's.

A tool starts a `Job`, relays its progress for up to `wait_s`, and either returns the finished result or a
partial one with `status: "in_progress"` and the `job_id`. `wait_for_task(job_id)` later resumes relaying
from the event the previous caller last saw. A call cancelled before it handed out its job id cancels the
job too, so an abandoned request never leaves upstream work running. When a job is handed out, its id
becomes portable if its progress declares upstream handles (see `portable`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from tl_mcp.server.jobs.events import EventLog, JobEvent, JobProgress, dump_event, load_event
from tl_mcp.server.jobs.relay import COALESCE_S, ProgressReporter, relay
from tl_mcp.server.principals import LOCAL
from tl_mcp.server.shared.base import JobRecord, SharedState

log = logging.getLogger(__name__)

JobStatus = Literal["in_progress", "completed", "failed", "cancelled", "expired", "lost"]
#: How often a follower checks that the replica running a job still beats (between its events).
FOLLOW_CHECK_S = 1.0


@dataclass(eq=False)
class Job:
    id: str
    kind: str
    label: str
    partial: Callable[[Job], CallToolResult]
    #: The principal that started the job; nobody else can see it (see principals.py).
    owner: str = LOCAL
    created: float = field(default_factory=time.monotonic)
    status: JobStatus = "in_progress"
    events: EventLog = field(default_factory=EventLog)
    text: str = ""
    result: CallToolResult | None = None
    error: str | None = None
    #: Index into `events` up to which some caller has already been told.
    delivered: int = 0
    #: Set once a caller got the job id: from then on a cancelled wait no longer cancels the work.
    handed_out: bool = False
    #: What a heartbeat says while nothing else happens (None: a silent heartbeat).
    heartbeat: str | None = None
    #: The call that checks the upstream work directly (`wait_for_task(id=…)`), named if the job expires.
    watching: str | None = None
    #: What the worker learned so far, typed per kind; it also declares the job's upstream handles.
    progress: JobProgress = field(default_factory=JobProgress)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    finished_at: float | None = None
    #: Set once the job is published to the shared state (only the replica running it publishes).
    shared: bool = False
    #: The job runs on another replica; this one follows its shared record.
    remote: JobRecord | None = None

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

    async def wait_changed(self) -> None:
        if not self.done.is_set():
            await self.events.wait_changed()

    def outcome(self) -> CallToolResult:
        """The final result, or the error as a ToolError (the caller sees what failed and why)."""
        if self.status == "completed" and self.result is not None:
            return self.result
        if self.status == "cancelled":
            raise ToolError(f"Job {self.id} ({self.label}) was cancelled before it finished.")
        if self.status == "completed" and self.remote is not None and self.remote.result is not None:
            return CallToolResult.model_validate(self.remote.result)
        raise ToolError(self.error or f"Job {self.id} ({self.label}) failed.")


Worker = Callable[[Job], Awaitable[CallToolResult]]
Partial = Callable[[Job], CallToolResult]


@dataclass(frozen=True)
class Resumed:
    """A job rebuilt from a portable id: it watches the upstream handles the id carries."""

    kind: str
    label: str
    worker: Worker
    partial: Partial
    progress: JobProgress


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
                raise ToolError(self._lost(record))
            return taken
        job = Job(
            id=job_id,
            kind=record.kind,
            label=record.label,
            partial=_remote_partial,
            owner=owner,
            handed_out=True,
            remote=record,
        )
        job.heartbeat, job.watching = record.heartbeat, record.watching
        return job

    def _lost(self, record: JobRecord) -> str:
        text = (
            f"Job {record.id} ({record.label}) was running on another replica of this server, which "
            f"stopped (no heartbeat for {_span(self._replica_timeout_s)}, TL_MCP_REPLICA_TIMEOUT_S): "
            "its work is lost."
        )
        if record.watching:
            return text + f" The work may still go on upstream; check it with {record.watching}."
        return text + f" Start it again: {record.again or 'call the tool that started it again'}."

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
        job.finished_at = time.monotonic()
        job.done.set()
        job.events.notify()

    def _expired(self, job: Job) -> str:
        text = (
            f"Job {job.id} ({job.label}) expired: the server gave up after {_span(self._lifetime_s)} "
            "(TL_MCP_JOB_LIFETIME_S) without a final answer from TwelveLabs."
        )
        if job.watching:
            return text + f" The work may still go on upstream; check it with {job.watching}."
        return text + " Start the work again if you still need it."

    async def run(self, job: Job, report: ProgressReporter, *, wait_s: float) -> CallToolResult:
        """Relay `job` to the caller for up to `wait_s`; finished → its result, else the partial + job id."""
        if job.remote is not None:
            return await self._run_remote(job, report, wait_s=wait_s)
        movable = self._porter is not None and job.progress.movable
        grace = self._handoff_grace_s if movable else 0.0
        if job.shared and self._shared is not None:
            # A caller on another replica may have been told more of it meanwhile.
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
        if finished:
            if not job.handed_out:
                self._jobs.pop(job.id, None)
            elif job.shared and self._shared is not None:
                await self._shared.advance(job.id, job.delivered)
            return job.outcome()
        if not job.handed_out:
            self._make_portable(job)
        job.handed_out = True
        if self._shared is not None:
            await self._share(job, self._shared)
        return job.partial(job)

    async def _share(self, job: Job, shared: SharedState) -> None:
        """Publish a handed-out job (its first time: before its id is out) and where its caller is."""
        if not job.shared:
            try:
                published = await self._publish(job, shared, 0)
            except ToolError:
                published = 0  # logged where it failed; the publisher below tries again
            job.shared = True
            self._tg.start_soon(
                self._keep_published, job, shared, published, name=f"tl-mcp share {job.id[:40]}"
            )
        await shared.advance(job.id, job.delivered)

    def _record(self, job: Job, shared: SharedState) -> JobRecord:
        finished = job.done.is_set()
        completed = finished and job.status == "completed" and job.result is not None
        return JobRecord(
            id=job.id,
            kind=job.kind,
            label=job.label,
            owner=job.owner,
            replica=shared.replica,
            status=job.status,
            events=len(job.events),
            partial=None if finished else _dump(job.partial(job)),
            result=_dump(job.result) if completed and job.result is not None else None,
            error=job.error,
            heartbeat=job.heartbeat,
            watching=job.watching,
            again=job.progress.again(),
        )

    async def _publish(self, job: Job, shared: SharedState, published: int) -> int:
        """Write the job's record and its events after `published`; how many events are published now."""
        record = self._record(job, shared)
        ttl = self._keep_s + (0.0 if job.done.is_set() else self._lifetime_s)
        await shared.save_job(record, [dump_event(e) for e in job.events.since(published)], ttl_s=ttl)
        return record.events

    async def _keep_published(self, job: Job, shared: SharedState, published: int) -> None:
        """Publish the job as it goes: batched like the relay, at least every few seconds, and its end."""
        told: tuple[object, ...] = ()
        while True:
            finished = job.done.is_set()
            with anyio.move_on_after(FOLLOW_CHECK_S * 2):
                await job.wait_changed()
            await anyio.sleep(COALESCE_S)
            now = (len(job.events), job.status, job.heartbeat, job.watching)
            if now == told and not finished:
                continue  # nothing a follower would see changed: no write
            try:
                published = await self._publish(job, shared, published)
            except ToolError:
                # Logged where Redis failed; the next round sends everything since `published` again.
                await anyio.sleep(1.0)
                continue
            told = now
            if finished:
                return

    async def _run_remote(self, job: Job, report: ProgressReporter, *, wait_s: float) -> CallToolResult:
        """Relay a job another replica runs, from the shared cursor on, following its shared record."""
        shared, record = self._shared, job.remote
        assert shared is not None and record is not None
        job.delivered = await shared.cursor(job.id)
        job.events = EventLog(start=job.delivered)
        if record.status != "in_progress":
            # Over already: read it to the end first, so that a poll (wait_s=0) gets the final result
            # rather than an empty "in progress".
            await self._follow(job, shared)
        finished = False
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                await self._follow(job, shared)

            async def relayed() -> None:
                nonlocal finished
                finished = await relay(job, report, wait_s=wait_s)
                tg.cancel_scope.cancel()

            tg.start_soon(follow)
            tg.start_soon(relayed)
        await shared.advance(job.id, job.delivered)
        return job.outcome() if finished else job.partial(job)

    async def _follow(self, job: Job, shared: SharedState) -> None:
        """Feed the shared events into `job.events` and its record's state into `job`, until it ends."""
        while True:
            record = await shared.load_job(job.id)
            if record is None:
                job.status = "lost"
                job.error = (
                    f"Job {job.id} ({job.label}) is no longer kept in the shared state (records are kept "
                    f"{_span(self._keep_s)} after they end). Start the work again."
                )
                break
            job.remote, job.heartbeat, job.watching = record, record.heartbeat, record.watching
            behind = len(job.events) < record.events
            if record.status != "in_progress" and not behind:
                job.status, job.error = record.status, record.error  # type: ignore[assignment]
                break
            if record.status == "in_progress" and not await shared.alive(record.replica):
                job.status, job.error = "lost", self._lost(record)
                break
            found = await shared.job_events(job.id, len(job.events), wait_s=0 if behind else FOLLOW_CHECK_S)
            if found and found[0][0] > len(job.events) + 1:
                # The shared log keeps its newest MAX_EVENTS: relaying goes on from the oldest one kept.
                log.warning("job %s: %d progress messages were dropped", job.id[:40], found[0][0] - 1)
                job.events.skip_to(found[0][0] - 1)
                job.delivered = max(job.delivered, found[0][0] - 1)
            for _, event in found:
                job.events.append(load_event(event))
        job.finished_at = time.monotonic()
        job.done.set()
        job.events.notify()

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
                f"{_span(self._lifetime_s)}."
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


def _dump(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def _remote_partial(job: Job) -> CallToolResult:
    """The partial result the replica running `job` published last."""
    assert job.remote is not None and job.remote.partial is not None
    return CallToolResult.model_validate(job.remote.partial)


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:g} s"
