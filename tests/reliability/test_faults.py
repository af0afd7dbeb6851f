"""Upstream faults through the whole stack (mcp.Client → server → API client → sandbox with fault rules).

Each test runs against its own sandbox on a copy of the seeded data, with exactly the rules it names.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.reliability.conftest import API_KEY, Env, Seed, assert_actionable, faulted
from tests.server.conftest import call_ok, text_of
from tl_mcp.sandbox.config import FaultRule

pytestmark = pytest.mark.anyio

QUESTION = "What do the videos say about apples?"


async def _index_names(c: Client) -> list[str]:
    data = (await call_ok(c, "list_indexes", {"page_limit": 50})).structured_content
    assert data is not None
    return [i["name"] for i in data["indexes"]]


async def test_rate_limited_search_is_retried_after_retry_after(seed: Seed, tmp_path: Path) -> None:
    rule = FaultRule(kind="rate_limit", path="^/search$", methods=("POST",), retry_after_s=1, max_times=1)
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            started = time.monotonic()
            result = await call_ok(c, "search_videos", {"index_id": seed.index_id, "query": "apples"})
            elapsed = time.monotonic() - started
    assert result.structured_content is not None
    assert result.structured_content["moments"], text_of(result)
    # The Retry-After second was honoured (not an immediate hammering retry), and nothing waited long.
    assert 0.9 <= elapsed < 10, elapsed


async def test_503_on_a_get_is_retried_until_it_succeeds(seed: Seed, tmp_path: Path) -> None:
    rule = FaultRule(kind="server_error", status=503, path="/videos$", methods=("GET",), max_times=2)
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            started = time.monotonic()
            result = await call_ok(c, "list_videos", {"index_id": seed.index_id})
            elapsed = time.monotonic() - started
    data = result.structured_content
    assert data is not None and [v["video_id"] for v in data["videos"]] == [seed.video_id]
    assert elapsed < 10, elapsed


@pytest.mark.parametrize("status", [500, 503])
async def test_persistent_5xx_is_an_actionable_error_within_bounded_time(
    seed: Seed, tmp_path: Path, status: int
) -> None:
    rule = FaultRule(kind="server_error", status=status, path="^/indexes$", methods=("GET",))
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            started = time.monotonic()
            result = await c.call_tool("list_indexes", {})
            elapsed = time.monotonic() - started
            # The server is still fine for calls the fault does not touch.
            await call_ok(c, "list_knowledge_stores", {})
    text = assert_actionable("list_indexes", result)
    assert f"HTTP {status}" in text and "internal_error" in text, text
    assert "retry" in text.lower(), text
    assert API_KEY not in text
    assert elapsed < 15, elapsed


async def test_dropped_connection_is_an_error_not_a_hang(seed: Seed, tmp_path: Path) -> None:
    rule = FaultRule(kind="drop", path="^/knowledge-stores$", methods=("GET",))
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            with anyio.fail_after(20):
                result = await c.call_tool("list_knowledge_stores", {})
            await call_ok(c, "list_indexes", {})
    text = assert_actionable("list_knowledge_stores", result)
    assert "connection broke before the answer was complete" in text and "RemoteProtocolError" in text, text
    assert "retry" in text, text


async def test_a_single_dropped_get_is_retried(seed: Seed, tmp_path: Path) -> None:
    """A GET is safe to repeat, so a connection lost mid-answer is retried like a 503."""
    rule = FaultRule(kind="drop", path="^/knowledge-stores$", methods=("GET",), max_times=1)
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            with anyio.fail_after(20):
                result = await call_ok(c, "list_knowledge_stores", {})
    data = result.structured_content
    assert data is not None
    assert seed.knowledge_store_id in [s["knowledge_store_id"] for s in data["knowledge_stores"]]


async def _clean_answer(env: Env) -> str:
    async with Client(env.server()) as c:
        result = await call_ok(
            c, "create_response", {"knowledge_store_id": env.seed.knowledge_store_id, "input": QUESTION}
        )
    assert result.structured_content is not None
    return str(result.structured_content["text"])


def _collector(messages: list[str]) -> Any:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and not message.startswith("[step]"):
            messages.append(message)

    return on_progress


async def test_truncated_first_turn_keeps_partial_text_and_says_how_to_go_on(
    seed: Seed, tmp_path: Path
) -> None:
    # Enough events for the start (with the session id) and some text deltas, then the body just ends.
    rule = FaultRule(
        kind="truncate_stream", path="^/responses$", methods=("POST",), after_chunks=6, max_times=1
    )
    args = {"knowledge_store_id": seed.knowledge_store_id, "input": QUESTION}
    with faulted(seed, tmp_path, rule) as env:
        messages: list[str] = []
        async with Client(env.server()) as c:
            with anyio.fail_after(20):
                result = await c.call_tool("create_response", args, progress_callback=_collector(messages))
            text = assert_actionable("create_response", result)
            assert "cut off" in text and "ended before the response completed" in text, text
            partial = "".join(messages)
            assert partial and f"Partial answer before the failure:\n{partial}" in text, (partial, text)
            session = text.split("Session ", 1)[1].split()[0]
            assert session.startswith("sess_"), text
            assert f'create_response(knowledge_store_id="{seed.knowledge_store_id}"' in text, text
            assert API_KEY not in text
            # The advice works: asking again gives the whole answer.
            again = await call_ok(c, "create_response", args)
            assert again.structured_content is not None
            assert again.structured_content["text"].startswith(partial)
            # Continuing the interrupted session either works or says, actionably, to start over.
            follow = await c.call_tool("continue_session", {"session_id": session, "input": "And the ocean?"})
            if follow.is_error:
                assert "does not exist upstream" in text_of(follow) and "create_response" in text_of(follow)


async def test_truncated_follow_up_points_back_to_the_existing_session(seed: Seed, tmp_path: Path) -> None:
    # Every second /responses request is cut: the first turn completes, the follow-up does not.
    rule = FaultRule(
        kind="truncate_stream", path="^/responses$", methods=("POST",), after_chunks=4, every_nth=2
    )
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            first = await call_ok(
                c, "create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": QUESTION}
            )
            assert first.structured_content is not None
            session = first.structured_content["session_id"]
            follow_args = {"session_id": session, "input": "What about the ocean?"}
            with anyio.fail_after(20):
                cut = await c.call_tool("continue_session", follow_args)
            text = assert_actionable("continue_session", cut)
            assert f'continue_session(session_id="{session}"' in text, text
            retried = await call_ok(c, "continue_session", follow_args)
    assert retried.structured_content is not None and retried.structured_content["session_id"] == session


@pytest.mark.parametrize(
    ("broken", "intermediate", "lost_text"),
    [
        # The first item's `output_item.added`: losing it once made Jockey's commentary stream as answer
        # text, so the progress no longer added up to the result.
        (2, True, False),
        (5, True, False),
        # A text delta: the live text misses a piece, and a progress note says the result has it all.
        (6, False, True),
    ],
)
async def test_malformed_sse_frame_is_skipped_and_the_answer_completes(
    seed: Seed, tmp_path: Path, broken: int, intermediate: bool, lost_text: bool
) -> None:
    rule = FaultRule(kind="malformed_json", path="^/responses$", methods=("POST",), after_chunks=broken)
    with faulted(seed, tmp_path) as clean:
        expected = await _clean_answer(clean)
    args = {
        "knowledge_store_id": seed.knowledge_store_id,
        "input": QUESTION,
        "include_intermediate_outputs": intermediate,
    }
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    with faulted(seed, tmp_path / "faulty", rule) as env:
        async with Client(env.server()) as c:
            with anyio.fail_after(20):
                result = await call_ok(c, "create_response", args, progress_callback=on_progress)
    data = result.structured_content
    assert data is not None and data["status"] == "completed"
    assert data["text"] == expected
    streamed = "".join(m for m in messages if not m.startswith("["))
    notes = [m for m in messages if m.startswith("[note]")]
    if lost_text:
        assert streamed != expected and len(notes) == 1 and "complete answer" in notes[0]
    else:
        assert streamed == expected and not notes


async def test_slow_jockey_returns_a_job_handle_then_wait_for_task_finishes(
    seed: Seed, tmp_path: Path
) -> None:
    rule = FaultRule(kind="latency", path="^/responses$", methods=("POST",), latency_s=2.5)
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            started = time.monotonic()
            first = await call_ok(
                c,
                "create_response",
                {"knowledge_store_id": seed.knowledge_store_id, "input": QUESTION, "wait_s": 0.5},
            )
            assert time.monotonic() - started < 2.0
            data = first.structured_content
            assert data is not None and data["status"] == "in_progress" and data["job_id"], data
            assert "wait_for_task" in text_of(first)
            done = await call_ok(c, "wait_for_task", {"id": data["job_id"], "wait_s": 20})
    waited = done.structured_content
    assert waited is not None and waited["done"] and waited["status"] == "completed", waited
    assert waited["result"]["status"] == "completed" and waited["result"]["text"]


@pytest.mark.parametrize(
    ("tool", "args", "path"),
    [
        ("create_index", {"name": "flaky-index"}, "^/indexes$"),
        ("create_knowledge_store", {"name": "flaky-store"}, "^/knowledge-stores$"),
    ],
)
async def test_non_idempotent_create_hit_by_503_is_not_retried(
    seed: Seed, tmp_path: Path, tool: str, args: dict[str, Any], path: str
) -> None:
    rule = FaultRule(kind="server_error", status=503, path=path, methods=("POST",), max_times=1)
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            result = await c.call_tool(tool, args)
            text = assert_actionable(tool, result)
            assert "HTTP 503" in text, text
            assert "not retried" in text and "safe to call again" in text, text
            # Not retried: had the client repeated the POST, the (one-shot) fault would have let it through.
            if tool == "create_index":
                assert "flaky-index" not in await _index_names(c)
            else:
                stores = (await call_ok(c, "list_knowledge_stores", {"page_limit": 50})).structured_content
                assert stores is not None
                assert "flaky-store" not in [s["name"] for s in stores["knowledge_stores"]]
            # ... and the advice holds: calling again creates exactly one.
            await call_ok(c, tool, args)
            if tool == "create_index":
                assert (await _index_names(c)).count("flaky-index") == 1


async def test_upload_hit_by_503_is_not_retried_and_leaves_no_asset(seed: Seed, tmp_path: Path) -> None:
    rule = FaultRule(kind="server_error", status=503, path="^/assets$", methods=("POST",), max_times=1)
    with faulted(seed, tmp_path, rule) as env:
        before = len(env.engine.db.all("SELECT id FROM assets"))
        async with Client(env.server()) as c:
            result = await c.call_tool("upload_asset", {"path": str(seed.media / "clip.mp4"), "wait_s": 20})
        text = assert_actionable("upload_asset", result)
        assert "HTTP 503" in text and "not retried" in text, text
        assert len(env.engine.db.all("SELECT id FROM assets")) == before


async def test_rate_limited_text_embedding_is_retried(seed: Seed, tmp_path: Path) -> None:
    rule = FaultRule(kind="rate_limit", path="^/embed$", methods=("POST",), retry_after_s=1, max_times=1)
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            result = await call_ok(c, "create_embedding", {"text": "fresh apples"})
    data = result.structured_content
    assert data is not None and data["embeddings"] and data["embeddings"][0]["dims"] > 0


async def test_wait_for_task_rides_out_503s_while_polling(seed: Seed, tmp_path: Path) -> None:
    rule = FaultRule(kind="server_error", status=503, path="/indexed-assets/", methods=("GET",), max_times=2)
    args = {"id": seed.video_id, "kind": "indexed_asset", "index_id": seed.index_id, "wait_s": 5}
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            result = await call_ok(c, "wait_for_task", args)
    data = result.structured_content
    assert data is not None and data["done"] and data["status"] == "ready", data


async def test_truncated_analysis_stream_keeps_partial_text_and_says_call_again(
    seed: Seed, tmp_path: Path
) -> None:
    rule = FaultRule(
        kind="truncate_stream", path="^/analyze$", methods=("POST",), after_chunks=2, max_times=1
    )
    args = {"asset_id": seed.asset_id, "prompt": "What is said about apples?", "wait_s": 20}
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            with anyio.fail_after(30):
                cut = await c.call_tool("analyze_video", args)
            text = assert_actionable("analyze_video", cut)
            assert "cut off" in text and "call again" in text, text
            assert "Partial text:" in text, text
            again = await call_ok(c, "analyze_video", args)
    assert again.structured_content is not None and again.structured_content["text"]


async def test_malformed_analysis_line_is_skipped(seed: Seed, tmp_path: Path) -> None:
    rule = FaultRule(kind="malformed_json", path="^/analyze$", methods=("POST",), after_chunks=1)
    args = {"asset_id": seed.asset_id, "prompt": "What is said about apples?", "wait_s": 20}
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            with anyio.fail_after(30):
                result = await call_ok(c, "analyze_video", args)
    data = result.structured_content
    assert data is not None and data["status"] == "completed" and data["text"]


@pytest.mark.parametrize(
    ("rule", "expect"),
    [
        (FaultRule(kind="drop", path="^/responses$", max_times=1), "broke before it was complete"),
        (FaultRule(kind="server_error", status=503, path="^/responses$", max_times=1), "HTTP 503"),
        (FaultRule(kind="rate_limit", path="^/responses$", retry_after_s=2, max_times=1), "Retry after 2 s"),
        (FaultRule(kind="truncate_stream", path="^/responses$", after_chunks=0, max_times=1), "cut off"),
        (FaultRule(kind="malformed_json", path="^/responses$", after_chunks=0, max_times=1), None),
    ],
    ids=["drop", "503", "429", "empty-stream", "broken-first-event"],
)
async def test_every_fault_on_a_jockey_turn_ends_promptly_and_the_next_turn_works(
    seed: Seed, tmp_path: Path, rule: FaultRule, expect: str | None
) -> None:
    args = {"knowledge_store_id": seed.knowledge_store_id, "input": QUESTION}
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            with anyio.fail_after(20):
                first = await c.call_tool("create_response", args)
            if expect is None:
                assert not first.is_error, text_of(first)
            else:
                text = assert_actionable("create_response", first)
                assert expect in text, text
                assert API_KEY not in text
            again = await call_ok(c, "create_response", args)
    assert again.structured_content is not None and again.structured_content["status"] == "completed"


FAMILY_CALLS: list[tuple[str, str, str, str]] = [
    # (tool, upstream path, method, arguments as JSON with {placeholders})
    ("search_videos", "^/search$", "POST", '{"index_id": "{index_id}", "query": "apples"}'),
    ("list_videos", "/indexed-assets$", "GET", '{"index_id": "{index_id}"}'),
    ("create_embedding", "^/embed$", "POST", '{"text": "apples"}'),
    ("analyze_video", "^/analyze$", "POST", '{"asset_id": "{asset_id}", "prompt": "apples?", "wait_s": 20}'),
    ("upload_asset", "^/assets$", "POST", '{"path": "{clip}"}'),
    ("list_knowledge_store_items", "/items$", "GET", '{"knowledge_store_id": "{ks}"}'),
]
FAULT_KINDS = {
    "drop": {"kind": "drop"},
    "503": {"kind": "server_error", "status": 503},
    "malformed": {"kind": "malformed_json", "after_chunks": 0},
}


@pytest.mark.parametrize("fault", sorted(FAULT_KINDS))
@pytest.mark.parametrize(
    ("tool", "path", "method", "raw_args"), FAMILY_CALLS, ids=[c[0] for c in FAMILY_CALLS]
)
async def test_one_fault_per_tool_family_never_crashes_hangs_or_sticks(
    seed: Seed, tmp_path: Path, tool: str, path: str, method: str, raw_args: str, fault: str
) -> None:
    """One fault on the tool's upstream call: a prompt result or actionable error, then a clean retry."""
    values = {
        "{index_id}": seed.index_id,
        "{asset_id}": seed.asset_id,
        "{ks}": seed.knowledge_store_id,
        "{clip}": str(seed.media / "clip.mp4"),
    }
    for key, value in values.items():
        raw_args = raw_args.replace(key, value)
    args = json.loads(raw_args)
    rule = FaultRule(path=path, methods=(method,), max_times=1, **FAULT_KINDS[fault])
    with faulted(seed, tmp_path, rule) as env:
        async with Client(env.server()) as c:
            with anyio.fail_after(20):
                first = await c.call_tool(tool, args)
            if first.is_error:
                text = assert_actionable(tool, first)
                assert API_KEY not in text
                if method == "GET" or tool in ("search_videos", "create_embedding"):
                    # Safe to repeat, so only a fault that is not retryable may surface.
                    assert fault == "malformed", text
            with anyio.fail_after(20):
                await call_ok(c, tool, args)


async def test_a_cut_off_turn_behind_a_job_handle_reports_the_same_way(seed: Seed, tmp_path: Path) -> None:
    slow = FaultRule(kind="latency", path="^/responses$", methods=("POST",), latency_s=1.5, max_times=1)
    cut = FaultRule(
        kind="truncate_stream", path="^/responses$", methods=("POST",), after_chunks=6, max_times=1
    )
    args = {"knowledge_store_id": seed.knowledge_store_id, "input": QUESTION, "wait_s": 0.3}
    with faulted(seed, tmp_path, slow, cut) as env:
        async with Client(env.server()) as c:
            first = await call_ok(c, "create_response", args)
            data = first.structured_content
            assert data is not None and data["status"] == "in_progress", data
            with anyio.fail_after(20):
                waited = await c.call_tool("wait_for_task", {"id": data["job_id"], "wait_s": 15})
    text = assert_actionable("wait_for_task", waited)
    assert "cut off" in text and "Partial answer before the failure" in text, text
    assert "Session sess_" in text and "create_response(" in text, text
