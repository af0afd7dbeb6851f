"""A cancelled call closes its upstream request at once and leaves no work behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from tests.server.conftest import MODES, sandbox_settings
from tl_mcp.sandbox.config import FaultConfig, FaultRule
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


class ObservedTransport(httpx2.AsyncBaseTransport):
    """The real HTTP transport, noting when a /responses request is in flight and when it is torn down."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.in_flight = anyio.Event()
        self.aborted = anyio.Event()
        self.aborted_at: float | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if not request.url.path.endswith("/responses"):
            return await self._inner.handle_async_request(request)
        self.in_flight.set()
        try:
            return await self._inner.handle_async_request(request)
        except BaseException:
            self.aborted_at = time.monotonic()
            self.aborted.set()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture(scope="module")
def slow_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSandbox]:
    faults = FaultConfig(rules=(FaultRule(kind="latency", path="/responses", latency_s=3),))
    sb = EmbeddedSandbox.start_in_thread(tmp_path_factory.mktemp("slow"), analyzers="none", faults=faults)
    try:
        yield sb
    finally:
        sb.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_the_call_aborts_the_upstream_request(
    slow_sandbox: EmbeddedSandbox, tmp_path: Path, mode: str
) -> None:
    transport = ObservedTransport()
    server = build_server(sandbox_settings(slow_sandbox, tmp_path, None), transport=transport)
    async with Client(server, mode=mode) as c:
        cancelled_at = 0.0
        with anyio.move_on_after(20) as outer:
            async with anyio.create_task_group() as tg:

                async def ask() -> None:
                    await c.call_tool("create_response", {"knowledge_store_id": "ks_any", "input": "slow?"})

                tg.start_soon(ask)
                await transport.in_flight.wait()
                await anyio.sleep(0.2)
                cancelled_at = time.monotonic()
                tg.cancel_scope.cancel()
            with anyio.fail_after(5):
                await transport.aborted.wait()
        assert not outer.cancelled_caught
        assert transport.aborted_at is not None and transport.aborted_at - cancelled_at < 2.0
        # The server keeps serving after the cancellation.
        tools = await c.list_tools()
        assert tools.tools
