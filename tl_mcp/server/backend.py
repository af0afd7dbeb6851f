"""Choosing and opening the TwelveLabs backend: the cloud, a sandbox at a URL, or an embedded sandbox."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import platformdirs

from tl_mcp.api import TwelveLabsClient
from tl_mcp.config import DEFAULT_BASE_URL, ConfigError, Settings
from tl_mcp.server.state import BackendKind

log = logging.getLogger(__name__)

#: Sent to a sandbox started elsewhere when no key is configured; sandboxes accept any key by default.
LOCAL_SANDBOX_KEY = "tl-mcp-local"


@dataclass(frozen=True)
class Backend:
    client: TwelveLabsClient
    kind: BackendKind
    base_url: str
    state_dir: Path


def _user_client(
    api_key: str, base_url: str, transport: httpx2.AsyncBaseTransport | None
) -> TwelveLabsClient:
    from tl_mcp import __version__

    return TwelveLabsClient(api_key, base_url, transport=transport, user_agent=f"tl-mcp/{__version__}")


@asynccontextmanager
async def open_backend(
    settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None
) -> AsyncIterator[Backend]:
    """`transport` replaces the HTTP transport of the API client (tests observe the network boundary)."""
    kind = settings.effective_backend
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if kind == "cloud":
        if key is None:
            raise ConfigError(
                "TL_MCP_BACKEND=cloud needs TWELVELABS_API_KEY; set it, or use "
                "TL_MCP_BACKEND=sandbox for the offline sandbox"
            )
        state_dir = Path(platformdirs.user_state_dir("tl-mcp", appauthor=False))
        async with _user_client(key, settings.base_url, transport) as client:
            log.info("backend: TwelveLabs cloud at %s", settings.base_url)
            yield Backend(client, "cloud", settings.base_url, state_dir)
        return
    state_dir = settings.sandbox_dir.parent
    if settings.base_url != DEFAULT_BASE_URL:
        # A sandbox already running elsewhere (e.g. `tl-mcp sandbox`): talk to it like any API.
        async with _user_client(key or LOCAL_SANDBOX_KEY, settings.base_url, transport) as client:
            log.info("backend: sandbox at %s", settings.base_url)
            yield Backend(client, "sandbox", settings.base_url, state_dir)
        return
    try:
        start_embedded = importlib.import_module("tl_mcp.sandbox.embedded").start_embedded
    except ImportError as exc:
        raise ConfigError(
            "the embedded sandbox needs the sandbox extra (pip install 'tl-mcp[sandbox]'), missing: "
            f"{exc.name or exc}; or set TWELVELABS_API_KEY to use the TwelveLabs cloud"
        ) from None
    settings.sandbox_dir.mkdir(parents=True, exist_ok=True)
    # The sandbox's own TL_MCP_SANDBOX_ANALYZERS choice (e.g. "none" for fast offline runs) still applies.
    analyzers = os.environ.get("TL_MCP_SANDBOX_ANALYZERS") or None
    async with (
        start_embedded(settings.sandbox_dir, analyzers=analyzers) as sandbox,
        _user_client(sandbox.api_key, sandbox.base_url, transport) as c,
    ):
        log.info("backend: embedded sandbox at %s (data in %s)", sandbox.base_url, settings.sandbox_dir)
        yield Backend(c, "sandbox", sandbox.base_url, state_dir)
