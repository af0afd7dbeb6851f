"""Per-token limits, body and argument bounds, and /metrics, on a real loopback port; the limit
stores (memory and a real redis-server) against one contract."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.server.conftest import World, call_ok, loopback_socket, serve_app
from tests.services import redis_server
from tl_mcp.config import Settings
from tl_mcp.logfmt import JsonFormatter
from tl_mcp.redaction import SECRETS
from tl_mcp.server import build_http_app, build_server, guard
from tl_mcp.server.limits import Budget, Limits, LimitStore, MemoryLimits, RedisLimits, Refused

pytestmark = pytest.mark.anyio

TOKEN_A = "tok-a-" + "limits" * 4
TOKEN_B = "tok-b-" + "limits" * 4
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@asynccontextmanager
async def serving(world: World, **flags: Any) -> AsyncIterator[str]:
    settings = world.settings(auth_tokens=[TOKEN_A, TOKEN_B], transport="http", **flags)
    app = build_http_app(build_server(settings), settings)
    async with serve_app(app, loopback_socket()) as base:
        yield base


@asynccontextmanager
async def client(base: str, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
        yield c


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, rest = key.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == wanted:
            return float(value)
    return 0.0


async def scrape(base: str) -> str:
    async with httpx2.AsyncClient(base_url=base) as http:
        anonymous = await http.get("/metrics")
        assert anonymous.status_code == 401, "metrics are behind the same tokens as /mcp"
        scraped = await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN_B}"})
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        return scraped.text


async def test_a_token_over_its_rate_is_told_when_to_retry_and_others_still_run(world: World) -> None:
    async with serving(world, tool_calls_per_minute=3) as base:
        before = await scrape(base)
        async with client(base, TOKEN_A) as a, client(base, TOKEN_B) as b:
            for _ in range(3):
                await call_ok(a, "list_indexes", {})
            refused = await a.call_tool("list_indexes", {})
            assert refused.is_error
            text = refused.content[0].text  # type: ignore[union-attr]
            assert "Limit reached" in text and "a minute" in text and "retry after" in text
            assert refused.meta is not None and 1 <= refused.meta["tl-mcp/retry_after_s"] <= 20
            # The other token has a budget of its own.
            await call_ok(b, "list_indexes", {})
        after = await scrape(base)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("tl_mcp_tool_calls_total", tool="list_indexes", outcome="ok") == 4
    assert delta("tl_mcp_tool_calls_total", tool="list_indexes", outcome="limited") == 1
    assert delta("tl_mcp_limited_total", kind="tool", reason="rate") == 1
    assert delta("tl_mcp_tool_call_seconds_count", tool="list_indexes") == 4
    assert delta("tl_mcp_upstream_requests_total", method="GET", status="2xx") >= 4
    assert delta("tl_mcp_upstream_request_seconds_count", method="GET") >= 4
    assert "tl_mcp_running_jobs" in after and "tl_mcp_active_streams" in after
    assert TOKEN_A not in after and "static-" not in after, "no caller appears in the metrics"


async def test_upstream_requests_over_budget_wait_then_fail_the_call(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guard, "UPSTREAM_WAIT_S", 0.3)
    async with serving(world, upstream_requests_per_minute=2) as base:
        async with client(base, TOKEN_A) as a, client(base, TOKEN_B) as b:
            await call_ok(a, "list_indexes", {})
            await call_ok(a, "list_indexes", {})
            refused = await a.call_tool("list_indexes", {})
            text = refused.content[0].text  # type: ignore[union-attr]
            assert refused.is_error and "requests to the TwelveLabs API" in text and "Retry after" in text
            await call_ok(b, "list_indexes", {})
        scraped = await scrape(base)
    assert sample(scraped, "tl_mcp_limited_total", kind="upstream", reason="rate") >= 1


async def test_oversized_bodies_get_413_and_long_arguments_are_refused(world: World) -> None:
    async with serving(world, max_body_bytes=2048, max_argument_chars=256) as base:
        auth = {**HEADERS, "authorization": f"Bearer {TOKEN_A}"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 4096}}
        async with httpx2.AsyncClient(base_url=base) as http:
            declared = await http.post("/mcp", json=body, headers=auth)
            assert declared.status_code == 413
            assert "TL_MCP_MAX_BODY_BYTES" in declared.json()["error"]["message"]

            async def chunks() -> AsyncIterator[bytes]:
                raw = json.dumps(body).encode()
                for i in range(0, len(raw), 512):
                    yield raw[i : i + 512]

            chunked = await http.post("/mcp", content=chunks(), headers=auth)
            assert chunked.status_code == 413
        async with client(base, TOKEN_A) as a:
            with pytest.raises(MCPError) as caught:
                await a.call_tool("search_videos", {"index_id": world.index_id, "query": "q" * 300})
            assert "query" in caught.value.error.message and "256" in caught.value.error.message
            # A body within bounds still works on the same server.
            await call_ok(a, "list_indexes", {})


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@asynccontextmanager
async def store(kind: str, url: str) -> AsyncIterator[LimitStore]:
    if kind == "memory":
        yield MemoryLimits()
        return
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        yield RedisLimits(redis, prefix=f"test-{time.monotonic_ns()}:")
    finally:
        await redis.aclose()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_limit_stores_share_one_contract(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    async with store(kind, url) as limits:
        first, second = await limits.acquire("a", 2), await limits.acquire("a", 2)
        assert first and second and first != second
        assert await limits.acquire("a", 2) is None, "a third slot of two"
        assert await limits.acquire("b", 2), "another key has its own slots"
        await limits.release("a", first)
        await limits.release("a", first)  # twice is once: the other slot stays taken
        assert await limits.acquire("a", 2)
        assert await limits.acquire("a", 2) is None
        assert [await limits.take("r", 60, 2) for _ in range(2)] == [0.0, 0.0]
        wait = await limits.take("r", 60, 2)
        assert 0.5 < wait <= 1.0, "one token a second: the next is at most a second away"
        assert await limits.take("other", 60, 2) == 0.0
        await anyio.sleep(wait + 0.05)
        assert await limits.take("r", 60, 2) == 0.0, "the bucket refilled"


async def test_two_replicas_share_one_budget_through_redis(redis_url: str) -> None:
    from redis.asyncio import Redis

    one, two = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        budget = Budget(concurrent=1, per_minute=0, burst=0)
        prefix = f"test-{time.monotonic_ns()}:"
        first = Limits(RedisLimits(one, prefix=prefix), tool=budget, upstream=budget)
        second = Limits(RedisLimits(two, prefix=prefix), tool=budget, upstream=budget)
        slot = await first.enter("tool", "p_x")
        assert slot
        with pytest.raises(Refused) as refused:
            await second.enter("tool", "p_x")
        assert refused.value.reason == "concurrency" and "retry after 1 s" in str(refused.value)
        assert await second.enter("tool", "p_y"), "another principal is not held back"
        await first.leave("tool", "p_x", slot)
        assert await second.enter("tool", "p_x")
    finally:
        await one.aclose()
        await two.aclose()


def test_json_log_lines_are_masked() -> None:
    secret = "tlk_" + "jsonlog" * 4
    SECRETS.add(secret)
    record = logging.LogRecord("tl_mcp.x", logging.WARNING, __file__, 1, "key %s failed", (secret,), None)
    from tl_mcp.redaction import RedactingFilter

    RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "tl_mcp.x"
    assert secret not in json.dumps(line) and "failed" in line["message"]


async def test_replicas_sharing_redis_give_a_token_one_budget(world: World, redis_url: str) -> None:
    """Two servers with one Redis: a token's calls on either count against the same minute."""
    flags: dict[str, Any] = {
        "auth_tokens": [TOKEN_A, TOKEN_B],
        "transport": "http",
        "tool_calls_per_minute": 2,
    }
    env = {
        "TWELVELABS_API_KEY": world.sandbox.api_key,
        "TWELVELABS_BASE_URL": world.sandbox.base_url,
        "TL_MCP_BACKEND": "sandbox",
        "TL_MCP_SANDBOX_DIR": str(world.state_dir / "sandbox"),
        "TL_MCP_STATE_KEYS": "k" * 40,
        "TL_MCP_REDIS_URL": redis_url,
    }
    one, two = Settings.from_sources(env=env, **flags), Settings.from_sources(env=env, **flags)
    app_one, app_two = build_http_app(build_server(one), one), build_http_app(build_server(two), two)
    async with (
        serve_app(app_one, loopback_socket()) as base_one,
        serve_app(app_two, loopback_socket()) as base_two,
    ):
        async with client(base_one, TOKEN_A) as a1, client(base_two, TOKEN_A) as a2:
            await call_ok(a1, "list_indexes", {})
            await call_ok(a2, "list_indexes", {})
            refused = await a1.call_tool("list_indexes", {})
            assert refused.is_error and "Limit reached" in refused.content[0].text  # type: ignore[union-attr]
        async with client(base_two, TOKEN_B) as b:
            await call_ok(b, "list_indexes", {})


async def test_a_dead_replicas_slot_lapses_while_the_token_stays_busy(redis_url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        prefix = f"test-{time.monotonic_ns()}:"
        dead = RedisLimits(redis, prefix=prefix, slot_ttl_s=0.5)
        alive = RedisLimits(redis, prefix=prefix, slot_ttl_s=30)
        assert await dead.acquire("k", 2), "taken, then never given back"
        deadline = time.monotonic() + 5
        while True:
            # The token keeps working in its other slot: that must not keep the lost one alive.
            one = await alive.acquire("k", 2)
            assert one, "one slot of two is always free"
            two = await alive.acquire("k", 2)
            await alive.release("k", one)
            if two is not None:
                await alive.release("k", two)
                break
            assert time.monotonic() < deadline, "the dead replica's slot never lapsed"
            await anyio.sleep(0.1)
    finally:
        await redis.aclose()
