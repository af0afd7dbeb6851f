"""Jobs when the shared Redis stops answering or restarts, with real `redis-server` processes.

The replica running a job needs Redis only to share it: while Redis is down its own callers still get
the job id and the result. A follower on another replica gets an error that says Redis did not answer.
A Redis restarted empty loses the records: the replicas running the jobs write them again, so another
replica finds a quiet job again within the replica timeout, and relays it to the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent

from tests.server.conftest import ProgressRecorder
from tests.services import redis_server
from tl_mcp.server.jobs.manager import Job, JobManager, Worker
from tl_mcp.server.shared.redis_state import RedisState

pytestmark = pytest.mark.anyio


def _done(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content={"text": text})


def _partial(job: Job) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=f"partial:{job.text}")])


def _text(result: CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


def _two_steps(step: anyio.Event) -> tuple[list[str], Worker]:
    pieces = ["The answer ", "ends."]

    async def work(job: Job) -> CallToolResult:
        job.emit_text(pieces[0])
        await step.wait()
        job.emit_text(pieces[1])
        return _done(job.text)

    return pieces, work


@asynccontextmanager
async def _managers(
    url: str, scope: str, *, count: int, timeout_s: float = 3.0, serve: bool = True
) -> AsyncIterator[tuple[list[JobManager], TaskGroup]]:
    async with AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        states = [
            await stack.enter_async_context(RedisState.connect(url, scope=scope, replica_timeout_s=timeout_s))
            for _ in range(count)
        ]
        if serve:
            for state in states:
                tg.start_soon(state.serve)
        yield [JobManager(tg, shared=s, replica_timeout_s=timeout_s) for s in states], tg
        tg.cancel_scope.cancel()


async def test_a_job_handed_out_while_redis_is_down_still_gives_its_caller_the_id_and_the_result(
    tmp_path: Path,
) -> None:
    step = anyio.Event()
    pieces, work = _two_steps(step)
    async with AsyncExitStack() as stack:
        with redis_server(tmp_path / "redis") as url:
            (a,), _ = await stack.enter_async_context(_managers(url, "down-at-handout", count=1, serve=False))
        # Redis is gone: the job runs here, and its caller must learn its id (the work goes on).
        job = a.start("jockey", "Jockey answer", work, _partial)
        first = ProgressRecorder()
        with anyio.fail_after(5):
            partial = await a.run(job, first, wait_s=0.3)
        assert _text(partial) == "partial:The answer " and first.text == pieces[0]
        assert await a.find(job.id) is job
        step.set()
        second = ProgressRecorder()
        with anyio.fail_after(5):
            final = await a.run(job, second, wait_s=5)
        assert first.text + second.text == _text(final) == "".join(pieces)


async def test_redis_going_down_after_a_handout_leaves_the_jobs_own_replica_relaying_to_the_end(
    tmp_path: Path,
) -> None:
    step = anyio.Event()
    pieces, work = _two_steps(step)
    async with AsyncExitStack() as stack:
        with redis_server(tmp_path / "redis") as url:
            (a,), _ = await stack.enter_async_context(_managers(url, "down-after", count=1, serve=False))
            job = a.start("jockey", "Jockey answer", work, _partial)
            first = ProgressRecorder()
            await a.run(job, first, wait_s=0.3)
            assert job.shared
        step.set()
        second = ProgressRecorder()
        with anyio.fail_after(5):
            final = await a.run(job, second, wait_s=5)
        assert first.text + second.text == _text(final) == "".join(pieces)


async def test_a_follower_whose_redis_stops_answering_says_so_in_a_tool_error(tmp_path: Path) -> None:
    step = anyio.Event()
    _, work = _two_steps(step)
    server = redis_server(tmp_path / "redis")
    url = server.__enter__()
    try:
        async with _managers(url, "down-follow", count=2) as ((a, b), tg):
            job = a.start("jockey", "Jockey answer", work, _partial)
            await a.run(job, ProgressRecorder(), wait_s=0.3)
            on_b = await b.find(job.id)
            assert on_b is not None and on_b.remote is not None

            async def stop_redis() -> None:
                await anyio.sleep(0.5)
                await anyio.to_thread.run_sync(server.__exit__, None, None, None)

            tg.start_soon(stop_redis)
            with anyio.fail_after(20), pytest.raises(ToolError) as failed:
                await b.run(on_b, ProgressRecorder(), wait_s=30)
            message = str(failed.value)
            assert "The shared state (Redis at 127.0.0.1:" in message and "call again" in message
            step.set()
    finally:
        server.__exit__(None, None, None)


class _Redis:
    """A redis-server that can be restarted empty (no persistence, as in deploy/compose.yaml)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._runs = 0
        self._server: AbstractContextManager[str] | None = None
        self.url = ""

    def start(self) -> str:
        port = int(self.url.rsplit(":", 1)[1].split("/")[0]) if self.url else None
        self._runs += 1
        self._server = redis_server(self._folder / f"run{self._runs}", port=port)
        self.url = self._server.__enter__()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.__exit__(None, None, None)
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()


