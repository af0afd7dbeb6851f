"""Shared test fixtures (keep this small; areas keep their own fixtures in their folders)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True, scope="session")
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The cloud backend keeps its state under the user's state dir, keyed by URL and key, and many tests
    share a fake URL and key: each test process (an xdist worker) gets dirs of its own, so two workers never
    share one SQLite ledger and no run writes into the developer's home. Tests that set these keep theirs."""
    root = tmp_path_factory.mktemp("user-dirs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(root / "state"))
        mp.setenv("XDG_DATA_HOME", str(root / "data"))
        yield


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

#: Folders whose tests must all run in one process, in order, under `pytest -n N --dist loadfile` (each
#: other file is a unit of its own): tests/sandbox/test_zz_spec_coverage.py inspects the responses every
#: other tests/sandbox module drew. (xdist_group marks do not work here: xdist 3.8 renames `item._nodeid`,
#: which pytest 9.2 no longer reads.)
ONE_WORKER = ("tests/sandbox/",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        where = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if where.startswith(SLOW_SUITES):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, except that each folder in ONE_WORKER is one unit. A file's module fixtures
    (a seeded sandbox, a server) are then built once, in one worker, as in a serial run."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileOrFolderScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for folder in ONE_WORKER:
                if nodeid.startswith(folder):
                    return folder
            return super()._split_scope(nodeid)

    return FileOrFolderScheduling(config, log)
