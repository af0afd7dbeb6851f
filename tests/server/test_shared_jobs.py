"""Jobs across replicas: two job managers, each with its own connection to one shared state.

A job handed out on A is relayed on B from where its caller left off, and the relays joined are the
job's text exactly; a later call on A goes on from B's cursor. Another principal cannot see the job.
A replica that stops beating loses its running jobs within the replica timeout, and the caller is
told so and what to do. Redis is a real `redis-server`; memory is the one-process default.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent

from tests.server.conftest import ProgressRecorder
from tests.services import redis_server
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Resumed
from tl_mcp.server.jobs.manager import JobManager
from tl_mcp.server.jobs.portable import JobIds, JobKinds
from tl_mcp.server.sessions import SessionStore
from tl_mcp.server.shared.base import SharedState
from tl_mcp.server.shared.memory import MemoryState
from tl_mcp.server.shared.redis_state import RedisState

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def _done(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content={"text": text})


def _partial(job: Job) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=f"partial:{job.text}")])


def _text(result: CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


async def _process(tg: TaskGroup) -> TaskGroup:
    """A task group of its own inside `tg`: cancelling it stops all one replica runs, as a kill would."""

    async def hold(*, task_status: anyio.abc.TaskStatus[TaskGroup]) -> None:
        async with anyio.create_task_group() as inner:
            task_status.started(inner)
            await anyio.sleep_forever()

    inner: TaskGroup = await tg.start(hold)
    return inner


@asynccontextmanager
async def _replicas(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, *, timeout_s: float = 5
) -> AsyncIterator[tuple[JobManager, JobManager, dict[str, str], TaskGroup]]:
    """Managers A and B (their caller is `who["p"]`) over memory (one state) or Redis (one state each).

    The task group yielded is A's own: cancelling it is killing A (its jobs and what publishes them).
    """
    who = {"p": "p1"}
    async with AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        states: list[SharedState]
        if kind == "memory":
            states = [MemoryState(SessionStore(tmp_path))] * 2
        else:
            url = request.getfixturevalue("redis_url")
            scope = f"jobs:{tmp_path}"
            states = [
                await stack.enter_async_context(
                    RedisState.connect(url, scope=scope, replica_timeout_s=timeout_s)
                )
                for _ in range(2)
            ]
        a_process = await _process(tg)
        a_process.start_soon(states[0].serve)
        tg.start_soon(states[1].serve)
        a, b = (
            JobManager(group, principal=lambda: who["p"], shared=s, replica_timeout_s=timeout_s)
            for group, s in zip((a_process, tg), states, strict=True)
        )
        yield a, b, who, a_process
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_job_handed_out_on_one_replica_is_relayed_on_another_from_its_cursor(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    steps = [anyio.Event() for _ in range(2)]
    pieces = ["The answer ", "goes on ", "and ends."]

    async def work(job: Job) -> CallToolResult:
        job.emit_text(pieces[0])
        await steps[0].wait()
        job.emit_text(pieces[1])
        await steps[1].wait()
        job.emit_text(pieces[2])
        return _done(job.text)

    async with _replicas(kind, tmp_path, request) as (a, b, who, _):
        job = a.start("jockey", "Jockey answer", work, _partial)
        first = ProgressRecorder()
        partial = await a.run(job, first, wait_s=0.3)
        assert _text(partial) == "partial:The answer " and first.text == pieces[0]

        # Another principal's call finds nothing, as for an unknown id.
        who["p"] = "p2"
        assert await b.find(job.id) is None
        who["p"] = "p1"

        on_b = await b.find(job.id)
        assert on_b is not None and on_b is not job and on_b.kind == "jockey"
        steps[0].set()
        second = ProgressRecorder()
        with anyio.fail_after(5):
            assert _text(await b.run(on_b, second, wait_s=1.0)) == "partial:The answer goes on "
        assert second.text == pieces[1]

        # Back on A: it goes on from B's cursor, so nothing is told twice.
        steps[1].set()
        third = ProgressRecorder()
        with anyio.fail_after(5):
            final = await a.run(job, third, wait_s=5)
        assert third.text == pieces[2]
        assert first.text + second.text + third.text == _text(final) == "".join(pieces)

        # B, asked again once it ended, answers with the same final result.
        again = await b.find(job.id)
        assert again is not None
        with anyio.fail_after(5):
            ended = await b.run(again, ProgressRecorder(), wait_s=2)
        assert ended.structured_content == {"text": "".join(pieces)}


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_callers_waiting_on_one_job_at_once_each_get_all_of_it_on_any_replica(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two callers of one principal on the job's replica and one on another, at the same moment (two
    agents sharing a token): each relay goes on from the cursor it found, so each caller's progress
    joined is the whole text, on whichever replica it waits."""
    gate = anyio.Event()
    pieces = [f"piece {i} " for i in range(8)]

    async def work(job: Job) -> CallToolResult:
        await gate.wait()
        for piece in pieces:
            job.emit_text(piece)
            await anyio.sleep(0.01)
        return _done(job.text)

    async with _replicas(kind, tmp_path, request) as (a, b, _, _tg):
        job = a.start("jockey", "Jockey answer", work, _partial)
        relayed = {name: ProgressRecorder() for name in ("a1", "a2", "b")}
        finals: dict[str, CallToolResult] = {}
        with anyio.fail_after(10):
            await a.run(job, ProgressRecorder(), wait_s=0)  # handed out, nothing told yet
            on_b = await b.find(job.id)
            assert on_b is not None and on_b.remote is not None

            async def wait(name: str, manager: JobManager, handle: Job) -> None:
                finals[name] = await manager.run(handle, relayed[name], wait_s=5)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait, "a1", a, job)
                tg.start_soon(wait, "a2", a, job)
                tg.start_soon(wait, "b", b, on_b)
                await anyio.sleep(0.2)
                gate.set()
        for name, told in relayed.items():
            assert told.text == "".join(pieces), (name, told.calls)
            told.assert_increasing()
            assert finals[name].structured_content == {"text": "".join(pieces)}, name


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_finished_job_asked_on_another_replica_without_waiting_is_finished(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async def work(job: Job) -> CallToolResult:
        job.emit_text("All of it.")
        return _done(job.text)

    async with _replicas(kind, tmp_path, request) as (a, b, _, _tg):
        job = a.start("jockey", "Jockey answer", work, _partial)
        with anyio.fail_after(5):
            # Handed out (shared from then on), and then over.
            await a.run(job, ProgressRecorder(), wait_s=0)
            await job.done.wait()
            # ...and so recorded in the shared state (A publishes its end right after).
            while True:
                on_b = await b.find(job.id)
                if on_b is not None and on_b.remote is not None and on_b.remote.status != "in_progress":
                    break
                await anyio.sleep(0.02)
        told = ProgressRecorder()
        with anyio.fail_after(5):
            ended = await b.run(on_b, told, wait_s=0)
        # wait_s=0 is a poll: the job is over, so the poll says so rather than "still in progress".
        assert ended.structured_content == {"text": "All of it."}


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_job_its_caller_was_told_finished_is_finished_on_the_other_replica_at_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pieces = [f"piece {i} " for i in range(16)]

    async def work(job: Job) -> CallToolResult:
        for piece in pieces:
            job.emit_text(piece)
            await anyio.sleep(0.005)
        return _done(job.text)

    async with _replicas(kind, tmp_path, request) as (a, b, _, _tg):
        job = a.start("jockey", "Jockey answer", work, _partial)
        told = ProgressRecorder()
        with anyio.fail_after(10):
            assert _text(await a.run(job, told, wait_s=0)).startswith("partial:")
            final = await a.run(job, told, wait_s=10)
            assert final.structured_content == {"text": "".join(pieces)} and told.text == "".join(pieces)
            # The caller's very next call, without waiting, reaches B: it must not go back to "in progress".
            on_b = await b.find(job.id)
            assert on_b is not None
            polled = ProgressRecorder()
            ended = await b.run(on_b, polled, wait_s=0)
        assert ended.structured_content == final.structured_content
        assert polled.text == ""  # all of it was told on A already


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_poll_on_another_replica_relays_the_progress_the_shared_state_holds(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gate = anyio.Event()

    async def work(job: Job) -> CallToolResult:
        job.emit_text("Started, ")
        job.emit_note("[step] searching")
        await gate.wait()
        job.emit_text("then done.")
        return _done(job.text)

    async with _replicas(kind, tmp_path, request) as (a, b, _, _tg):
        job = a.start("jockey", "Jockey answer", work, _partial)
        with anyio.fail_after(10):
            await a.run(job, ProgressRecorder(), wait_s=0)
            # A publishes its events in the background; once B can see them, a poll there tells them.
            while True:
                seen = await b.find(job.id)
                if seen is not None and seen.remote is not None and seen.remote.events >= 2:
                    break
                await anyio.sleep(0.02)
            polled = ProgressRecorder()
            partial = await b.run(seen, polled, wait_s=0)
            assert _text(partial) == "partial:Started, "
            assert polled.text == "Started, [step] searching"
            # Back on A, the relay goes on from where B's poll left off.
            gate.set()
            rest = ProgressRecorder()
            final = await a.run(job, rest, wait_s=5)
        assert rest.text == "then done." and final.structured_content == {"text": "Started, then done."}


async def test_a_replica_that_stops_beating_loses_its_running_jobs_in_bounded_time(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async def work(job: Job) -> CallToolResult:
        job.emit_text("Started, ")
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with _replicas("redis", tmp_path, request, timeout_s=1.5) as (a, b, _, a_process):
        job = a.start("jockey", "Jockey answer on ks_1", work, _partial)
        await a.run(job, ProgressRecorder(), wait_s=0.2)
        on_b = await b.find(job.id)
        assert on_b is not None
        # A stops beating and publishing, as if its process were killed (its connection stays open).
        a_process.cancel_scope.cancel()
        started = time.monotonic()
        relayed = ProgressRecorder()
        with anyio.fail_after(6), pytest.raises(ToolError) as lost:
            await b.run(on_b, relayed, wait_s=30)
        assert time.monotonic() - started < 1.5 + 2.5
        message = str(lost.value)
        assert "was running on another replica of this server, which stopped" in message
        assert "TL_MCP_REPLICA_TIMEOUT_S" in message and "Start it again" in message
        assert relayed.text == ""
        # Asked again later, the answer is the same at once.
        with anyio.fail_after(3), pytest.raises(ToolError, match="which stopped"):
            await b.find(job.id)


def test_redis_without_shared_state_keys_warns_that_replicas_cannot_share_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tl_mcp.config import Settings
    from tl_mcp.server import build_server

    env = {
        "TL_MCP_BACKEND": "sandbox",
        "TL_MCP_SANDBOX_DIR": str(tmp_path),
        "TL_MCP_REDIS_URL": "redis://x:1",
    }
    build_server(Settings.from_sources(env=env))
    assert "TL_MCP_REDIS_URL is set without TL_MCP_STATE_KEYS" in caplog.text
    caplog.clear()
    build_server(Settings.from_sources(env={**env, "TL_MCP_STATE_KEYS": "s" * 40}))
    assert "TL_MCP_STATE_KEYS" not in caplog.text


@dataclass
class _Watch(JobProgress):
    """A job whose remaining work is watching one upstream handle, as an upload's is."""

    code: ClassVar[str] = "w"
    movable: ClassVar[bool] = True

    def handles(self) -> list[str]:
        return ["asset1"]


async def test_a_lost_replicas_job_with_upstream_handles_is_taken_over(redis_url: str) -> None:
    resumed_with: list[list[str]] = []

    async def watching(job: Job) -> CallToolResult:
        return _done("watched upstream to the end")

    def resume(_: Any, job_id: str, fields: list[str]) -> Resumed:
        resumed_with.append(fields)
        return Resumed("watch", "Upload of clip.mp4", watching, _partial, _Watch())

    async def stuck(job: Job) -> CallToolResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        a_state, b_state = [
            await stack.enter_async_context(
                RedisState.connect(redis_url, scope="takeover", replica_timeout_s=1)
            )
            for _ in range(2)
        ]
        tg.start_soon(b_state.serve)
        a_process = await _process(tg)
        a, b = (
            JobManager(
                group,
                shared=s,
                replica_timeout_s=1,
                ids=JobIds([b"k" * 32], scope="sandbox"),
                porter=JobKinds({"w": resume}),
            )
            for group, s in ((a_process, a_state), (tg, b_state))
        )
        job = a.start("watch", "Upload of clip.mp4", stuck, _partial, _Watch())
        await a.run(job, ProgressRecorder(), wait_s=0.2)
        assert job.id.startswith("job_w:asset1.")
        # A never beats after connecting, and now stops publishing: it is as good as killed.
        a_process.cancel_scope.cancel()
        await anyio.sleep(1.5)
        taken = await b.find(job.id)
        assert taken is not None and taken.remote is None and resumed_with == [["asset1"]]
        with anyio.fail_after(5):
            assert _text(await b.run(taken, ProgressRecorder(), wait_s=5)) == "watched upstream to the end"
        tg.cancel_scope.cancel()