async def _found(manager: JobManager, job_id: str, within_s: float) -> Job:
    for _ in range(int(within_s / 0.2)):
        job = await manager.find(job_id)
        if job is not None:
            return job
        await anyio.sleep(0.2)
    raise AssertionError(f"{job_id} is not found on another replica within {within_s:g} s")


async def test_after_redis_restarts_empty_a_quiet_job_is_found_and_relayed_on_another_replica(
    tmp_path: Path,
) -> None:
    step = anyio.Event()
    pieces, work = _two_steps(step)
    server = _Redis(tmp_path)
    try:
        async with _managers(server.start(), "restart-quiet", count=2) as ((a, b), _):
            job = a.start("jockey", "Jockey answer", work, _partial)
            await a.run(job, ProgressRecorder(), wait_s=0.3)
            await anyio.sleep(2.5)  # past the publisher's first rounds: from now on it has nothing new
            await anyio.to_thread.run_sync(server.restart)
            # The job says nothing new, yet its replica writes it again (with its heartbeat) in time.
            on_b = await _found(b, job.id, within_s=3.0 + 2.0)
            step.set()
            relayed = ProgressRecorder()
            with anyio.fail_after(10):
                final = await b.run(on_b, relayed, wait_s=10)
            # What was told before the restart is gone from Redis; the rest arrives, and the result.
            assert relayed.text == pieces[1]
            assert _text(final) == "".join(pieces)
    finally:
        server.stop()


async def test_a_job_that_ends_quietly_after_redis_restarts_is_relayed_to_its_result(tmp_path: Path) -> None:
    step = anyio.Event()

    async def work(job: Job) -> CallToolResult:
        job.emit_text("The whole answer.")
        await step.wait()
        return _done(job.text)

    server = _Redis(tmp_path)
    try:
        async with _managers(server.start(), "restart-end", count=2) as ((a, b), _):
            job = a.start("jockey", "Jockey answer", work, _partial)
            await a.run(job, ProgressRecorder(), wait_s=0.3)
            on_b = await b.find(job.id)
            assert on_b is not None
            await anyio.to_thread.run_sync(server.restart)
            step.set()  # ends with no new event: the record says 1 event, which Redis no longer has
            with anyio.fail_after(8):
                final = await b.run(on_b, ProgressRecorder(), wait_s=6)
            assert final.structured_content == {"text": "The whole answer."}
    finally:
        server.stop()


