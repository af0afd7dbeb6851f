"""A job and the values around it: what a tool starts (`Job`), what runs it (`Worker`), what its caller
sees meanwhile (`Partial`) and what a portable id rebuilds (`Resumed`). `manager.JobManager` keeps them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from tl_mcp.server.jobs.events import EventLog, JobEvent, JobProgress
from tl_mcp.server.principals import LOCAL
from tl_mcp.server.shared.base import JobRecord

JobStatus = Literal["in_progress", "completed", "failed", "cancelled", "expired", "lost"]


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
    #: How many of `events` the shared state holds.
    published: int = 0
    #: One write to the shared state at a time, so the newest state is always the one that lands last.
    publishing: anyio.Lock = field(default_factory=anyio.Lock)
    #: The job runs on another replica; this one follows its shared record.
    remote: JobRecord | None = None

    @property
    def out_of_time(self) -> bool:
        """Its lifetime is over: a cancellation now is the deadline's, not a caller's."""
        return anyio.current_time() >= self.scope.deadline

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

    def ended(self) -> None:
        """Mark the job over and wake everyone waiting on it."""
        self.finished_at = time.monotonic()
        self.done.set()
        self.events.notify()

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


def span(seconds: float) -> str:
    """A bound as a message says it."""
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:g} s"
