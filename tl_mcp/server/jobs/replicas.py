"""A job across replicas (with shared state, `server/shared/`): the replica running a handed-out job
publishes its record and events as it goes; a caller that lands on another replica follows that record.
`manager.JobManager` decides when; this is how."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from tl_mcp.server.jobs.events import EventLog, dump_event, load_event
from tl_mcp.server.jobs.job import Job, span
from tl_mcp.server.jobs.relay import COALESCE_S, ProgressReporter, relay
from tl_mcp.server.shared.base import JobRecord, SharedState

log = logging.getLogger(__name__)

#: How often a follower checks that the replica running a job still beats (between its events).
FOLLOW_CHECK_S = 1.0


def remote_job(record: JobRecord, owner: str) -> Job:
    """A local stand-in for the job `record` describes, to follow."""
    job = Job(
        id=record.id,
        kind=record.kind,
        label=record.label,
        partial=_remote_partial,
        owner=owner,
        handed_out=True,
        remote=record,
    )
    job.heartbeat, job.watching = record.heartbeat, record.watching
    return job


def lost(record: JobRecord, replica_timeout_s: float) -> str:
    """What a caller is told of a job whose replica stopped."""
    text = (
        f"Job {record.id} ({record.label}) was running on another replica of this server, which "
        f"stopped (no heartbeat for {span(replica_timeout_s)}, TL_MCP_REPLICA_TIMEOUT_S): "
        "its work is lost."
    )
    if record.watching:
        return text + f" The work may still go on upstream; check it with {record.watching}."
    return text + f" Start it again: {record.again or 'call the tool that started it again'}."


async def publish(job: Job, shared: SharedState, *, keep_s: float, lifetime_s: float) -> None:
    """Write the job's record as it stands and the events the shared state does not hold yet."""
    async with job.publishing:
        record = _record(job, shared)
        ttl = keep_s + (0.0 if job.done.is_set() else lifetime_s)
        await shared.save_job(record, [dump_event(e) for e in job.events.since(job.published)], ttl_s=ttl)
        job.published = record.events


async def keep_published(
    job: Job, shared: SharedState, *, keep_s: float, lifetime_s: float, refresh_s: float
) -> None:
    """Publish the job as it goes: batched like the relay, at least every few seconds, and its end
    at once (a follower polling without waiting learns it then).

    Written again every `refresh_s` (a third of the replica timeout, like the heartbeat) even when
    nothing changed: a Redis restarted empty, or short of memory, has the record back in that time.
    """
    told: tuple[object, ...] = ()
    written = time.monotonic()
    while True:
        finished = job.done.is_set()
        with anyio.move_on_after(min(FOLLOW_CHECK_S * 2, refresh_s)):
            await job.wait_changed()
        if not job.done.is_set():
            await anyio.sleep(COALESCE_S)
        now = (len(job.events), job.status, job.heartbeat, job.watching)
        if now == told and not finished and time.monotonic() - written < refresh_s:
            continue  # nothing a follower would see changed: no write
        try:
            await publish(job, shared, keep_s=keep_s, lifetime_s=lifetime_s)
        except ToolError:
            # Logged where Redis failed; the next round sends everything unpublished again.
            await anyio.sleep(1.0)
            continue
        told, written = now, time.monotonic()
        if finished:
            return


async def relay_remote(
    job: Job,
    shared: SharedState,
    report: ProgressReporter,
    *,
    wait_s: float,
    keep_s: float,
    replica_timeout_s: float,
) -> CallToolResult:
    """Relay a job another replica runs, from the shared cursor on, following its shared record."""
    job.delivered = await shared.cursor(job.id)
    job.events = EventLog(start=job.delivered)
    # What the shared log holds already is relayed first, so that a poll (wait_s=0) tells what it
    # would on the replica running the job: the progress so far, or the final result.
    latest = await _pull(job, shared, wait_s=0, keep_s=keep_s, replica_timeout_s=replica_timeout_s)
    if latest is None:
        job.ended()
    elif latest.status != "in_progress":
        # Over, with more events than one read brings.
        await _follow(job, shared, keep_s=keep_s, replica_timeout_s=replica_timeout_s)
    finished = False
    failed: ToolError | None = None
    async with anyio.create_task_group() as tg:

        async def follow() -> None:
            nonlocal failed
            try:
                await _follow(job, shared, keep_s=keep_s, replica_timeout_s=replica_timeout_s)
            except ToolError as exc:
                # Redis stopped answering: the caller gets its words, not a task group's.
                failed = exc
                tg.cancel_scope.cancel()

        async def relayed() -> None:
            nonlocal finished
            finished = await relay(job, report, wait_s=wait_s)
            tg.cancel_scope.cancel()

        if not job.done.is_set():
            tg.start_soon(follow)
        tg.start_soon(relayed)
    if failed is not None:
        raise failed
    await tell(job, shared)
    return job.outcome() if finished else job.partial(job)