async def test_calls_on_another_replica_across_a_redis_restart_tell_each_event_once(tmp_path: Path) -> None:
    steps = [anyio.Event() for _ in range(2)]
    pieces = ["one ", "two ", "three."]

    async def work(job: Job) -> CallToolResult:
        job.emit_text(pieces[0])
        await steps[0].wait()
        job.emit_text(pieces[1])
        await steps[1].wait()
        job.emit_text(pieces[2])
        return _done(job.text)

    server = _Redis(tmp_path)
    try:
        async with _managers(server.start(), "restart-calls", count=2) as ((a, b), _):
            job = a.start("jockey", "Jockey answer", work, _partial)
            await a.run(job, ProgressRecorder(), wait_s=0.3)
            on_b = await b.find(job.id)
            assert on_b is not None
            steps[0].set()
            before = ProgressRecorder()
            with anyio.fail_after(5):
                await b.run(on_b, before, wait_s=0.5)
            assert before.text == pieces[1]
            await anyio.to_thread.run_sync(server.restart)
            steps[1].set()  # "three." is published once Redis is back, after events Redis lost
            after = ProgressRecorder()
            with anyio.fail_after(10):
                final = await b.run(await _found(b, job.id, within_s=5.0), after, wait_s=8)
            assert after.text == pieces[2] and _text(final) == "".join(pieces)
    finally:
        server.stop()


async def test_a_replicas_next_calls_after_redis_restarts_are_answered(tmp_path: Path) -> None:
    from tl_mcp.server.shared.redis_ledger import RedisIngestLedger
    from tl_mcp.server.shared.redis_state import prefix_of

    server = _Redis(tmp_path)
    try:
        url = server.start()
        ledger = RedisIngestLedger(url, prefix_of("restart-ledger"))
        try:
            async with RedisState.connect(url, scope="restart-calls", replica_timeout_s=5) as state:
                await state.sessions.remember("sess_1", "ks_1", "p")
                assert ledger.plan("plan_1") is None
                await anyio.to_thread.run_sync(server.restart)
                # Their pooled connections died with the old server: each call reconnects.
                assert await state.sessions.get("sess_1", "p") is None
                assert await state.cursor("job_1") == 0
                assert ledger.plan("plan_1") is None
        finally:
            ledger.close()
    finally:
        server.stop()


async def test_a_relay_on_another_replica_through_a_redis_restart_never_tells_an_event_twice(
    tmp_path: Path,
) -> None:
    steps = [anyio.Event() for _ in range(3)]
    pieces = ["one ", "two ", "three ", "four."]

    async def work(job: Job) -> CallToolResult:
        for piece, step in zip(pieces, [*steps, None], strict=True):
            job.emit_text(piece)
            if step is not None:
                await step.wait()
        return _done(job.text)

    server = _Redis(tmp_path)
    try:
        async with _managers(server.start(), "restart-relay", count=2) as ((a, b), tg):
            job = a.start("jockey", "Jockey answer", work, _partial)
            await a.run(job, ProgressRecorder(), wait_s=0.3)
            on_b = await b.find(job.id)
            assert on_b is not None

            async def go_on() -> None:
                await anyio.sleep(0.5)
                steps[0].set()  # "two " reaches B before the restart
                await anyio.sleep(0.5)
                await anyio.to_thread.run_sync(server.restart)
                steps[1].set()  # told while Redis restarts: the new one has it only if A writes it late
                await anyio.sleep(2.0)
                steps[2].set()

            tg.start_soon(go_on)
            told = ProgressRecorder()
            # Through the restart the relay either goes on or stops with an error that says to call again.
            with anyio.fail_after(15):
                try:
                    final = await b.run(on_b, told, wait_s=10)
                except ToolError as exc:
                    assert "call again" in str(exc) or "Call wait_for_task" in str(exc)
                    again = ProgressRecorder()
                    final = await b.run(await _found(b, job.id, within_s=5.0), again, wait_s=10)
                    told.calls += again.calls
            assert _text(final) == "".join(pieces)
            # Each event at most once, in order; only what Redis lost is missing.
            assert told.text in ("two four.", "two three four.")
    finally:
        server.stop()
