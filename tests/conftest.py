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


#: Suites that start browsers, replica clusters (Redis, HAProxy), many processes or a second Node: run by
#: `make test-slow` (which `.ci/run` runs after `make test`), so `make test` stays within its time budget.
SLOW_SUITES = (
    "tests/browser/",
    "tests/bench_smoke/",
    "tests/e2e/test_redis_replicas.py",
    "tests/e2e/test_replicas.py",
    "tests/e2e/test_bulk_restart.py",
    "tests/newcomer/test_newcomer_conformance.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        where = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if where.startswith(SLOW_SUITES):
            item.add_marker(pytest.mark.slow)
