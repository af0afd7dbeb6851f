"""Jobs and the progress relay: coalescing, exact text, resumption from the last offset, cancellation."""

from __future__ import annotations

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent

from tests.server.conftest import ProgressRecorder
from tl_mcp.server.jobs.job import Job
from tl_mcp.server.jobs.manager import JobManager
from tl_mcp.server.jobs.relay import relay

pytestmark = pytest.mark.anyio


def _done(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


def _partial(job: Job) -> CallToolResult:
    return _done(f"partial:{job.text}")


async def test_bursts_are_merged_and_messages_concatenate_to_the_text() -> None:
    deltas = [f"w{i} " for i in range(200)]

    async def work(job: Job) -> CallToolResult:
        for i, d in enumerate(deltas):
            job.emit_text(d)
            if i % 50 == 49:
                await anyio.sleep(0.2)
        return _done(job.text)

    rec = ProgressRecorder()
    async with anyio.create_task_group() as tg:
        jobs = JobManager(tg)
        job = jobs.start("t", "test", work, _partial)
        result = await jobs.run(job, rec, wait_s=10)
    assert rec.text == "".join(deltas)
    assert 2 <= len(rec.calls) <= 10, len(rec.calls)
    rec.assert_increasing()
    assert rec.calls[-1][0] == len("".join(deltas))
    assert isinstance(result.content[0], TextContent) and result.content[0].text == "".join(deltas)


async def test_timeout_hands_out_job_and_wait_resumes_from_offset() -> None:
    gate = anyio.Event()

    async def work(job: Job) -> CallToolResult:
        job.emit_text("first half, ")
        await gate.wait()
        job.emit_text("second half.")
        return _done(job.text)

    async with anyio.create_task_group() as tg:
        jobs = JobManager(tg)
        job = jobs.start("t", "test", work, _partial)
        first = ProgressRecorder()
        partial = await jobs.run(job, first, wait_s=0.3)
        assert isinstance(partial.content[0], TextContent)
        assert partial.content[0].text == "partial:first half, "
        assert job.handed_out and jobs.get(job.id) is job
        gate.set()
        second = ProgressRecorder()
        final = await jobs.run(job, second, wait_s=5)
    assert first.text == "first half, " and second.text == "second half."
    assert first.text + second.text == job.text
    assert isinstance(final.content[0], TextContent) and final.content[0].text == job.text


async def test_quiet_work_sends_heartbeats() -> None:
    async def work(job: Job) -> CallToolResult:
        job.heartbeat = "still indexing"
        await anyio.sleep(0.5)
        return _done("ok")

    rec = ProgressRecorder()
    async with anyio.create_task_group() as tg:
        job = JobManager(tg).start("t", "test", work, _partial)
        assert await relay(job, rec, wait_s=2, heartbeat_s=0.1)
    beats = [c for c in rec.calls if c[2] == "still indexing"]
    assert len(beats) >= 3
    rec.assert_increasing()


async def test_cancelled_caller_cancels_a_job_nobody_knows_about() -> None:
    cancelled = anyio.Event()

    async def work(job: Job) -> CallToolResult:
        try:
            await anyio.sleep(30)
        finally:
            cancelled.set()
        return _done("never")

    async with anyio.create_task_group() as tg:
        jobs = JobManager(tg)
        job = jobs.start("t", "test", work, _partial)
        with anyio.move_on_after(0.2):
            await jobs.run(job, ProgressRecorder(), wait_s=10)
        with anyio.fail_after(2):
            await cancelled.wait()
            await job.done.wait()
    assert job.status == "cancelled"
    with pytest.raises(ToolError, match="cancelled"):
        job.outcome()


async def test_cancelled_wait_keeps_a_handed_out_job_running() -> None:
    async def work(job: Job) -> CallToolResult:
        await anyio.sleep(0.6)
        return _done("finished")

    async with anyio.create_task_group() as tg:
        jobs = JobManager(tg)
        job = jobs.start("t", "test", work, _partial)
        await jobs.run(job, ProgressRecorder(), wait_s=0.05)
        with anyio.move_on_after(0.1):
            await jobs.run(job, ProgressRecorder(), wait_s=10)
        with anyio.fail_after(3):
            await job.done.wait()
    assert job.status == "completed"


async def test_failures_surface_as_tool_errors() -> None:
    async def boom(job: Job) -> CallToolResult:
        raise ToolError("Upload failed: disk on fire (HTTP 500). Retry.")

    async def crash(job: Job) -> CallToolResult:
        raise RuntimeError("secret internals")

    async with anyio.create_task_group() as tg:
        jobs = JobManager(tg)
        with pytest.raises(ToolError, match="disk on fire"):
            await jobs.run(jobs.start("t", "upload", boom, _partial), ProgressRecorder(), wait_s=2)
        with pytest.raises(ToolError) as err:
            await jobs.run(jobs.start("t", "crashy", crash, _partial), ProgressRecorder(), wait_s=2)
    assert "secret internals" not in str(err.value) and "RuntimeError" in str(err.value)


async def test_one_principal_churning_jobs_does_not_push_out_anothers_results() -> None:
    caller = ["p_b"]

    async def quick(job: Job) -> CallToolResult:
        return _done(f"result of {job.owner}")

    async with anyio.create_task_group() as tg:
        jobs = JobManager(tg, max_jobs=4, max_jobs_per_owner=4, principal=lambda: caller[0])
        kept = jobs.start("t", "b's job", quick, _partial)
        kept.handed_out = True
        await kept.done.wait()
        caller[0] = "p_a"
        for _ in range(20):
            job = jobs.start("t", "a's job", quick, _partial)
            job.handed_out = True
            await job.done.wait()
        # A only ever pushes out its own finished jobs; B still collects its result.
        assert jobs.get(kept.id) is None
        caller[0] = "p_b"
        assert jobs.get(kept.id) is kept and kept.outcome().content == _done("result of p_b").content


async def test_a_job_past_its_lifetime_expires_and_says_how_to_check_upstream() -> None:
    async def stuck(job: Job) -> CallToolResult:
        job.watching = 'wait_for_task(id="ia_1", index_id="idx_1")'
        await anyio.sleep(30)
        return _done("never")

    async with anyio.create_task_group() as tg:
        jobs = JobManager(tg, lifetime_s=0.3)
        job = jobs.start("t", "indexing", stuck, _partial)
        with anyio.fail_after(5), pytest.raises(ToolError) as err:
            await jobs.run(job, ProgressRecorder(), wait_s=10)
    assert job.status == "expired"
    assert "expired" in str(err.value) and 'wait_for_task(id="ia_1", index_id="idx_1")' in str(err.value)
