"""A job across replicas (with shared state, `server/shared/`): the replica running a handed-out job
publishes its record and events as it goes; a caller that lands on another replica follows that record.
`manager.JobManager` decides when; this is how."""

from __future__ import annotations

import contextlib
import logging
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


async def keep_published(job: Job, shared: SharedState, *, keep_s: float, lifetime_s: float) -> None:
    """Publish the job as it goes: batched like the relay, at least every few seconds, and its end
    at once (a follower polling without waiting learns it then)."""
    told: tuple[object, ...] = ()
    while True:
        finished = job.done.is_set()
        with anyio.move_on_after(FOLLOW_CHECK_S * 2):
            await job.wait_changed()
        if not job.done.is_set():
            await anyio.sleep(COALESCE_S)
        now = (len(job.events), job.status, job.heartbeat, job.watching)
        if now == told and not finished:
            continue  # nothing a follower would see changed: no write
        try:
            await publish(job, shared, keep_s=keep_s, lifetime_s=lifetime_s)
        except ToolError:
            # Logged where Redis failed; the next round sends everything unpublished again.
            await anyio.sleep(1.0)
            continue
        told = now
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
    if found and found[0][0] > len(job.events) + 1:
        # The shared log keeps its newest MAX_EVENTS: relaying goes on from the oldest one kept.
        log.warning("job %s: %d progress messages were dropped", job.id[:40], found[0][0] - 1)
        job.events.skip_to(found[0][0] - 1)
        job.delivered = max(job.delivered, found[0][0] - 1)
    for _, event in found:
        job.events.append(load_event(event))
    return record


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
