"""Run the sandbox inside this process on an ephemeral 127.0.0.1 port.

Real HTTP over loopback (not an in-memory ASGI transport, which would buffer streaming bodies)::

    async with start_embedded(tmp_path) as sb:
        client = TwelveLabsClient(sb.api_key, sb.base_url)

or, from synchronous code, ``sb = EmbeddedSandbox.start_in_thread(tmp_path)`` ... ``sb.stop()``.
Uvicorn runs in a daemon thread with its own event loop, so sandbox work never blocks the caller's loop.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import uvicorn
from pydantic import SecretStr

from tl_mcp.sandbox.app import create_app
from tl_mcp.sandbox.config import FaultConfig, SandboxConfig
from tl_mcp.sandbox.perception import Analyzers

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class EmbeddedSandbox:
    def __init__(self, config: SandboxConfig, api_key: str, analyzers: Analyzers | None = None) -> None:
        self.config = config
        self._api_key = api_key
        self._app = create_app(config, analyzers=analyzers)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=5
            )
        )
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"EmbeddedSandbox(base_url={self.base_url!r}, data_dir={str(self.config.data_dir)!r})"

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1.3"

    @property
    def engine(self) -> object:
        return self._app.state.engine

    @classmethod
    def create(
        cls,
        data_dir: Path,
        *,
        api_key: str | None = None,
        faults: FaultConfig | None = None,
        analyzers: Analyzers | str | None = None,
        **config: object,
    ) -> EmbeddedSandbox:
        key = api_key or f"tlk_sandbox_{secrets.token_hex(16)}"
        values: dict[str, object] = {"data_dir": Path(data_dir), "api_keys": (SecretStr(key),), **config}
        if faults is not None:
            values["faults"] = faults
        if isinstance(analyzers, str):
            values["analyzers"] = analyzers
        cfg = SandboxConfig.model_validate(values)
        return cls(cfg, key, analyzers if isinstance(analyzers, Analyzers) else None)

    @classmethod
    def start_in_thread(
        cls,
        data_dir: Path,
        *,
        api_key: str | None = None,
        faults: FaultConfig | None = None,
        analyzers: Analyzers | str | None = None,
        **config: object,
    ) -> EmbeddedSandbox:
        sandbox = cls.create(data_dir, api_key=api_key, faults=faults, analyzers=analyzers, **config)
        sandbox.start()
        return sandbox

    def start(self) -> None:
        self._sock.listen(128)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="tl-mcp-sandbox-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                self._sock.close()
                raise RuntimeError("the embedded sandbox failed to start; see the log above for why")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the embedded sandbox did not start within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        log.info("embedded sandbox listening on %s", self.base_url)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        self._sock.close()


@asynccontextmanager
async def start_embedded(
    data_dir: Path,
    *,
    api_key: str | None = None,
    faults: FaultConfig | None = None,
    analyzers: Analyzers | str | None = None,
    **config: object,
) -> AsyncIterator[EmbeddedSandbox]:
    """Serve the sandbox for the duration of the ``async with`` block."""
    sandbox = await anyio.to_thread.run_sync(
        lambda: EmbeddedSandbox.start_in_thread(
            data_dir, api_key=api_key, faults=faults, analyzers=analyzers, **config
        )
    )
    try:
        yield sandbox
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(sandbox.stop)
