"""Jobs when the shared Redis stops answering or restarts, with real `redis-server` processes.

The replica running a job needs Redis only to share it: while Redis is down its own callers still get
the job id and the result. A follower on another replica gets an error that says Redis did not answer.
A Redis restarted empty loses the records: the replicas running the jobs write them again, so another
replica finds a quiet job again within the replica timeout, and relays it to the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
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
