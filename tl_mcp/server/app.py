"""Building the MCP server: lifespan (backend, jobs, sessions), tools, resources, prompts."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer, RequestStateSecurity

from tl_mcp import __version__
from tl_mcp.api._http import RetryPolicy
from tl_mcp.config import Settings
from tl_mcp.redaction import SECRETS
from tl_mcp.server.apps import moments_app
from tl_mcp.server.backend import Backend, open_backend
from tl_mcp.server.client_log import install_client_log
from tl_mcp.server.files import FilePolicy
from tl_mcp.server.inflight import InflightRequests
from tl_mcp.server.ingest_ledger import IngestLedger, SqliteIngestLedger
from tl_mcp.server.jobs.manager import JobManager
from tl_mcp.server.jobs.portable import JobIds, JobKinds
from tl_mcp.server.limits import limits_of
from tl_mcp.server.principals import current_principal
from tl_mcp.server.prompts import register_prompts
from tl_mcp.server.registry import build_tools, unknown_tools_are_protocol_errors
from tl_mcp.server.resources import register_resources
from tl_mcp.server.sessions import SessionStore
from tl_mcp.server.shared.base import SharedState
from tl_mcp.server.shared.memory import MemoryState
from tl_mcp.server.state import AppState, StateHolder
from tl_mcp.server.tools.analysis_tasks import AnalysisTaskProgress, resume_analysis_task
from tl_mcp.server.tools.analyze import AnalyzeProgress, resume_analysis
from tl_mcp.server.tools.embed import EmbedProgress, resume_embedding
from tl_mcp.server.tools.ingest import UploadProgress, resume_upload
from tl_mcp.server.tools.jockey import JockeyProgress, resume_jockey
from tl_mcp.server.writes import WritePolicy

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
TwelveLabs video understanding. Typical flow: upload_asset (a local file inside an allowed folder, or a
URL) with index_id and/or knowledge_store_id → wait_for_task until ready → search_videos for moments, or
create_response to ask Jockey about a knowledge store, then continue_session for follow-ups.
Long calls return status "in_progress" with a job_id: call wait_for_task(job_id) to keep following them.
Read the resource twelvelabs://guide for the full workflow."""

#: The server name is the audience of sealed request state: it must be the same on every replica.
SERVER_NAME = "tl-mcp"
#: With shared state keys (replicas), how much longer than wait_s a call may wait for a portable job id.
HANDOFF_GRACE_S = 30.0


def job_kinds() -> JobKinds[AppState]:
    """Every kind of job a portable id can name, and how a replica that never saw it resumes it."""
    return JobKinds(
        {
            UploadProgress.code: resume_upload,
            EmbedProgress.code: resume_embedding,
            JockeyProgress.code: resume_jockey,
            AnalyzeProgress.code: resume_analysis,
            AnalysisTaskProgress.code: resume_analysis_task,
        }
    )


