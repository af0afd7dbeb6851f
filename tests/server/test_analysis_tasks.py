"""start_analysis_task through a real MCP client on the embedded sandbox: time-based segments from the
video's own evidence, the job handle wait_for_task follows, the reuse of a repeated call, batches with
an item failing alone, and bad input refused before anything is created."""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from tests.server.conftest import MODES, ProgressRecorder, World, call_ok, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

PRICES = {
    "id": "prices",
    "description": "apples price per pound",
    "fields": [
        {"name": "item", "type": "string", "description": "fresh apples from the orchard"},
        {"name": "said_at", "type": "timestamp", "format": "seconds", "description": "two dollars"},
        {"name": "mentions_dollars", "type": "boolean", "description": "two dollars per pound"},
    ],
}
QUOTES = {
    "id": "quotes",
    "description": "chapters of the video",
    "fields": [
        {
            "name": "lines",
            "type": "time_array",
            "description": "each line said",
            "items": {
                "type": "object",
                "fields": [{"name": "quote", "type": "string", "description": "the words said"}],
            },
        }
    ],
}


def _tasks(world: World) -> list[dict[str, Any]]:
    with httpx2.Client(base_url=world.sandbox.base_url, headers={"x-api-key": world.sandbox.api_key}) as c:
        data: list[dict[str, Any]] = c.get("/analyze/tasks", params={"page_limit": 50}).json()["data"]
        return data


async def test_segments_come_from_the_videos_evidence_and_wait_for_task_returns_them(world: World) -> None:
    apples = world.sample.subtitles[1]
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        started = await call_ok(
            c,
            "start_analysis_task",
            {"asset_id": world.asset_id, "segment_definitions": [PRICES], "wait_s": 0},
        )
        first = started.structured_content
        assert first and first["status"] == "in_progress" and first["job_id"]
        assert f'wait_for_task(id="{first["job_id"]}")' in text_of(started)
        progress = ProgressRecorder()
        waited = await call_ok(
            c, "wait_for_task", {"id": first["job_id"], "wait_s": 60}, progress_callback=progress
        )
        done = waited.structured_content
        assert done and done["done"] is True and done["kind"] == "job:analysis_task"
        result = done["result"]
        assert result["status"] == "completed" and result["task_status"] == "ready"
        # The apples scene (6-12 s) is the one whose subtitle matches, with its fields quoted from it.
        assert [(s["definition"], s["start"], s["end"]) for s in result["segments"]] == [
            ("prices", 6.0, 12.0)
        ]
        fields = result["segments"][0]["fields"]
        assert fields["item"] == apples.text and fields["mentions_dollars"] is True, fields
        assert apples.start <= fields["said_at"] <= apples.end
        assert "Offline sandbox" in result["warning"] and "Analysis task" in progress.text
        assert "0:06–0:12 **prices**" in text_of(waited)


async def test_a_repeated_call_reuses_its_task_and_time_arrays_list_events(world: World) -> None:
    args = {
        "asset_id": world.asset_id,
        "model_name": "pegasus1.6",
        "segment_definitions": [QUOTES],
        "wait_s": 60,
    }
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        before = len(_tasks(world))
        one = (await call_ok(c, "start_analysis_task", args)).structured_content
        again = await call_ok(c, "start_analysis_task", args)
        two = again.structured_content
        assert one and two and one["task_id"] == two["task_id"]
        assert one["reused"] is False and two["reused"] is True and "not paid for again" in text_of(again)
        assert len(_tasks(world)) == before + 1
        # One chapter per scene; each lists the lines said inside it as timed events.
        segments = one["segments"]
        assert [(s["start"], s["end"]) for s in segments] == [(0.0, 6.0), (6.0, 12.0), (12.0, 18.0)]
        for segment, cue in zip(segments, world.sample.subtitles, strict=True):
            (event,) = segment["fields"]["lines"]
            assert event == {"start_time": cue.start, "end_time": cue.end, "quote": cue.text}
        # wait_for_task on the TwelveLabs task id gives the same segments as structured data.
        direct = (
            await call_ok(c, "wait_for_task", {"id": one["task_id"], "kind": "analyze_task"})
        ).structured_content
        assert direct and direct["detail"]["segments"] == segments


