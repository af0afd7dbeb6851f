"""Hypothesis-generated arguments for every tool, driven from each tool's own inputSchema.

Every call must come back within a bound, as a valid result or as an error that says something the model
can act on (never the SDK's bare "Error executing tool X", which means an unhandled exception); the server
must keep serving; the API key must never show up; and arguments that fail validation never reach the API.
One sandbox and one server (held open in a blocking portal) serve the whole module.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, Tool

from tests.reliability.conftest import API_KEY, BARE_SDK_ERROR, Env, Seed, faulted
from tests.server.conftest import text_of
from tl_mcp.server import build_server

CALL_BOUND_S = 20.0
#: Examples per tool; raise it (TL_MCP_FUZZ_EXAMPLES=500) for a long soak, the default keeps CI quick.
EXAMPLES = int(os.environ.get("TL_MCP_FUZZ_EXAMPLES", "12"))
#: Fuzzed waits stay short so the bound above holds even when real work starts.
MAX_FUZZ_WAIT_S = 2.0

HOSTILE_STRINGS = [
    "",
    " ",
    "../../etc/passwd",
    "/etc/passwd",
    "/etc/shadow",
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:1/nothing.mp4",
    "https://example.invalid/clip.mp4",
    "gopher://example.com/",
    "ks_does-not-exist",
    "000000000000000000000000",
    "job_0000000000000000",
    "sess_nope",
    "'; DROP TABLE indexes; --",
    "{{sel:99}}",
    "\x00\x01\x02",
    "\u202e\u0000\ufeff😀🎥 ünïcödé",
    "A" * 5000,
    "x" * 200_001,
]


class CountingTransport(httpx2.AsyncBaseTransport):
    """The real loopback transport, counting requests so a test can tell whether a call reached the API."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.requests = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted must not break the capture itself
            line = repr(record.msg)
        self.lines.append(line)
        if record.exc_info is not None:
            self.lines.append(logging.Formatter().formatException(record.exc_info))

    @property
    def crashes(self) -> list[str]:
        """The SDK logs every non-ToolError exception a tool raised (the bare-error case) like this."""
        return [line for line in self.lines if "raised an unexpected exception" in line]


@dataclass
class Harness:
    env: Env
    portal: BlockingPortal
    client: Client
    transport: CountingTransport
    tools: dict[str, Tool]
    logs: Records
    slowest: dict[str, float] = field(default_factory=dict)

    def call(self, name: str, args: dict[str, Any]) -> CallToolResult:
        async def go() -> CallToolResult:
            with anyio.fail_after(CALL_BOUND_S):
                return await self.client.call_tool(name, args)

        started = time.monotonic()
        result = self.portal.call(go)
        self.slowest[name] = max(self.slowest.get(name, 0.0), time.monotonic() - started)
        return result


@contextmanager
def _harness(seed: Seed, root: Path, mode: str) -> Iterator[Harness]:
    logs = Records()
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(logs)
    root_logger.setLevel(logging.DEBUG)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        with faulted(seed, root) as env:
            transport = CountingTransport()
            server = build_server(env.settings(toolsets="all"), transport=transport)
            with (
                start_blocking_portal() as portal,
                portal.wrap_async_context_manager(Client(server, mode=mode)) as client,  # type: ignore[arg-type]
            ):
                tools = {t.name: t for t in portal.call(client.list_tools).tools}
                yield Harness(env, portal, client, transport, tools, logs)
    finally:
        root_logger.removeHandler(logs)
        root_logger.setLevel(old_level)


