"""The TypeScript MCP SDK (`@modelcontextprotocol/sdk`, pinned in tests/clients/ts), a client not ours.

`tests/clients/ts/client.mjs` runs a plan of SDK calls and prints what it saw as JSON. These tests run
whenever `node` and `npm` are on PATH: the first run does `npm ci` (a few seconds), later runs reuse
node_modules while the lockfile is unchanged.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.types import CallToolResult
from newcomer_support import CLIENTS, FAST_SANDBOX, ROOT, HttpServer, clean_env, npm_ci

from tests.server.test_analysis_tasks import PRICES
from tests.server.test_bulk import tiny_video
from tests.server.test_next_steps import next_steps, parse_calls
from tl_mcp.samples import SampleInfo, make_sample_image
from tl_mcp.server.prompts import PERSONAS
from tl_mcp.server.registry import all_tools
from tl_mcp.toolsets import DEFAULT_TOOLSETS

TS = CLIENTS / "ts"
DEFAULT_TOOLS = sorted(s.name for s in all_tools() if s.toolset in DEFAULT_TOOLSETS)
SUPPORTED = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm"
    ),
]

Plan = dict[str, Any]
#: What landed with bulk ingest, metadata edits, store depth, entities and analysis tasks: each must
#: answer a TS client.
NEW_TOOLS = {s.name for s in all_tools() if s.toolset in ("stores", "entities")} | {
    "bulk_ingest",
    "wait_for_task",
    "list_assets",
    "update_metadata",
    "search_videos",
    "create_embedding",
    "create_response",
    "continue_session",
    "delete_entity",
    "delete_entity_collection",
    "start_analysis_task",
}


@pytest.fixture(scope="session")
def ts_client() -> Callable[[Plan], dict[str, Any]]:
    npm_ci(TS)
    node = shutil.which("node")
    assert node is not None

    def run(plan: Plan) -> dict[str, Any]:
        proc = subprocess.run(
            [node, "client.mjs", json.dumps(plan)],
            cwd=TS,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    return run


def step_error(step: dict[str, Any]) -> dict[str, Any]:
    assert "error" in step, f"expected an error, got {json.dumps(step)[:500]}"
    error: dict[str, Any] = step["error"]
    return error


def test_ts_client_over_stdio_logging_and_unknown_tool(
    ts_client: Callable[[Plan], dict[str, Any]], tmp_path: Path
) -> None:
    server_env = clean_env({**FAST_SANDBOX, "TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox")})
    seen = ts_client(
        {
            "stdio": {
                "command": sys.executable,
                "args": ["-m", "tl_mcp.cli", "serve", "--log-level", "DEBUG"],
                "env": server_env,
                "cwd": str(ROOT),
            },
            "steps": [
                {"op": "listTools"},
                {"op": "setLoggingLevel", "level": "debug"},
                {"op": "callTool", "name": "list_indexes"},
                {"op": "callTool", "name": "search_vidoes", "arguments": {"query": "x"}},
                # Errors once the client has set a level keep their own code (not "code 0, TaskGroup").
                {
                    "op": "getPrompt",
                    "name": "corpus_overview",
                    "arguments": {"knowledge_store_id": "k", "persona": "pirate"},
                },
                {"op": "readResource", "uri": "twelvelabs://thumbnails/zzz"},
                {"op": "callTool", "name": "get_video", "arguments": {"video_id": "x"}},
            ],
        }
    )
    assert seen["connect"]["protocolVersion"] == "2025-11-25"
    assert seen["connect"]["capabilities"]["logging"] == {}
    listed, level, called, unknown, prompt, resource, bad_call = seen["steps"]
    assert sorted(t["name"] for t in listed["result"]["tools"]) == DEFAULT_TOOLS
    assert level == {"result": {}}
    assert called["result"]["isError"] is False
    # The server's own request log line reached the client as notifications/message.
    assert {"level": "debug", "logger": "tl_mcp.api", "data": "GET /indexes -> 200"} in seen["logs"]
    error = step_error(unknown)
    assert error["kind"] == "McpError" and error["code"] == -32602
    assert "Unknown tool: 'search_vidoes'" in error["message"] and "search_videos" in error["message"]
    persona = step_error(prompt)
    assert persona["code"] == -32602, persona
    assert all(f"'{p}'" in persona["message"] for p in PERSONAS) and "'pirate'" in persona["message"]
    missing = step_error(resource)
    assert missing["code"] == -32602 and "Unknown resource: twelvelabs://thumbnails/zzz" in missing["message"]
    assert bad_call["result"]["isError"] is True
    assert "index_id: Field required" in bad_call["result"]["content"][0]["text"]


def test_ts_client_over_http_with_a_bearer_token(
    ts_client: Callable[[Plan], dict[str, Any]], http_server: HttpServer
) -> None:
    seen = ts_client(
        {
            "http": {"url": http_server.url, "headers": {"Authorization": f"Bearer {http_server.token}"}},
            "steps": [
                # What the SDK's OAuth support (and the Inspector) asks first: a 401 here starts OAuth.
                {"op": "discoverProtectedResource"},
                {"op": "listTools"},
                {"op": "setLoggingLevel", "level": "info"},
                {"op": "callTool", "name": "delete_index", "arguments": {"index_id": "x"}},
            ],
        }
    )
    discovered, listed, level, hidden = seen["steps"]
    assert "does not implement OAuth 2.0 Protected Resource Metadata" in step_error(discovered)["message"]
    assert sorted(t["name"] for t in listed["result"]["tools"]) == DEFAULT_TOOLS
    assert level == {"result": {}}
    error = step_error(hidden)
    assert error["code"] == -32602 and "toolset 'admin' is off" in error["message"]
    assert http_server.token not in json.dumps(seen)


def test_ts_client_is_told_which_protocol_versions_are_supported(
    ts_client: Callable[[Plan], dict[str, Any]], http_server: HttpServer
) -> None:
    headers = {"Authorization": f"Bearer {http_server.token}", "mcp-protocol-version": "2099-01-01"}
    seen = ts_client({"http": {"url": http_server.url, "headers": headers}, "steps": [{"op": "listTools"}]})
    error = seen["connect"]["error"]
    assert error["kind"] == "StreamableHTTPError" and error["code"] == 400
    assert "Unsupported MCP-Protocol-Version '2099-01-01'" in error["message"]
    assert all(v in error["message"] for v in SUPPORTED)
    assert "_meta" not in error["message"]


class TsSession:
    """One `client.mjs` in interactive mode: each step is sent when the test has read the last answer."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.connect = self._read(60)["connect"]
        #: The tools that answered a call without an error, their structuredContent checked by the SDK.
        self.called: set[str] = set()

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"the TS client said nothing for {timeout:.0f} s"
        line = self.proc.stdout.readline()
        assert line, f"the TS client exited with {self.proc.wait(10)}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def step(self, step: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(step) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A tool call that must succeed; the SDK checked its structuredContent against the outputSchema."""
        answer = self.step({"op": "callTool", "name": name, "arguments": arguments})
        assert "error" not in answer, f"{name}: {answer['error']}"
        assert answer["validated"], f"the SDK held no outputSchema for {name}"
        result = answer["result"]
        assert result["isError"] is False, f"{name} failed: {text(result)}"
        assert isinstance(result["structuredContent"], dict)
        values = [p["progress"] for p in answer["progress"]]
        assert values == sorted(set(values)), f"{name}: progress must increase with each notification"
        self.called.add(name)
        return answer

    def follow(self, result: dict[str, Any], answers: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every call the result's next steps print, made as printed with `…` filled from `answers`:
        tool → the arguments and result of its last call."""
        made = {}
        for hint in next_steps(CallToolResult.model_validate(result)):
            for tool, args in parse_calls(hint):
                filled = {k: answers[k] if v is None else v for k, v in args.items()}
                made[tool] = {"arguments": filled, **self.call(tool, filled)}
        return made


def text(result: dict[str, Any]) -> str:
    return "\n".join(c["text"] for c in result["content"] if c["type"] == "text")


@pytest.fixture
def ts_session(tmp_path: Path) -> Iterator[Callable[[Plan], TsSession]]:
    """The TS SDK driving a server step by step: the plan's "http" one, or for "serve" (its flags) a
    `tl-mcp serve` over stdio on a fresh embedded sandbox."""
    npm_ci(TS)
    node = shutil.which("node")
    assert node is not None
    started: list[subprocess.Popen[str]] = []

    def start(plan: Plan) -> TsSession:
        if "serve" in plan:
            server_env = clean_env({**FAST_SANDBOX, "TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox")})
            command = [sys.executable, "-m", "tl_mcp.cli", "serve", *plan["serve"]]
            stdio = {"command": command[0], "args": command[1:], "env": server_env, "cwd": str(ROOT)}
            plan = {"stdio": stdio}
        proc = subprocess.Popen(
            [node, "client.mjs", json.dumps({**plan, "interactive": True})],
            cwd=TS,
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return TsSession(proc)

    try:
        yield start
    finally:
        for proc in started:
            assert proc.stdin is not None
            proc.stdin.close()  # the client closes its session and exits at the end of its input
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_ts_client_drives_the_new_tools_and_every_structured_result_fits_its_schema(
    ts_session: Callable[[Plan], TsSession], tmp_path: Path, sample: SampleInfo
) -> None:
    """bulk_ingest to a job handle followed by wait_for_task, metadata edits found by a search filter, an
    item collection named in a Jockey selection, an entity found in the videos; every printed next step is
    followed, and the TS SDK checks each structuredContent against the tool's outputSchema."""
    media = tmp_path / "media"
    folder = media / "shoot"
    folder.mkdir(parents=True)
    shutil.copy(sample.path, folder / "market.mp4")
    tiny_video(folder / "tiny.mp4", 200)
    reference = make_sample_image(media / "apples.png", scene_index=1)
    ts = ts_session({"serve": ["--toolsets", "all", "--allow-dir", str(media)]})
    assert ts.connect["protocolVersion"] == "2025-11-25", ts.connect

    listed = ts.step({"op": "listTools"})["result"]
    assert "nextCursor" not in listed, "every tool on one page, so the SDK holds every outputSchema"
    tools = {t["name"]: t for t in listed["tools"]}
    assert sorted(tools) == sorted(s.name for s in all_tools())
    assert all("outputSchema" in t for t in tools.values())
    # The validator callTool applies says no to content that does not fit (so "validated" means something).
    verdict = ts.step({"op": "checkOutputSchema", "name": "list_assets", "structuredContent": {"assets": 3}})
    assert verdict["result"]["valid"] is False, verdict

    index_id = ts.call("create_index", {"name": "ts-shoot"})["result"]["structuredContent"]["id"]
    store_id = ts.call("create_knowledge_store", {"name": "ts-shoot"})["result"]["structuredContent"]["id"]

    # bulk_ingest hands back a job at once; its printed next step (wait_for_task) follows it to the end.
    where = {"index_id": index_id, "knowledge_store_id": store_id}
    started = ts.call("bulk_ingest", {"folder": str(folder), **where, "wait_s": 0})["result"]
    job = started["structuredContent"]
    assert job["status"] == "in_progress" and job["job_id"], job
    (wait_hint,) = [h for h in next_steps(CallToolResult.model_validate(started)) if "wait_for_task" in h]
    ((tool, args),) = parse_calls(wait_hint)
    assert tool == "wait_for_task" and args["id"] == job["job_id"], wait_hint
    for _ in range(10):
        waited = ts.call(tool, {**args, "wait_s": 30})
        if waited["result"]["structuredContent"]["done"]:
            break
    done = waited["result"]["structuredContent"]
    bulk = done["result"]
    assert done["status"] == "completed" and bulk["total"] == 2 and not bulk["failed"], done
    assert waited["progress"], "wait_for_task reports the job's progress as notifications"
    files = {row["source"]: row for row in bulk["uploaded"] + bulk["reused"]}
    market, tiny = files["market.mp4"], files["tiny.mp4"]
    fills = {"query": "fresh apples", "input": "What fruit is shown?", "prompt": "What fruit is shown?"}
    assert set(ts.follow(waited["result"], fills)) == {
        "wait_for_task",
        "search_videos",
        "create_response",
    }

    assets = ts.call("list_assets", {"filename": "market"})["result"]["structuredContent"]
    assert market["asset_id"] in [a["asset_id"] for a in assets["assets"]], assets
    unknown = {"asset_id": "0" * 24, "user_metadata": {"team": "red"}}
    refused = ts.step({"op": "callTool", "name": "update_metadata", "arguments": unknown})["result"]
    assert refused["isError"] and "Check the id; list_assets shows the ids" in text(refused), refused

    # Metadata set on one indexed video selects it, and only it, in a search filter.
    video = {"video_id": market["indexed_asset_id"], "index_id": index_id}
    edited = ts.call("update_metadata", {**video, "user_metadata": {"team": "red", "take": 2}})
    assert edited["result"]["structuredContent"]["user_metadata"] == {"team": "red", "take": 2}
    ts.call(
        "update_metadata",
        {"video_id": tiny["indexed_asset_id"], "index_id": index_id, "user_metadata": {"team": "blue"}},
    )
    search = {"query": "fresh apples", "index_id": index_id, "include_user_metadata": True}
    found = ts.call("search_videos", {**search, "filter": {"team": "red", "take": {"gte": 2}}})["result"]
    moments = found["structuredContent"]["moments"]
    assert moments and {m["video_id"] for m in moments} == {market["indexed_asset_id"]}, moments
    ts.follow(found, fills)

    # An item collection of the market video, named by a Jockey selection; the answer says who made it.
    made = ts.call(
        "create_item_collection",
        {"knowledge_store_id": store_id, "name": "Market", "item_ids": [market["item_id"]]},
    )["result"]
    collection_id = made["structuredContent"]["collection"]["collection_id"]
    followed = ts.follow(made, {**fills, "add_item_ids": [tiny["item_id"]]})
    assert list(followed) == ["create_response", "update_item_collection"]
    asked = followed["create_response"]
    assert collection_id in json.dumps(asked["arguments"]["selections"]), asked["arguments"]
    assert "Made by" in text(asked["result"]), text(asked["result"])
    assert "continue_session" in ts.follow(asked["result"], {"input": "And just after that?"})
    ks = {"knowledge_store_id": store_id}
    listed_collections = ts.call("list_item_collections", ks)["result"]
    assert "list_collection_items" in ts.follow(listed_collections, fills)
    hits = ts.call(
        "search_knowledge_store",
        {
            **ks,
            "query": "fresh apples",
            "collection_id": collection_id,
            "group_by": "item",
            "modalities": ["visual", "audio"],
        },
    )["result"]["structuredContent"]["hits"]
    assert [h["item_id"] for h in hits] == [market["item_id"]], hits
    renamed = ts.call("update_knowledge_store", {**ks, "metadata": {"shoot": ["market"]}})["result"]
    assert renamed["structuredContent"]["metadata"] == {"shoot": ["market"]}

    # An entity from a reference picture of the apples, found in the index; offline says how it matched.
    picture = ts.call("upload_asset", {"path": str(reference)})["result"]["structuredContent"]["asset_id"]
    entities = ts.call("create_entity_collection", {"name": "produce"})["result"]["structuredContent"]
    collection = entities["collection"]["entity_collection_id"]
    entity = ts.call(
        "create_entity", {"entity_collection_id": collection, "name": "Apples", "asset_ids": [picture]}
    )["result"]["structuredContent"]["entity"]
    for _ in range(100):
        got = ts.call("get_entity", {"entity_collection_id": collection, "entity_id": entity["entity_id"]})
        if got["result"]["structuredContent"]["entity"]["status"] == "ready":
            break
        time.sleep(0.1)
    moments_of = ts.call("find_entity_moments", {"entity_ids": [entity["entity_id"]], "index_id": index_id})
    seen = moments_of["result"]["structuredContent"]
    assert seen["moments"][0]["video_id"] == market["indexed_asset_id"], seen
    assert "not identity recognition" in seen["matched_by"] and "visual similarity" in text(
        moments_of["result"]
    )
    assert list(ts.follow(moments_of["result"], fills)) == ["get_video"]
    ids = {"entity_collection_id": collection, "entity_id": entity["entity_id"]}
    ts.call("list_entity_collections", {"name": "produce"})
    ts.call("update_entity_collection", {"entity_collection_id": collection, "name": "fruit"})
    by_asset = ts.call("list_entities", {"asset_id": picture})["result"]["structuredContent"]
    assert [e["entity_id"] for e in by_asset["entities"]] == [entity["entity_id"]]
    ts.call("update_entity", {**ids, "metadata": {"aisle": 3}})
    assert ts.call("delete_entity", ids)["result"]["structuredContent"]["deleted"] is True
    ts.call("delete_entity_collection", {"entity_collection_id": collection})

    # create_embedding's new options: an indexed video's stored embeddings, and a task with scopes and
    # options over an uploaded asset.
    stored = ts.call("create_embedding", video)["result"]["structuredContent"]
    assert stored["input_type"] == "video" and stored["embeddings"], stored
    task = {"video_asset_id": market["asset_id"], "clip_length": 4, "scopes": ["clip", "video"]}
    options = ts.call("create_embedding", {**task, "options": ["visual", "audio"], "wait_s": 60})["result"]
    vectors = options["structuredContent"]["embeddings"]
    assert {v["scope"] for v in vectors} == {"clip", "asset"} and {v["option"] for v in vectors} >= {"visual"}
    ts.follow(options, fills)
    # An async analysis task over the market video, followed by the job handle it prints.
    task = {"asset_id": market["asset_id"], "segment_definitions": [PRICES], "wait_s": 0}
    started_task = ts.call("start_analysis_task", task)["result"]
    analysed = ts.follow(started_task, fills)["wait_for_task"]["result"]["structuredContent"]["result"]
    assert [s["definition"] for s in analysed["segments"]] == ["prices"], analysed
    assert ts.called >= NEW_TOOLS, f"not called through the TS client: {sorted(NEW_TOOLS - ts.called)}"


def test_ts_client_over_http_follows_job_handles_of_bulk_ingest_and_jockey(
    ts_session: Callable[[Plan], TsSession], http_server: HttpServer, sample: SampleInfo
) -> None:
    """Over streamable HTTP (where job ids carry this replica's prefix) both job handles are followed as
    printed: the bulk upload's, with its progress streamed, and an answer's, which keeps its "Made by"."""
    ts = ts_session(
        {"http": {"url": http_server.url, "headers": {"Authorization": f"Bearer {http_server.token}"}}}
    )
    ts.step({"op": "listTools"})
    index_id = ts.call("create_index", {"name": "ts-http"})["result"]["structuredContent"]["id"]
    store_id = ts.call("create_knowledge_store", {"name": "ts-http"})["result"]["structuredContent"]["id"]
    where = {"index_id": index_id, "knowledge_store_id": store_id}
    clip = sample.path.name
    args = {"folder": str(sample.path.parent), "include": [clip], **where, "wait_s": 0}
    started = ts.call("bulk_ingest", args)["result"]

    def follow_job(result: dict[str, Any]) -> dict[str, Any]:
        (hint,) = [h for h in next_steps(CallToolResult.model_validate(result)) if "wait_for_task(" in h]
        ((tool, wait),) = [(t, a) for t, a in parse_calls(hint) if t == "wait_for_task"]
        for _ in range(10):
            waited = ts.call(tool, {**wait, "wait_s": 30})
            if waited["result"]["structuredContent"]["done"]:
                return waited
        raise AssertionError(f"{wait['id']} did not finish")

    bulk = follow_job(started)
    assert bulk["progress"] and bulk["progress"][-1]["message"].endswith(f"{clip}: uploaded"), bulk[
        "progress"
    ]
    ingested = bulk["result"]["structuredContent"]["result"]
    assert [row["source"] for row in ingested["uploaded"] + ingested["reused"]] == [clip], ingested
    question = {"knowledge_store_id": store_id, "input": "How much do the apples cost?", "wait_s": 0}
    asked = ts.call("create_response", question)["result"]
    answered = follow_job(asked)["result"]
    answer = answered["structuredContent"]["result"]
    assert answered["structuredContent"]["status"] == "completed" and "two dollars" in answer["text"], answer
    assert "Made by the sandbox" in text(answered), text(answered)
