"""Shared state for one process (the default): nothing to share with, so everything stays here.

Job records live in this process's memory with the same bounds as in Redis; Jockey sessions in the
backend's `sessions.json` (kept across restarts); a cancel goes straight to this process's handlers.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import anyio

from tl_mcp.server.shared.base import (
    MAX_EVENTS,
    CancelHandler,
    CancelKey,
    JobRecord,
    Sessions,
    SharedState,
)

#: Records kept at once (the job manager's own table is smaller: TL_MCP_MAX_JOBS).
MAX_JOBS = 1_000


class _Job:
    def __init__(self, record: JobRecord, expires: float) -> None:
        self.record = record
        self.expires = expires
        self.events: list[tuple[int, str]] = []
        self.cursor = 0
        self.changed = anyio.Event()


class MemoryState(SharedState):
    def __init__(self, sessions: Sessions, *, clock: Any = time.monotonic) -> None:
        self.replica = "local-" + secrets.token_hex(4)
        self.sessions = sessions
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        self._handlers: list[CancelHandler] = []
        self._calls: Counter[CancelKey] = Counter()

    def _live(self, job_id: str) -> _Job | None:
        now = self._clock()
        for key in [k for k, j in self._jobs.items() if j.expires <= now]:
            del self._jobs[key]
        return self._jobs.get(job_id)

    async def save_job(self, record: JobRecord, new_events: Sequence[str], *, ttl_s: float) -> None:
        job = self._live(record.id)
        if job is None:
            while len(self._jobs) >= MAX_JOBS:
                del self._jobs[min(self._jobs, key=lambda k: self._jobs[k].expires)]
            job = self._jobs[record.id] = _Job(record, 0.0)
        job.record = deepcopy(record)
        job.expires = self._clock() + ttl_s
        first = record.events - len(new_events) + 1
        last = job.events[-1][0] if job.events else 0
        # A write that is tried again never doubles an event (as the Redis script does).
        job.events.extend((first + i, e) for i, e in enumerate(new_events) if first + i > last)
        del job.events[: max(len(job.events) - MAX_EVENTS, 0)]
        changed, job.changed = job.changed, anyio.Event()
        changed.set()

    async def load_job(self, job_id: str) -> JobRecord | None:
        job = self._live(job_id)
        return deepcopy(job.record) if job is not None else None

    async def job_events(self, job_id: str, after: int, *, wait_s: float) -> Sequence[tuple[int, str]]:
        job = self._live(job_id)
        if job is None:
            return []
        if not job.events or job.events[-1][0] <= after:
            with anyio.move_on_after(wait_s):
                await job.changed.wait()
        return [(n, e) for n, e in job.events if n > after]

    async def cursor(self, job_id: str) -> int:
        job = self._live(job_id)
        return job.cursor if job is not None else 0

    async def advance(self, job_id: str, cursor: int) -> None:
        job = self._live(job_id)
        if job is not None:
            job.cursor = max(job.cursor, cursor)

    async def alive(self, replica: str) -> bool:
        return replica == self.replica

    async def publish_cancel(self, key: CancelKey) -> None:
        for handler in self._handlers:
            handler(key)

    def on_cancel(self, handler: CancelHandler) -> None:
        self._handlers.append(handler)

    async def enter_call(self, key: CancelKey) -> None:
        self._calls[key] += 1

    async def leave_call(self, key: CancelKey) -> None:
        self._calls[key] -= 1
        if self._calls[key] <= 0:
            del self._calls[key]

    async def calls(self, key: CancelKey) -> int:
        return self._calls.get(key, 0)

    async def serve(self) -> None:
        await anyio.sleep_forever()