def build_server(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    on_closed: Callable[[], None] | None = None,
) -> MCPServer[AppState]:
    """The configured server; `transport` swaps the API client's HTTP transport (for tests).

    `on_closed` is called once the lifespan has released everything (jobs, backend, embedded sandbox).
    """
    holder = StateHolder()
    # The log filter masks these wherever they turn up (the API client adds each key it uses).
    configured = (settings.api_key, *settings.auth_tokens, *settings.state_keys, settings.redis_url)
    SECRETS.add(*(secret.get_secret_value() for secret in configured if secret is not None))
    shared = [k.get_secret_value().encode() for k in settings.state_keys]
    # Without shared keys, ids and request state are only good in this process (one replica).
    job_keys = shared or [secrets.token_bytes(32)]
    auth = None
    if settings.oauth_enabled:
        # PyJWT and cryptography serve OAuth mode only: a plain server starts without them.
        from tl_mcp.server.auth import build_auth

        auth = build_auth(settings)
    if settings.redis_url is not None and not shared:
        log.warning(
            "TL_MCP_REDIS_URL is set without TL_MCP_STATE_KEYS: HTTP sessions stay pinned to the "
            "process that opened them, so replicas behind a load balancer cannot serve each other's "
            "calls. Give every replica the same TL_MCP_STATE_KEYS."
        )
    # Stateless HTTP (replicas) gives each POST its own dispatcher, which cannot see the call a cancel
    # names: this registry can (it acts on HTTP requests only).
    inflight = InflightRequests() if shared else None
    # HTTP serves many callers: each token gets its own budget (stdio has one caller).
    guarded = settings.transport == "http"
    retry: RetryPolicy | None = None
    if guarded:
        # Per-token limits and the Prometheus metrics serve HTTP only: stdio starts without importing them.
        from tl_mcp.server import metrics
        from tl_mcp.server.guard import CallGuard, UpstreamTransport

        limits = limits_of(settings)
        given = transport
        transport = UpstreamTransport(
            (lambda: given) if given is not None else httpx2.AsyncHTTPTransport,
            limits,
            tenant_keys=settings.tenant_keys,
        )
        retry = RetryPolicy(sleep=metrics.counting_sleep)

    @asynccontextmanager
    async def lifespan(server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        try:
            async with _serving(server) as state:
                yield state
        finally:
            if on_closed is not None:
                on_closed()

    @asynccontextmanager
    async def _serving(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with (
            open_backend(settings, transport=transport, retry=retry) as backend,
            # Closed after the task group has ended, so no job still writes to it.
            _ingest_ledger(settings, backend) as ingest,
            _shared_state(settings, backend) as shared_state,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(shared_state.serve, name="tl-mcp shared state")
            if inflight is not None:
                inflight.attach(shared_state)
            if guarded:
                # With Redis, every replica counts a token's calls against one budget.
                limits.store = shared_state.limit_store() or limits.store
            porter = job_kinds()
            state = AppState(
                settings=settings,
                client=backend.client,
                backend=backend.kind,
                base_url=backend.base_url,
                jobs=JobManager(
                    tg,
                    max_jobs=settings.max_jobs,
                    max_jobs_per_owner=settings.max_jobs_per_client,
                    lifetime_s=settings.job_lifetime_s,
                    principal=current_principal,
                    ids=JobIds(job_keys, scope=backend.identity),
                    porter=porter,
                    handoff_grace_s=HANDOFF_GRACE_S if shared else 0.0,
                    shared=shared_state,
                    replica_timeout_s=settings.replica_timeout_s,
                ),
                sessions=shared_state.sessions,
                files=FilePolicy.from_dirs(settings.allowed_dirs),
                writes=WritePolicy.from_dirs(settings.allowed_write_dirs),
                ingest=ingest,
                shared=shared_state,
            )
            porter.bind(state)
            holder.set(state)
            if guarded:
                metrics.watch_running_jobs(state.jobs.running)
            try:
                yield state
            finally:
                holder.set(None)
                # Background jobs belong to this lifespan; none may outlive the server.
                tg.cancel_scope.cancel()

    server: MCPServer[AppState] = MCPServer(
        SERVER_NAME,
        title="TwelveLabs video understanding",
        description="Search, ask (Jockey), embed, upload and analyze videos with TwelveLabs.",
        instructions=INSTRUCTIONS,
        website_url="https://www.twelvelabs.io",
        version=__version__,
        lifespan=lifespan,
        log_level=_sdk_level(settings.log_level),
        request_state_security=RequestStateSecurity(keys=shared) if shared else None,
        token_verifier=auth[0] if auth else None,
        auth=auth[1] if auth else None,
        tools=build_tools(settings),
        extensions=[moments_app(holder)],
    )
    if inflight is not None:
        server.middleware.append(inflight)
    unknown_tools_are_protocol_errors(server, settings)
    if guarded:
        server.middleware.append(
            CallGuard(
                limits, max_argument_chars=settings.max_argument_chars, tenant_keys=settings.tenant_keys
            )
        )
    register_resources(server, holder)
    register_prompts(server)
    install_client_log(lowlevel(server))
    return server


@asynccontextmanager
async def _ingest_ledger(settings: Settings, backend: Backend) -> AsyncIterator[IngestLedger]:
    """The bulk-ingest ledger every replica shares in Redis when TL_MCP_REDIS_URL is set, else the file."""
    ledger: IngestLedger
    if settings.redis_url is None:
        ledger = SqliteIngestLedger(backend.state_dir, backend.identity)
    else:
        from tl_mcp.server.shared.redis_ledger import RedisIngestLedger
        from tl_mcp.server.shared.redis_state import prefix_of

        ledger = RedisIngestLedger(settings.redis_url.get_secret_value(), prefix_of(backend.identity))
    try:
        yield ledger
    finally:
        ledger.close()


@asynccontextmanager
async def _shared_state(settings: Settings, backend: Backend) -> AsyncIterator[SharedState]:
    """Redis when TL_MCP_REDIS_URL is set (scoped to the backend, like the session file), else memory."""
    if settings.redis_url is None:
        yield MemoryState(SessionStore(backend.state_dir))
        return
    from tl_mcp.server.shared.redis_state import RedisState

    async with RedisState.connect(
        settings.redis_url.get_secret_value(),
        scope=backend.identity,
        replica_timeout_s=settings.replica_timeout_s,
    ) as state:
        yield state


def lowlevel(server: MCPServer[Any]) -> Server[Any]:
    """The SDK's low-level server under `server`.

    SDK 2.3 sends servers here for what `MCPServer` has no API for (a `logging/setLevel` handler,
    a stdio loop over our own streams) but offers no public accessor for it.
    """
    return server._lowlevel_server


def _sdk_level(level: str) -> Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]:
    upper = level.upper()
    if upper in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        return upper  # type: ignore[return-value]
    return "INFO"
