"""Shared test fixtures (keep this small; areas keep their own fixtures in their folders)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True, scope="module")
def _sandbox_may_fetch_loopback(request: pytest.FixtureRequest) -> Iterator[None]:
    """Outside tests/sandbox, tests upload by URL from loopback test servers through the embedded sandbox,
    which refuses private addresses unless TL_MCP_SANDBOX_ALLOW_PRIVATE_URLS=1; tests/sandbox opts in per
    sandbox so its default-refusal tests see the real default."""
    if "sandbox" in request.path.parts:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TL_MCP_SANDBOX_ALLOW_PRIVATE_URLS", "1")
        yield
