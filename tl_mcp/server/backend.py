"""Choosing and opening the TwelveLabs backend: the cloud, a sandbox at a URL, or an embedded sandbox."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import platformdirs

from tl_mcp.api import PollPolicy, TwelveLabsClient
from tl_mcp.api._http import RetryPolicy
from tl_mcp.config import DEFAULT_BASE_URL, BackendKind, ConfigError, Settings

log = logging.getLogger(__name__)

#: Sent to a sandbox started elsewhere when no key is configured; sandboxes accept any key by default.
LOCAL_SANDBOX_KEY = "tl-mcp-local"
#: The MCP server's own state inside a sandbox dir, apart from the sandbox's database and media.
SERVER_STATE = "mcp-server"


@dataclass(frozen=True)
class Backend:
    client: TwelveLabsClient
    kind: BackendKind
    base_url: str
    #: Names the same data across restarts (never an ephemeral port): what ids and sessions are bound to.
    identity: str
    #: This backend's own folder for server state (the session map), never shared with another backend.
    state_dir: Path


def _keyed(kind: str, base_url: str, key: str) -> tuple[str, str]:
    """(identity, folder name) of an API reached by URL: its base URL and a hash of the key, never the key."""
    identity = f"{kind}:{base_url.rstrip('/')} key:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return identity, f"{kind}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _user_client(
    api_key: str,
    base_url: str,
    transport: httpx2.AsyncBaseTransport | None,
    settings: Settings,
    retry: RetryPolicy | None,
) -> TwelveLabsClient:
    from tl_mcp import __version__

    return TwelveLabsClient(
        api_key,
        base_url,
        transport=transport,
        retry=retry,
        poll=PollPolicy(initial=settings.poll_initial_s, max_interval=settings.poll_max_s),
        user_agent=f"tl-mcp/{__version__}",
    )


@asynccontextmanager
async def open_backend(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[Backend]:
    """`transport` replaces the HTTP transport of the API client (tests observe the network boundary);
    `retry` its retry policy."""
    kind = settings.effective_backend
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if kind == "cloud":
        if key is None:
            raise ConfigError(
                "TL_MCP_BACKEND=cloud needs TWELVELABS_API_KEY; set it, or use "
                "TL_MCP_BACKEND=sandbox for the offline sandbox"
            )
        identity, folder = _keyed("cloud", settings.base_url, key)
        state_dir = Path(platformdirs.user_state_dir("tl-mcp", appauthor=False)) / folder
        async with _user_client(key, settings.base_url, transport, settings, retry) as client:
            log.info("backend: TwelveLabs cloud at %s", settings.base_url)
            yield Backend(client, "cloud", settings.base_url, identity, state_dir)
        return
    if settings.base_url != DEFAULT_BASE_URL:
        # A sandbox already running elsewhere (e.g. `tl-mcp sandbox`): talk to it like any API. Its data
        # dir is not ours to write in; TL_MCP_SANDBOX_DIR holds our state for it, one folder per URL+key.
        sandbox_key = key or LOCAL_SANDBOX_KEY
        identity, folder = _keyed("sandbox", settings.base_url, sandbox_key)
        state_dir = settings.sandbox_dir / SERVER_STATE / folder
        async with _user_client(sandbox_key, settings.base_url, transport, settings, retry) as client:
            log.info("backend: sandbox at %s", settings.base_url)
            yield Backend(client, "sandbox", settings.base_url, identity, state_dir)
        return
    try:
        from tl_mcp.sandbox.embedded import start_embedded
    except ImportError as exc:
        raise ConfigError(
            "the embedded sandbox needs the sandbox extra (pip install 'tl-mcp[sandbox]'), missing: "
            f"{exc.name or exc}; or set TWELVELABS_API_KEY to use the TwelveLabs cloud"
        ) from None
    settings.sandbox_dir.mkdir(parents=True, exist_ok=True)
    # The embedded sandbox listens on a new port each start: its data dir is what stays the same.
    data_dir = settings.sandbox_dir.resolve()
    async with (
        start_embedded(
            settings.sandbox_dir,
            analyzers=settings.sandbox_analyzers,
            answerer=settings.sandbox_answerer,
            llm_model=settings.sandbox_llm_model,
            llm_url=settings.sandbox_llm_url,
            llm_name=settings.sandbox_llm_name,
            llm_timeout_s=settings.sandbox_llm_timeout_s,
            stream_delay_s=settings.sandbox_stream_delay_s,
        ) as sandbox,
        _user_client(sandbox.api_key, sandbox.base_url, transport, settings, retry) as c,
    ):
        log.info("backend: embedded sandbox at %s (data in %s)", sandbox.base_url, settings.sandbox_dir)
        yield Backend(c, "sandbox", sandbox.base_url, f"sandbox:{data_dir}", data_dir / SERVER_STATE)