@pytest.fixture(scope="module")
def harness(seed: Seed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with _harness(seed, tmp_path_factory.mktemp("fuzz"), "auto") as h:
        yield h


def _from_schema(name: str, prop: dict[str, Any], defs: dict[str, Any], seed: Seed) -> st.SearchStrategy[Any]:
    """Values that satisfy the property's schema; strings lean towards real ids, hostile paths and URLs."""
    if "$ref" in prop:
        return _from_schema(name, defs[prop["$ref"].rsplit("/", 1)[-1]], defs, seed)
    if "anyOf" in prop:
        return st.one_of([_from_schema(name, sub, defs, seed) for sub in prop["anyOf"]])
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    kind = prop.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(prop.get("minimum", -(2**31)), prop.get("maximum", 2**31))
    if kind == "number":
        high = MAX_FUZZ_WAIT_S if name == "wait_s" else prop.get("maximum", 1e9)
        return st.floats(prop.get("minimum", -1e9), high, allow_nan=False, allow_infinity=False)
    if kind == "array":
        low = prop.get("minItems", 0)
        return st.lists(
            _from_schema(name, prop.get("items", {}), defs, seed), min_size=low, max_size=max(low, 3)
        )
    if kind == "object":
        fields = prop.get("properties", {})
        if fields:
            required = set(prop.get("required", []))
            return st.fixed_dictionaries(
                {k: _from_schema(k, v, defs, seed) for k, v in fields.items() if k in required},
                optional={k: _from_schema(k, v, defs, seed) for k, v in fields.items() if k not in required},
            )
        return st.sampled_from(
            [
                {"type": "object", "properties": {"answer": {"type": "string"}}},
                {"type": "object", "properties": {"n": {"type": "integer", "minimum": "x"}}},
                {"type": "array"},
                {"$ref": "#/nowhere"},
                {},
            ]
        )
    low, high = prop.get("minLength", 0), prop.get("maxLength", 300_000)
    if name == "id" or name.endswith("_id"):
        # Ids are not advertised with their pattern (the server checks it), so they are known by name.
        ids = [seed.index_id, seed.knowledge_store_id, seed.asset_id, seed.video_id, seed.item_id]
        ids += [
            "ks_does-not-exist",
            "000000000000000000000000",
            "job_0000000000000000",
            "sess_nope",
            "a" * 200,
        ]
        return st.sampled_from(ids).filter(lambda v: low <= len(v) <= high)
    options = [st.text(min_size=max(low, 1), max_size=min(high, 60)), st.sampled_from(HOSTILE_STRINGS)]
    if name.endswith("path"):
        options.append(st.just(str(seed.media / "clip.mp4")))
    return st.one_of(options).filter(lambda v: low <= len(v) <= high)


def _json_leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**12), max_value=10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        st.sampled_from(HOSTILE_STRINGS),
    )