@pytest.mark.parametrize("mode", MODES)
async def test_a_batch_reports_each_video_and_one_failing_item_does_not_fail_it(
    world: World, mode: str
) -> None:
    missing = "0" * 24
    async with Client(build_server(world.settings(toolsets="all")), mode=mode) as c:
        result = await call_ok(
            c,
            "start_analysis_task",
            {"asset_ids": [world.asset_id, missing], "prompt": "apples price", "wait_s": 60},
        )
    data = result.structured_content
    assert data and data["status"] == "completed" and data["batch_id"]
    ok, bad = data["items"]
    assert ok["asset_id"] == world.asset_id and ok["status"] == "ready" and "two dollars" in ok["text"]
    assert (
        bad["asset_id"] == missing and bad["status"] == "failed" and bad["error_code"] == "asset_unavailable"
    )
    assert data["task_status"] == "1 of 2 ready" and "asset_unavailable" in text_of(result)
    # The batch id alone is enough for wait_for_task (kind auto), as the job's watch hint spells it.
    async with Client(build_server(world.settings())) as c:
        batch = (await call_ok(c, "wait_for_task", {"id": data["batch_id"]})).structured_content
    assert (
        batch and batch["kind"] == "analyze_batch" and batch["done"] and batch["detail"]["failed_items"] == 1
    )


async def test_bad_input_is_refused_with_what_to_do_and_creates_nothing(world: World) -> None:
    time_array_on_15 = {
        "asset_id": world.asset_id,
        "model_name": "pegasus1.5",
        "segment_definitions": [QUOTES],
    }
    reserved = {**PRICES, "fields": [{"name": "start_time", "type": "number", "description": "x"}]}
    cases: list[tuple[dict[str, Any], str]] = [
        (time_array_on_15, "time_array fields need model_name pegasus1.6"),
        ({"asset_id": world.asset_id, "segment_definitions": [reserved]}, "reserved"),
        ({"asset_id": world.asset_id, "prompt": "x", "max_tokens": 100}, "512-98,304"),
        ({"asset_id": world.asset_id, "prompt": "x", "max_tokens": "unlimited"}, "unlimited"),
        ({"asset_id": world.asset_id, "prompt": "x", "segment_definitions": [PRICES]}, "not both"),
        ({"asset_ids": [world.asset_id, world.asset_id], "prompt": "x"}, "twice"),
        ({"asset_ids": [world.asset_id, "a2"], "prompt": "x", "model_name": "pegasus1.6"}, "pegasus1.5 only"),
        ({"asset_ids": [world.asset_id, "a2"], "segment_definitions": [QUOTES]}, "pegasus1.6"),
        ({"prompt": "x"}, "exactly one of asset_id, url or video_id"),
        (
            {"asset_ids": [world.asset_id, "a2"], "prompt": "x", "max_tokens": "unlimited"},
            "not available for batches",
        ),
    ]
    before = _tasks(world)
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        for args, expected in cases:
            result = await c.call_tool("start_analysis_task", args)
            assert result.is_error, args
            assert expected in text_of(result), (args, text_of(result))
        image_on_15 = await c.call_tool(
            "analyze_video", {"prompt": "x", "image": [{"name": "a", "url": "https://example.com/a.png"}]}
        )
        assert image_on_15.is_error and 'model_name="pegasus1.6"' in text_of(image_on_15)
    assert _tasks(world) == before


