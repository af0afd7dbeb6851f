"""The shared-state interface every replica talks to, and the records it keeps.

A job is shared once its first caller got its id (before that nobody else can ask for it): its record
(status, the partial result so far, the final result or error, which replica runs it) and its event
log. Events are numbered from 1 in the order the job emitted them, so a cursor (how many events some
caller was told) means the same on every replica; each event is stored as the job manager serialized
it (this layer never looks inside). Each replica keeps a heartbeat; a job whose replica
stopped beating is lost.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tl_mcp.server.limits import LimitStore

#: (principal components or None, the client's session-id hint or None, the request id).
CancelKey = tuple[tuple[str, str | None, str | None] | None, str | None, str | int]
CancelHandler = Callable[[CancelKey], None]
#: How long a Jockey session's store is remembered after its last turn.
SESSION_TTL_S = 30 * 24 * 3600.0
#: A job's shared event log keeps its newest events up to this many.
MAX_EVENTS = 20_000


@dataclass
class JobRecord:
    """What another replica needs to relay a job: who owns it, where it runs, and how it stands."""

    id: str
    kind: str
    label: str
    owner: str
    replica: str
    status: str
    #: How many events the job has emitted (and published) so far.
    events: int = 0
    #: The result so far (`CallToolResult` as JSON) while in progress; the final one once completed.
    partial: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    heartbeat: str | None = None
    #: The call that checks the upstream work directly, when the job watches some.
    watching: str | None = None
    #: The call that starts the work anew, named when the replica running it is gone.
    again: str | None = None

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> JobRecord:
        # A field only a newer replica writes is left out: replicas are upgraded one at a time.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(raw).items() if k in known})


class Sessions(Protocol):
    """Which knowledge store each Jockey session belongs to, and whose it is (see `sessions.py`)."""

    async def get(self, session_id: str, owner: str) -> str | None:
        """The session's knowledge store, if `owner` started it."""

    async def foreign(self, session_id: str, owner: str) -> bool:
        """True when another principal started this session."""

    async def remember(self, session_id: str, knowledge_store_id: str, owner: str) -> None:
        """Record the session's store; the first owner keeps it."""


class SharedState(ABC):
    """One replica's view of the shared state. `replica` names this process among the others."""

    replica: str
    sessions: Sessions
    #: True when other processes share this state (a cancel not running here may run there).
    replicated: bool = False

    @abstractmethod
    async def save_job(self, record: JobRecord, new_events: Sequence[str], *, ttl_s: float) -> None:
        """Store `record` and append `new_events` (numbered on from `record.events - len(new_events)`)."""

    @abstractmethod
    async def load_job(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    async def job_events(self, job_id: str, after: int, *, wait_s: float) -> Sequence[tuple[int, str]]:
        """(number, event) of the events after number `after`, waiting up to `wait_s` for the first."""

    @abstractmethod
    async def cursor(self, job_id: str) -> int:
        """How many of the job's events some caller, on any replica, has been told."""

    @abstractmethod
    async def advance(self, job_id: str, cursor: int) -> None:
        """Raise the job's cursor to `cursor` (never lowers it)."""

    @abstractmethod
    async def alive(self, replica: str) -> bool:
        """Whether `replica` beat its heart within the replica timeout."""

    @abstractmethod
    async def publish_cancel(self, key: CancelKey) -> None:
        """Send a client's cancel to every replica (this one included)."""

    @abstractmethod
    def on_cancel(self, handler: CancelHandler) -> None:
        """Call `handler` for every cancel any replica publishes."""

    @abstractmethod
    async def enter_call(self, key: CancelKey) -> None:
        """A call that a cancel could name started here (counted over every replica)."""

    @abstractmethod
    async def leave_call(self, key: CancelKey) -> None: ...

    @abstractmethod
    async def calls(self, key: CancelKey) -> int:
        """How many calls `key` names on all the replicas together."""

    @abstractmethod
    async def serve(self) -> None:
        """Keep this replica's heartbeat and cancel subscription going until cancelled."""

    def limit_store(self) -> LimitStore | None:
        """Where the per-token limits are counted when replicas share them; None: in each process."""
        return None