async def tell(job: Job, shared: SharedState) -> None:
    """Share how far `job`'s callers were told; without Redis (logged where it failed) a caller on
    another replica may hear some of it again, which beats losing the result."""
    with contextlib.suppress(ToolError):
        await shared.advance(job.id, job.delivered)


async def _follow(job: Job, shared: SharedState, *, keep_s: float, replica_timeout_s: float) -> None:
    """Feed the shared events into `job.events` and its record's state into `job`, until it ends."""
    while await _pull(job, shared, wait_s=FOLLOW_CHECK_S, keep_s=keep_s, replica_timeout_s=replica_timeout_s):
        pass
    job.ended()


async def _pull(
    job: Job, shared: SharedState, *, wait_s: float, keep_s: float, replica_timeout_s: float
) -> JobRecord | None:
    """Read the shared record and the events after `job.events` (waiting up to `wait_s` when there
    are none yet): the record read, or None once the job is over and every event is read."""
    record = await shared.load_job(job.id)
    seen = job.remote
    if record is None and seen is not None and seen.status == "in_progress":
        # A running job's record goes only when Redis loses it (restarted empty, out of memory); a
        # live replica writes it again within a third of the replica timeout.
        record = await _written_again(job, shared, within_s=replica_timeout_s)
        if record is None:
            job.status, job.error = "lost", lost(seen, replica_timeout_s)
            return None
    if record is None:
        job.status = "lost"
        job.error = (
            f"Job {job.id} ({job.label}) is no longer kept in the shared state (records are kept "
            f"{span(keep_s)} after they end). Start the work again."
        )
        return None
    job.remote, job.heartbeat, job.watching = record, record.heartbeat, record.watching
    behind = len(job.events) < record.events
    if record.status != "in_progress" and not behind:
        job.status, job.error = record.status, record.error  # type: ignore[assignment]
        return None
    if record.status == "in_progress" and not await shared.alive(record.replica):
        job.status, job.error = "lost", lost(record, replica_timeout_s)
        return None
    found = await shared.job_events(job.id, len(job.events), wait_s=0 if behind else wait_s)
    # A record and its events are written together, so events it counts that the log does not hold
    # are gone: the log keeps its newest MAX_EVENTS, and a restarted Redis has none.
    gone = found[0][0] - 1 if found else record.events if behind else 0
    if gone > len(job.events):
        _skip(job, gone)
    for _, event in found:
        job.events.append(load_event(event))
    return record


async def _written_again(job: Job, shared: SharedState, *, within_s: float) -> JobRecord | None:
    """The job's record once its replica writes it again, or None if it does not within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        await anyio.sleep(FOLLOW_CHECK_S / 4)
        record = await shared.load_job(job.id)
        if record is not None:
            return record
    return None


def _skip(job: Job, gone: int) -> None:
    """Relay on from event `gone` + 1, the oldest the shared log still holds."""
    if job.events.since(0):
        # Events of this relay are held: numbering the next ones after them would be wrong.
        raise ToolError(
            f"Part of job {job.id}'s progress is gone from the shared state (Redis restarted, or ran "
            f"out of memory). Call wait_for_task(id={job.id}) again: it goes on from what is still "
            "kept, and the final result is whole."
        )
    log.warning("job %s: %d progress messages are gone from the shared state", job.id[:40], gone)
    job.events.skip_to(gone)
    job.delivered = max(job.delivered, gone)


def _record(job: Job, shared: SharedState) -> JobRecord:
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


def _dump(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def _remote_partial(job: Job) -> CallToolResult:
    """The partial result the replica running `job` published last."""
    assert job.remote is not None and job.remote.partial is not None
    return CallToolResult.model_validate(job.remote.partial)