def _wrong() -> st.SearchStrategy[Any]:
    """Anything at all: wrong types, nulls, out-of-range numbers, hostile strings, nested junk."""
    return st.one_of(
        _json_leaf(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.lists(_json_leaf(), max_size=3),
        st.dictionaries(st.text(max_size=5), _json_leaf(), max_size=3),
    )


def arguments(tool: Tool, seed: Seed) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid arguments (so calls get into the tool body), sometimes with one argument replaced by
    anything at all, and sometimes with fields the schema does not have."""
    schema = tool.input_schema
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    defs: dict[str, Any] = schema.get("$defs", {})
    value = {n: _from_schema(n, p, defs, seed) for n, p in props.items()}
    base = st.fixed_dictionaries(
        {n: value[n] for n in props if n in required},
        optional={n: value[n] for n in props if n not in required},
    )

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        args = draw(base)
        if props and draw(st.integers(0, 3)) == 0:
            args[draw(st.sampled_from(sorted(props)))] = draw(_wrong())
        if draw(st.integers(0, 4)) == 0:
            extra = st.sampled_from(["extra", "__proto__", "api_key", "ctx"])
            args.update(draw(st.dictionaries(extra, _json_leaf(), min_size=1, max_size=2)))
        return args

    return build()


def _wait_defaults(tool: Tool, args: dict[str, Any]) -> dict[str, Any]:
    if "wait_s" in tool.input_schema.get("properties", {}) and "wait_s" not in args:
        return {**args, "wait_s": MAX_FUZZ_WAIT_S}
    return args


def _leaks(result: CallToolResult) -> str:
    return text_of(result) + repr(result.structured_content) + repr(result.content)


def _check(h: Harness, name: str, args: dict[str, Any]) -> None:
    args = _wait_defaults(h.tools[name], args)
    before = h.transport.requests
    crashes = len(h.logs.crashes)
    result = h.call(name, args)
    text = text_of(result)
    assert API_KEY not in _leaks(result)
    assert len(h.logs.crashes) == crashes, f"{name} crashed for {args!r:.500}"
    if result.is_error:
        bare = BARE_SDK_ERROR.format(name=name)
        assert text.strip() != bare, f"unhandled exception in {name} for {args!r:.500}"
        assert len(text.strip()) > len(bare) + 10, f"terse error from {name}: {text!r}"
        if "validation error" in text:
            assert h.transport.requests == before, f"{name}: invalid arguments reached the API: {args!r:.300}"
    else:
        assert result.structured_content is not None, f"{name} returned no structured content"


TOOL_NAMES = [
    "create_response",
    "continue_session",
    "search_videos",
    "classify_videos",
    "create_embedding",
    "upload_asset",
    "bulk_ingest",
    "wait_for_task",
    "list_indexes",
    "create_index",
    "list_videos",
    "get_video",
    "list_assets",
    "update_metadata",
    "list_knowledge_stores",
    "create_knowledge_store",
    "add_to_knowledge_store",
    "list_knowledge_store_items",
    "analyze_video",
    "summarize_video",
    "export_clips",
    "delete_index",
    "delete_video",
    "delete_asset",
    "delete_knowledge_store",
    "remove_from_knowledge_store",
    "update_knowledge_store",
    "create_item_collection",
    "list_item_collections",
    "list_collection_items",
    "update_item_collection",
    "search_knowledge_store",
    "delete_entity",
    "delete_entity_collection",
    "create_entity_collection",
    "list_entity_collections",
    "update_entity_collection",
    "create_entity",
    "list_entities",
    "get_entity",
    "update_entity",
    "find_entity_moments",
    "start_analysis_task",
    "list_analysis_tasks",
    "cancel_analysis_task",
    "delete_analysis_task",
]


def test_every_tool_is_fuzzed(harness: Harness) -> None:
    assert sorted(harness.tools) == sorted(TOOL_NAMES)


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_fuzzed_arguments_never_crash_hang_or_leak(harness: Harness, seed: Seed, name: str) -> None:
    _fuzz(harness, seed, name, EXAMPLES)
    # Still alive and answering after everything above.
    after = harness.call("list_knowledge_stores", {})
    assert not after.is_error, text_of(after)
    assert harness.slowest[name] < CALL_BOUND_S
    assert not any(API_KEY in line for line in harness.logs.lines)


def test_nothing_logged_leaks_the_key_and_no_tool_crashed(harness: Harness) -> None:
    text = "\n".join(harness.logs.lines)
    assert API_KEY not in text
    assert harness.logs.crashes == []


def test_non_finite_numbers_are_refused_cleanly(harness: Harness) -> None:
    for name, arg in (("search_videos", "limit"), ("create_response", "wait_s"), ("list_indexes", "page")):
        for bad in (math.inf, -math.inf):
            result = harness.call(
                name, {arg: bad, "query": "x", "index_id": "i", "knowledge_store_id": "k", "input": "q"}
            )
            assert result.is_error and text_of(result).strip() != BARE_SDK_ERROR.format(name=name)


def _fuzz(h: Harness, seed: Seed, name: str, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(args=arguments(h.tools[name], seed))
    def run(args: dict[str, Any]) -> None:
        _check(h, name, args)

    run()


def test_fuzzed_arguments_over_legacy_json_rpc(seed: Seed, tmp_path: Path) -> None:
    """The same properties through the 2025-11-25 handshake, where arguments cross real JSON-RPC framing."""
    with _harness(seed, tmp_path, "legacy") as legacy:
        for name in TOOL_NAMES:
            _fuzz(legacy, seed, name, 3)
        assert not legacy.call("list_knowledge_stores", {}).is_error
        assert legacy.logs.crashes == []
        assert not any(API_KEY in line for line in legacy.logs.lines)


# Regressions found by the fuzzer above, pinned so they stay fixed whatever the random draw.


def test_classify_on_a_missing_index_is_an_actionable_error(harness: Harness) -> None:
    # The 404 of a search inside classify's task group used to escape as an ExceptionGroup: bare SDK error.
    classes = [{"name": "fruit", "prompts": ["apples", "pears"]}, {"name": "sea", "prompts": ["ocean"]}]
    result = harness.call("classify_videos", {"index_id": "000000000000000000000000", "classes": classes})
    text = text_of(result)
    assert result.is_error and "Classification failed" in text and "HTTP 404" in text, text
    assert "list_indexes" in text


def test_store_search_page_without_query_is_refused_before_the_network(harness: Harness) -> None:
    # It used to trip an `assert query is not None` (bare SDK error) after skipping the argument checks.
    before = harness.transport.requests
    result = harness.call("search_videos", {"knowledge_store_id": "ks_x", "page_token": "tok"})
    text = text_of(result)
    assert result.is_error and "needs the text query" in text and "page_token" in text, text
    assert harness.transport.requests == before


@pytest.mark.parametrize("tool", ["create_index", "create_knowledge_store"])
@pytest.mark.parametrize("name", ["\x00\x01\x02", "   ", "tab\there", "\u0085next"])
def test_unreadable_names_are_refused_before_anything_is_created(
    harness: Harness, tool: str, name: str
) -> None:
    # The fuzzer created an index literally named "\x00\x01\x02": a listing entry nobody can read or type.
    before = harness.transport.requests
    result = harness.call(tool, {"name": name})
    text = text_of(result)
    assert result.is_error and ("control characters" in text or "visible character" in text), text
    assert harness.transport.requests == before


@pytest.mark.parametrize("query", [" ", "\t\n", "\u3000"])
def test_a_blank_store_search_query_is_refused_cleanly(harness: Harness, query: str) -> None:
    # The fuzzer once found `query=' '` escaping as an unhandled ValueError.
    before = harness.transport.requests
    result = harness.call("search_knowledge_store", {"knowledge_store_id": "ks_x", "query": query})
    text = text_of(result)
    assert result.is_error and "query" in text and "Traceback" not in text, text
    assert harness.transport.requests == before