async def test_analyze_video_reads_an_image_asset_with_pegasus_16(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        result = await call_ok(
            c,
            "analyze_video",
            {
                "prompt": "Compare <@left> with <@right>",
                "model_name": "pegasus1.6",
                "image": [
                    {"name": "left", "url": "https://example.com/a.png"},
                    {"name": "right", "url": "https://example.com/b.png"},
                ],
            },
        )
        data = result.structured_content
        assert data and data["video"] == {"images": "left, right"}
        assert "<@left>: not read offline" in data["text"] and "cannot see pictures" in data["text"]
        partial = await c.call_tool(
            "analyze_video",
            {
                "prompt": "Describe <@left>",
                "model_name": "pegasus1.6",
                "image": [
                    {"name": "left", "url": "https://example.com/a.png"},
                    {"name": "right", "url": "https://example.com/b.png"},
                ],
            },
        )
        assert partial.is_error and "every image" in text_of(partial)


async def test_summarize_video_takes_a_custom_prompt_and_keeps_the_timed_format(world: World) -> None:
    async with Client(build_server(world.settings())) as c:
        result = await call_ok(
            c,
            "summarize_video",
            {"asset_id": world.asset_id, "kind": "highlights", "prompt": "apples price per pound"},
        )
    data = result.structured_content
    assert data and data["kind"] == "highlights"
    (highlight,) = [h for h in data["parsed"]["highlights"] if "apples" in h["highlight"].lower()]
    assert highlight["start_sec"] >= 6.0 and highlight["end_sec"] <= 12.0


@pytest.mark.parametrize("kind", ["task", "batch"])
async def test_another_replica_follows_the_job_to_its_segments(world: World, kind: str) -> None:
    """With shared state keys the job id carries the task (or batch) id, so a server that never saw the
    job follows it upstream and ends with the same result."""
    settings = world.settings(toolsets="all").model_copy(update={"state_keys": (SecretStr("k" * 40),)})
    video = {"asset_id": world.asset_id} if kind == "task" else {"asset_ids": [world.asset_id, "0" * 24]}
    args = {**video, "segment_definitions": [PRICES], "wait_s": 0, "model_name": "pegasus1.5"}
    async with Client(build_server(settings)) as first:
        started = (await call_ok(first, "start_analysis_task", args)).structured_content
    assert started and started["job_id"].startswith(f"job_t:{kind}:")
    async with Client(build_server(settings)) as second:
        done = (
            await call_ok(second, "wait_for_task", {"id": started["job_id"], "wait_s": 60})
        ).structured_content
    assert done and done["done"] and done["kind"] == "job:analysis_task"
    result = done["result"]
    segments = result["segments"] if kind == "task" else result["items"][0]["segments"]
    assert [(s["definition"], s["start"], s["end"]) for s in segments] == [("prices", 6.0, 12.0)]
    if kind == "batch":
        assert [i["status"] for i in result["items"]] == ["ready", "failed"]


async def _until(check: Any, what: str, within_s: float) -> Any:
    """Poll the sandbox off the event loop (the server under test runs on it) until `check()` is truthy."""
    for _ in range(int(within_s / 0.05)):
        if value := await anyio.to_thread.run_sync(check):
            return value
        await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stalled_url(world: World) -> Iterator[tuple[str, threading.Event]]:
    """A loopback URL of the sample video that answers only once the event is set (at most 30 s), so a
    task on it waits upstream while its video is fetched."""
    release = threading.Event()
    video = world.sample.path

    class Stalling(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(30)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Stalling, directory=str(video.parent))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{video.name}", release
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()


def _task_on(world: World, url: str) -> dict[str, Any] | None:
    return next((t for t in _tasks(world) if t.get("video_source", {}).get("url") == url), None)


async def test_a_cancelled_call_cancels_its_task_upstream(
    world: World, stalled_url: tuple[str, threading.Event]
) -> None:
    """The caller went away before it learned the job id, so nobody can collect the work: the job ends,
    and the task it started is cancelled on TwelveLabs too, so it is not billed."""
    url, _ = stalled_url
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        async with anyio.create_task_group() as tg:
            tg.start_soon(c.call_tool, "start_analysis_task", {"url": url, "prompt": "apples", "wait_s": 60})
            await _until(lambda: _task_on(world, url), "the task upstream", 20)
            tg.cancel_scope.cancel()
        task = await _until(
            lambda: (t := _task_on(world, url)) and t["status"] == "canceled" and t, "the cancellation", 15
        )
    assert task["error"]["code"] == "user_canceled"


async def test_a_job_handed_out_keeps_its_task_when_the_server_stops(
    world: World, stalled_url: tuple[str, threading.Event]
) -> None:
    """Once its id was handed out, another replica may follow the job: stopping this server must not
    cancel the task upstream."""
    url, release = stalled_url
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        args = {"url": url, "prompt": "apples", "wait_s": 1}
        started = (await call_ok(c, "start_analysis_task", args)).structured_content
    assert started and started["status"] == "in_progress" and started["task_id"]
    # An identical call reuses that task; cancelling it must not cancel the task the first call started.
    async with Client(build_server(world.settings(toolsets="all"))) as c, anyio.create_task_group() as tg:
        tg.start_soon(c.call_tool, "start_analysis_task", {**args, "wait_s": 60})
        await anyio.sleep(1.5)
        tg.cancel_scope.cancel()
    await anyio.sleep(0.5)
    still = await anyio.to_thread.run_sync(lambda: _task_on(world, url))
    assert still and still["status"] != "canceled", still
    release.set()
    task = await _until(
        lambda: (t := _task_on(world, url)) and t["status"] in ("ready", "failed", "canceled") and t,
        "the task to end",
        30,
    )
    assert task["task_id"] == started["task_id"] and task["status"] == "ready"


def _next_calls(text: str, tool: str) -> list[str]:
    """The `tool(...)` calls a result suggests, as printed."""
    return re.findall(rf"{tool}\([^)]*\)", text)


def _args_of(printed: str) -> dict[str, Any]:
    """The arguments of a printed call, `tool(a="x", n=2)`, as the caller sends them back."""
    inner = printed[printed.index("(") + 1 : -1]
    return {k: json.loads(v) for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', inner)}


async def test_a_running_task_is_listed_cancelled_twice_and_deleted_following_each_next_step(
    world: World, stalled_url: tuple[str, threading.Event]
) -> None:
    """The whole life of a task an agent no longer wants: it is listed while it runs, deleting it is refused
    until it is cancelled, cancelling it again says it already is and changes nothing, and once deleted it
    is gone. Each step is the one the result before it printed."""
    url, release = stalled_url
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        started = await call_ok(c, "start_analysis_task", {"url": url, "prompt": "apples", "wait_s": 0})
        job_id = started.structured_content and started.structured_content["job_id"]
        task = await _until(lambda: _task_on(world, url), "the task upstream", 20)
        task_id = task["task_id"]

        listed = await call_ok(c, "list_analysis_tasks", {"status": ["queued", "pending", "processing"]})
        rows = listed.structured_content and listed.structured_content["tasks"]
        assert rows and task_id in [r["task_id"] for r in rows], rows
        row = next(r for r in rows if r["task_id"] == task_id)
        assert row["source"] == url and row["analysis_mode"] == "general" and row["status"] in _LIVE
        assert f"`{task_id}`" in text_of(listed)
        # Filters that exclude it leave it out.
        ready = await call_ok(c, "list_analysis_tasks", {"status": ["ready"], "video_url": url})
        assert ready.structured_content and ready.structured_content["tasks"] == []
        assert "No task matches." in text_of(ready)

        refused = await c.call_tool("delete_analysis_task", {"task_id": task_id})
        assert refused.is_error and "cancel it first" in text_of(refused), text_of(refused)
        assert _task_on(world, url) is not None, "a refused delete removed the task"

        (stop,) = [s for s in _next_calls(text_of(listed), "cancel_analysis_task") if task_id in s]
        cancelled = await call_ok(c, "cancel_analysis_task", _args_of(stop))
        assert cancelled.structured_content == {
            "backend": "sandbox",
            "task_id": task_id,
            "task_status": "canceled",
            "canceled": True,
        }
        again = await call_ok(c, "cancel_analysis_task", {"task_id": task_id})
        assert again.structured_content and again.structured_content["canceled"] is False
        assert f"Nothing to cancel: analysis task {task_id} is already canceled" in text_of(again)
        upstream_task = _task_on(world, url)
        assert upstream_task and upstream_task["error"]["code"] == "user_canceled"
        release.set()

        # The job that started it ends, saying it was canceled.
        ended = await c.call_tool("wait_for_task", {"id": job_id, "wait_s": 20})
        assert "canceled" in text_of(ended), text_of(ended)
        (follow_it,) = _next_calls(text_of(again), "wait_for_task")
        status = await call_ok(c, "wait_for_task", _args_of(follow_it))
        assert status.structured_content and status.structured_content["done"] is True
        assert status.structured_content["status"] == "canceled", status.structured_content

        (delete,) = _next_calls(text_of(again), "delete_analysis_task")
        deleted = await call_ok(c, "delete_analysis_task", _args_of(delete))
        assert deleted.structured_content and deleted.structured_content["deleted"] is True
        assert _task_on(world, url) is None
        repeat = await call_ok(c, "delete_analysis_task", {"task_id": task_id})
        assert repeat.structured_content and repeat.structured_content["deleted"] is False
        assert "(list_analysis_tasks shows what exists)" in text_of(repeat), text_of(repeat)
        assert task_id not in text_of(await call_ok(c, "list_analysis_tasks", {}))


_LIVE = ("queued", "pending", "processing")


async def test_a_finished_batch_is_listed_and_cancelling_it_changes_nothing(world: World) -> None:
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        done = await call_ok(
            c,
            "start_analysis_task",
            {"asset_ids": [world.asset_id, "1" * 24], "prompt": "apples price", "wait_s": 60},
        )
        batch_id = done.structured_content and done.structured_content["batch_id"]
        listed = await call_ok(c, "list_analysis_tasks", {"kind": "batch", "status": ["completed"]})
        rows = listed.structured_content and listed.structured_content["tasks"]
        assert rows and batch_id in [r["batch_id"] for r in rows]
        row = next(r for r in rows if r["batch_id"] == batch_id)
        assert row["items"] == "2 of 2 done (1 ready, 1 failed, 0 canceled)" and "task_id" not in row
        # Its tasks are listed too, each naming its batch.
        tasks = await call_ok(c, "list_analysis_tasks", {"asset_id": world.asset_id, "page_limit": 50})
        assert tasks.structured_content
        assert batch_id in [t.get("batch_id") for t in tasks.structured_content["tasks"]]
        (follow_it,) = _next_calls(text_of(listed), "wait_for_task")
        followed = await call_ok(c, "wait_for_task", _args_of(follow_it))
        assert followed.structured_content and followed.structured_content["done"] is True

        before = _batches(world)
        kept = await call_ok(c, "cancel_analysis_task", {"batch_id": batch_id})
        assert kept.structured_content and kept.structured_content["canceled"] is False
        assert kept.structured_content["task_status"] == "completed"
        assert "Nothing was changed." in text_of(kept) and _batches(world) == before

        (delete,) = _next_calls(text_of(kept), "delete_analysis_task")
        gone = await call_ok(c, "delete_analysis_task", _args_of(delete))
        assert gone.structured_content and gone.structured_content["deleted"] is True
        assert batch_id not in [b["batch_id"] for b in _batches(world)]
        assert batch_id not in [t.get("batch_id") for t in _tasks(world)]


def _batches(world: World) -> list[dict[str, Any]]:
    with httpx2.Client(base_url=world.sandbox.base_url, headers={"x-api-key": world.sandbox.api_key}) as c:
        data: list[dict[str, Any]] = c.get("/analyze/batches", params={"page_limit": 50}).json()["data"]
        return data


async def test_bad_listing_cancel_and_delete_input_is_refused_and_changes_nothing(world: World) -> None:
    unknown = "f" * 24
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("list_analysis_tasks", {"status": ["completed"]}, "not a task status"),
        ("list_analysis_tasks", {"kind": "batch", "status": ["ready"]}, "not a batch status"),
        ("list_analysis_tasks", {"kind": "batch", "asset_id": world.asset_id}, "list their tasks"),
        ("cancel_analysis_task", {}, "Give task_id or batch_id"),
        ("cancel_analysis_task", {"task_id": unknown, "batch_id": unknown}, "Give task_id or batch_id"),
        ("cancel_analysis_task", {"task_id": unknown}, f"There is no analysis task {unknown}"),
        ("cancel_analysis_task", {"batch_id": unknown}, f"There is no analysis batch {unknown}"),
        ("delete_analysis_task", {}, "Give task_id or batch_id"),
    ]
    before = (_tasks(world), _batches(world))
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        for tool, args, expected in cases:
            result = await c.call_tool(tool, args)
            assert result.is_error and expected in text_of(result), (tool, args, text_of(result))
        # The lister an unknown id points to is a call that works.
        missing = text_of(await c.call_tool("cancel_analysis_task", {"batch_id": unknown}))
        (lister,) = _next_calls(missing, "list_analysis_tasks")
        assert (await call_ok(c, "list_analysis_tasks", _args_of(lister))).structured_content
        # Deleting what does not exist is the idempotent success admin deletes give.
        for key in ("task_id", "batch_id"):
            gone = await call_ok(c, "delete_analysis_task", {key: unknown})
            assert gone.structured_content and gone.structured_content["deleted"] is False
        listed_by = text_of(gone)
        (lister,) = _next_calls(listed_by, "list_analysis_tasks")
        assert _args_of(lister) == {"kind": "batch"} and "Nothing was changed." in listed_by
    assert (_tasks(world), _batches(world)) == before
