"""What a job tells its callers, and what it has learned so far.

`EventLog` is append-only; each reader keeps a cursor (an index into it), so a second caller resumes
exactly where the first one stopped. `JobProgress` is the typed record a worker fills in as it learns
upstream ids and statuses: its partial result is rendered from it, and it declares the upstream
handles another replica could follow the job with (`handles`), so nothing ever parses a rendered
result to find them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import anyio


@dataclass(frozen=True)
class JobEvent:
    """One thing to tell the caller. `text` events are streamed answer text (merged when relayed)."""

    kind: Literal["text", "note"]
    message: str
    progress: float
    total: float | None = None


def dump_event(event: JobEvent) -> str:
    """The event as stored in the shared state, for another replica to relay."""
    return json.dumps([event.kind, event.message, event.progress, event.total], separators=(",", ":"))


def load_event(raw: str) -> JobEvent:
    kind, message, progress, total = json.loads(raw)
    return JobEvent(kind, message, progress, total)


class EventLog:
    """A job's events in order; readers hold a cursor and wait for the log to change.

    `start` is how many events came before this log: a replica following another one's job keeps
    only what its caller has not been told yet, and cursors still count from the job's first event.
    """

    def __init__(self, start: int = 0) -> None:
        self._start = start
        self._events: list[JobEvent] = []
        self._changed = anyio.Event()

    def __len__(self) -> int:
        return self._start + len(self._events)

    @property
    def start(self) -> int:
        """How many events came before the first one this log holds."""
        return self._start

    def since(self, cursor: int) -> Sequence[JobEvent]:
        """The events after `cursor` (a count of events already read), oldest first."""
        return self._events[max(cursor - self._start, 0) :]

    def skip_to(self, count: int) -> None:
        """Start an empty log later: events up to `count` are gone (a bounded shared log dropped them)."""
        if not self._events:
            self._start = max(self._start, count)

    def append(self, event: JobEvent) -> None:
        self._events.append(event)
        self.notify()

    def notify(self) -> None:
        """Wake every waiter: an event arrived, or the job's state changed (it finished)."""
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait_changed(self) -> None:
        await self._changed.wait()


@dataclass
class JobProgress:
    """What a worker has learned; each kind of job subclasses it with typed fields.

    `code` names the kind in portable job ids. `movable` says the job's remaining work will become
    watching upstream handles that any replica can follow (an upload, an embedding task), so a call may
    wait a little longer for them; `handles` returns them once they exist.
    """

    code: ClassVar[str | None] = None
    movable: ClassVar[bool] = False

    def handles(self) -> list[str] | None:
        """The fields of this job's portable id right now; None while it has none (or never will)."""
        return None

    def again(self) -> str | None:
        """The call that starts this work anew, for when the replica running it is gone."""
        return None
