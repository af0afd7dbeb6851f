"""Relaying job events as MCP progress notifications.

Text deltas arriving within a short window are merged into one notification, so a burst of tiny deltas
does not become a burst of messages; merging only concatenates, so the messages of one relay joined
together are exactly the text streamed in that span. Every notification's progress is strictly greater
than the previous one, as MCP requires.

The unit of `progress` for streamed text is the Unicode code point: after a text message it is the
number of code points of the answer so far (Python's `len`, JavaScript's `[...text].length`, not
`text.length`, which counts UTF-16 units and counts an emoji as two). For uploads it is bytes sent. A
message that adds no text (a step, a status) moves progress on by 0.001, so values are rounded to three
decimals: never `278530.00299999997`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from tl_mcp.server.jobs.events import EventLog

ProgressReporter = Callable[[float, float | None, str | None], Awaitable[None]]

#: Deltas closer together than this are sent as one notification.
COALESCE_S = 0.075
#: The longest a caller waits without any notification while work goes on.
HEARTBEAT_S = 8.0
_STEP = 1e-3


class Relayed(Protocol):
    """What the relay reads of a job (`manager.Job`), so this module needs nothing of the manager."""

    events: EventLog
    #: The cursor: how many of `events` some caller has already been told.
    delivered: int
    done: anyio.Event
    heartbeat: str | None

    async def wait_changed(self) -> None: ...


class _Sender:
    def __init__(self, report: ProgressReporter) -> None:
        self._report = report
        self.last: float = 0.0
        self.sent_at = time.monotonic()

    async def send(self, progress: float, total: float | None, message: str | None) -> None:
        value = round(max(progress, self.last + _STEP), 3)
        self.last = value
        self.sent_at = time.monotonic()
        await self._report(value, total, message)


async def relay(
    job: Relayed,
    report: ProgressReporter,
    *,
    wait_s: float,
    coalesce_s: float = COALESCE_S,
    heartbeat_s: float = HEARTBEAT_S,
) -> bool:
    """Forward `job`'s events from `job.delivered` on; True once it finished and everything was sent.

    The relay keeps its own cursor from there: callers waiting on one job at the same moment (two
    agents sharing a token) each need all of it, as they get it on separate replicas. The job's
    cursor rises to the furthest any of them was told, so the next call goes on from there.
    """
    sender = _Sender(report)
    told = job.delivered
    deadline = time.monotonic() + max(wait_s, 0.0)
    while True:
        # Events a bounded shared log no longer holds cannot be told (`replicas._skip`).
        told = max(told, job.events.start)
        if told < len(job.events):
            if not job.done.is_set():
                # Let a burst gather, but flush at once when the job finishes inside the window.
                with anyio.move_on_after(max(0.0, min(coalesce_s, deadline - time.monotonic()))):
                    await job.done.wait()
            told = await _flush(job, sender, told)
        if job.done.is_set() and told >= len(job.events):
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        if told < len(job.events):
            continue
        quiet_until = sender.sent_at + heartbeat_s
        with anyio.move_on_after(max(0.0, min(deadline, quiet_until) - now)):
            await job.wait_changed()
            continue
        if time.monotonic() >= quiet_until and told >= len(job.events) and not job.done.is_set():
            await sender.send(sender.last, None, job.heartbeat)


async def _flush(job: Relayed, sender: _Sender, start: int) -> int:
    """Send the events after `start`; the cursor after them (the job's rises with each one sent)."""
    events = job.events.since(start)
    end = len(events)
    i = 0
    while i < end:
        event = events[i]
        if event.kind == "text":
            parts = [event.message]
            last = event
            while i + 1 < end and events[i + 1].kind == "text":
                i += 1
                last = events[i]
                parts.append(last.message)
            await sender.send(last.progress, None, "".join(parts))
        else:
            await sender.send(event.progress, event.total, event.message)
        i += 1
        job.delivered = max(job.delivered, start + i)
    return start + end
