"""Every next step a tool prints is a call that works when an agent follows it to the letter.

The hints are parsed from the results' "## Next steps" sections (the form `tool(arg="value", n=2, q=…)`),
the `…` placeholders are filled the way an agent would, and each call is made through the SDK client.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from tests.server.conftest import MODES, World, call_ok, text_of
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

_CALL = re.compile(r"\b([a-z_]+)\(")
_ARG = re.compile(r"\s*([a-z_]+)=")


def next_steps(result: CallToolResult) -> list[str]:
    text = text_of(result)
    if "## Next steps" not in text:
        return []
    section = text.split("## Next steps", 1)[1].split("\n## ", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def parse_calls(hint: str) -> list[tuple[str, dict[str, Any]]]:
    """The `tool(k=v, …)` calls in a hint; a value is JSON, or `…` (None here) for the caller to fill."""
    decoder = json.JSONDecoder()
    calls = []
    for match in _CALL.finditer(hint):
        pos, args = match.end(), {}
        while hint[pos] != ")":
            arg = _ARG.match(hint, pos)
            assert arg, f"unparsable call in hint: {hint!r}"
            pos = arg.end()
            if hint.startswith("…", pos):
                value, pos = None, pos + 1
            else:
                value, pos = decoder.raw_decode(hint, pos)
            args[arg.group(1)] = value
            if hint.startswith(", ", pos):
                pos += 2
        calls.append((match.group(1), args))
    return calls


def fill(tool: str, args: dict[str, Any], video: Path) -> dict[str, Any]:
    """What an agent puts where a hint says `…`."""
    answers = {
        "query": "fresh apples",
        "input": "What does the video say about apples?",
        "prompt": "What is shown about apples?",
        "path": str(video),
        "user_metadata": {"reviewed": True},
    }
    for key, value in args.items():
        if value is None:
            assert key in answers, f"{tool}: no answer for placeholder {key}"
            args[key] = answers[key]
    return args


async def follow(
    c: Client, result: CallToolResult, video: Path, seen: set[str], depth: int = 2
) -> list[tuple[str, dict[str, Any]]]:
    """Make every call the result's next steps suggest (and theirs, `depth` levels down)."""
    followed = []
    for hint in next_steps(result):
        calls = parse_calls(hint)
        assert calls, f"a next step names no call to make: {hint!r}"
        for tool, args in calls:
            args = fill(tool, args, video)
            key = json.dumps([tool, args], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            outcome = await c.call_tool(tool, args)
            assert not outcome.is_error, f"following {hint!r} failed: {text_of(outcome)}"
            followed.append((tool, args))
            if depth > 1:
                followed += await follow(c, outcome, video, seen, depth - 1)
    return followed


@pytest.mark.parametrize("mode", MODES)
async def test_every_printed_next_step_works(world: World, mode: str) -> None:
    w = world
    video = w.sample.path
    at = {"index_id": w.index_id, "video_id": w.video_id}
    starts: list[tuple[str, dict[str, Any]]] = [
        # First the uploads: a second video in the index and the store gives both searches a next page.
        ("upload_asset", {"path": str(video), "index_id": w.index_id}),
        ("upload_asset", {"path": str(video), "knowledge_store_id": w.knowledge_store_id, "wait_s": 0}),
        ("create_index", {"name": f"steps-{mode}"}),
        ("create_knowledge_store", {"name": f"steps-{mode}"}),
        ("list_indexes", {"page_limit": 1}),
        ("list_videos", {"index_id": w.index_id}),
        ("list_assets", {"page_limit": 1}),
        ("update_metadata", {**at, "user_metadata": {"team": "red"}}),
        (
            "search_videos",
            {"query": "apples", "index_id": w.index_id, "limit": 1, "include_user_metadata": True},
        ),
        ("get_video", {"index_id": w.index_id, "video_id": w.video_id}),
        ("list_knowledge_stores", {"page_limit": 1}),
        ("list_knowledge_store_items", {"knowledge_store_id": w.knowledge_store_id}),
        ("add_to_knowledge_store", {"knowledge_store_id": w.knowledge_store_id, "asset_id": w.asset_id}),
        ("create_response", {"knowledge_store_id": w.knowledge_store_id, "input": "Apples?"}),
        ("create_response", {"knowledge_store_id": w.knowledge_store_id, "input": "Ocean?", "wait_s": 0}),
        ("create_embedding", {"text": "fresh apples"}),
        ("create_embedding", {"video_asset_id": w.asset_id, "wait_s": 0}),
        (
            "create_embedding",
            {"video_asset_id": w.asset_id, "clip_length": 4, "options": ["visual", "audio"], "fused": True},
        ),
        ("create_embedding", {"video_id": w.video_id, "index_id": w.index_id, "options": ["audio"]}),
        ("analyze_video", {"asset_id": w.asset_id, "prompt": "Apples?", "wait_s": 0}),
        ("wait_for_task", {"id": w.video_id, "index_id": w.index_id, "wait_s": 0}),
        ("search_videos", {"query": "fresh apples", "index_id": w.index_id, "limit": 1}),
        ("search_videos", {"query": "apples", "knowledge_store_id": w.knowledge_store_id, "limit": 1}),
        (
            "bulk_ingest",
            {
                "folder": str(w.media),
                "include": ["clip.mp4"],
                "index_id": w.index_id,
                "knowledge_store_id": w.knowledge_store_id,
                "wait_s": 0,
            },
        ),
    ]
    async with Client(build_server(w.settings()), mode=mode) as c:
        seen: set[str] = set()
        hinted: set[str] = set()
        for tool, args in starts:
            result = await call_ok(c, tool, args)
            if next_steps(result):
                hinted.add(tool)
            followed = await follow(c, result, video, seen)
            hinted.update(name for name, _ in followed)
    # The paging hints are in the mix: a store's next page needs its query, an index's does not.
    pages = [json.loads(k)[1] for k in seen if json.loads(k)[0] == "search_videos" and "page_token" in k]
    assert any("knowledge_store_id" in p and p.get("query") for p in pages), pages
    assert any("index_id" in p for p in pages), pages
    assert {"list_indexes", "create_response", "upload_asset", "wait_for_task", "analyze_video"} <= hinted
    assert "bulk_ingest" in hinted
    assert {"list_assets", "update_metadata"} <= hinted
    # Following an index search's next page keeps the metadata it asked for.
    assert any(p.get("include_user_metadata") for p in pages), pages
