"""What every handler shares for the life of the server: the API client, jobs, sessions, file policies."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.mcpserver import Context

from tl_mcp.api import TwelveLabsClient
from tl_mcp.config import BackendKind, Settings
from tl_mcp.server.files import FilePolicy
from tl_mcp.server.ingest_ledger import IngestLedger
from tl_mcp.server.jobs.manager import JobManager
from tl_mcp.server.shared.base import Sessions, SharedState
from tl_mcp.server.writes import WritePolicy


@dataclass
class AppState:
    settings: Settings
    client: TwelveLabsClient
    backend: BackendKind
    base_url: str
    jobs: JobManager
    sessions: Sessions
    files: FilePolicy
    writes: WritePolicy
    #: What bulk ingests remember across restarts (uploads by content, plans); see ingest_ledger.py.
    ingest: IngestLedger
    #: What the replicas share (this process alone without TL_MCP_REDIS_URL); `sessions` is its map.
    shared: SharedState
    #: One lock per content key or registration a bulk ingest of this process is working on, shared by
    #: all its plans: two bulk calls at once over the same files send each one (and index it) once.
    ingest_locks: weakref.WeakValueDictionary[str, anyio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )


def app_state(ctx: Context[Any, Any]) -> AppState:
    state = ctx.request_context.lifespan_context
    if not isinstance(state, AppState):
        raise RuntimeError("tl-mcp server state is missing: the server lifespan did not run")
    return state


class StateHolder:
    """Lets static resources (which the SDK calls without a Context) reach the lifespan state."""

    def __init__(self) -> None:
        self._state: AppState | None = None

    def set(self, state: AppState | None) -> None:
        self._state = state

    def get(self) -> AppState:
        if self._state is None:
            raise RuntimeError("tl-mcp server state is missing: the server lifespan did not run")
        return self._state
