"""The shared-state interface, one contract for both implementations: this process (memory, the
default) and Redis (a real `redis-server` on a loopback port).

Records and event logs round-trip, a cursor never goes back, a retried write never doubles an event,
a blocked read wakes on the next event, a session stays its first owner's, a cancel reaches every
listener; in Redis everything carries a TTL and a closed replica is gone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio
from mcp.server.mcpserver.exceptions import ToolError

from tests.services import redis_server
from tl_mcp.config import ConfigError
from tl_mcp.server.sessions import SessionStore
from tl_mcp.server.shared.base import CancelKey, JobRecord, SharedState
from tl_mcp.server.shared.memory import MemoryState
from tl_mcp.server.shared.redis_state import RedisState

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SharedState]:
    if request.param == "memory":
        yield MemoryState(SessionStore(tmp_path))
        return
    redis_url = request.getfixturevalue("redis_url")
    connected = RedisState.connect(redis_url, scope=f"test:{tmp_path}", replica_timeout_s=5)
    async with connected as shared, anyio.create_task_group() as tg:
        tg.start_soon(shared.serve)
        yield shared
        tg.cancel_scope.cancel()


def _record(state: SharedState, events: int, status: str = "in_progress") -> JobRecord:
    return JobRecord(
        id="job_abc",
        kind="jockey",
        label="Jockey answer on ks_1",
        owner="p1",
        replica=state.replica,
        status=status,
        events=events,
        partial={"content": [], "isError": False},
    )


async def test_a_job_record_and_its_events_round_trip_from_any_cursor(state: SharedState) -> None:
    assert await state.load_job("job_abc") is None
    await state.save_job(_record(state, 2), ["e1", "e2"], ttl_s=60)
    await state.save_job(_record(state, 3), ["e3"], ttl_s=60)
    loaded = await state.load_job("job_abc")
    assert loaded == _record(state, 3)
    assert [n for n, _ in await state.job_events("job_abc", 0, wait_s=0)] == [1, 2, 3]
    assert await state.job_events("job_abc", 1, wait_s=0) == [(2, "e2"), (3, "e3")]
    assert await state.job_events("job_abc", 3, wait_s=0) == []


async def test_a_retried_write_never_doubles_an_event(state: SharedState) -> None:
    await state.save_job(_record(state, 2), ["e1", "e2"], ttl_s=60)
    # The same write again (its answer was lost), then one that overlaps it.
    await state.save_job(_record(state, 2), ["e1", "e2"], ttl_s=60)
    await state.save_job(_record(state, 3), ["e2", "e3"], ttl_s=60)
    assert await state.job_events("job_abc", 0, wait_s=0) == [(1, "e1"), (2, "e2"), (3, "e3")]


async def test_the_cursor_only_moves_forward(state: SharedState) -> None:
    await state.save_job(_record(state, 3), ["a", "b", "c"], ttl_s=60)
    assert await state.cursor("job_abc") == 0
    await state.advance("job_abc", 2)
    await state.advance("job_abc", 1)
    assert await state.cursor("job_abc") == 2
    # No record, no cursor: advancing an unknown job creates nothing.
    await state.advance("job_unknown", 5)
    assert await state.cursor("job_unknown") == 0 and await state.load_job("job_unknown") is None


async def test_a_blocked_read_wakes_on_the_next_event(state: SharedState) -> None:
    await state.save_job(_record(state, 1), ["first"], ttl_s=60)
    got: list[tuple[int, str]] = []
    async with anyio.create_task_group() as tg:

        async def read() -> None:
            got.extend(await state.job_events("job_abc", 1, wait_s=5))

        tg.start_soon(read)
        await anyio.sleep(0.2)
        with anyio.fail_after(3):
            await state.save_job(_record(state, 2), ["second"], ttl_s=60)
    assert got == [(2, "second")]


async def test_a_session_stays_its_first_owners(state: SharedState) -> None:
    sessions = state.sessions
    await sessions.remember("sess_a", "ks_a", "p_a")
    assert await sessions.get("sess_a", "p_a") == "ks_a"
    assert await sessions.get("sess_a", "p_b") is None and await sessions.foreign("sess_a", "p_b")
    assert not await sessions.foreign("sess_a", "p_a") and not await sessions.foreign("sess_new", "p_b")
    await sessions.remember("sess_a", "ks_b", "p_b")
    assert await sessions.get("sess_a", "p_a") == "ks_a"
    await sessions.remember("sess_a", "ks_c", "p_a")
    assert await sessions.get("sess_a", "p_a") == "ks_c"


async def test_a_published_cancel_reaches_every_listener(state: SharedState) -> None:
    heard: list[CancelKey] = []
    arrived = anyio.Event()

    def listener(key: CancelKey) -> None:
        heard.append(key)
        arrived.set()

    state.on_cancel(listener)
    key: CancelKey = (("client", "issuer", None), "hint", 7)
    with anyio.fail_after(5):
        # Redis: the subscription may still be starting; the message is sent until it is heard.
        while not arrived.is_set():
            await state.publish_cancel(key)
            with anyio.move_on_after(0.2):
                await arrived.wait()
    assert heard[0] == key


async def test_this_replica_is_alive_and_an_unknown_one_is_not(state: SharedState) -> None:
    assert await state.alive(state.replica)
    assert not await state.alive("someone-else")


async def test_every_redis_key_expires_and_a_closed_replica_is_gone(redis_url: str, tmp_path: Path) -> None:
    scope = f"ttl:{tmp_path}"
    async with RedisState.connect(redis_url, scope=scope, replica_timeout_s=5) as first:
        await first.save_job(_record(first, 1), ["e"], ttl_s=60)
        await first.advance("job_abc", 1)
        await first.sessions.remember("sess_1", "ks_1", "p")
        async with RedisState.connect(redis_url, scope=scope, replica_timeout_s=5) as second:
            assert await second.alive(first.replica)
            client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
            async with client:
                keys = [k async for k in client.scan_iter(match="tl-mcp:*")]
                mine = {k.split(":", 2)[2].split(":")[0] for k in keys}
                assert {"job", "replica", "session"} <= mine, keys
                for key in keys:
                    assert await client.pttl(key) > 0, f"{key} never expires"
        assert not await first.alive(second.replica)


async def test_an_unreachable_redis_fails_the_start_with_what_to_do(tmp_path: Path) -> None:
    from tests.e2e.processes import free_port

    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError) as raised:
        async with RedisState.connect(url, scope="x", replica_timeout_s=5):
            pass
    message = str(raised.value)
    assert "cannot reach Redis at 127.0.0.1:" in message and "TL_MCP_REDIS_URL" in message
    assert "hunter2" not in message


async def test_a_redis_that_stops_answering_gives_an_error_that_says_so(tmp_path: Path) -> None:
    with redis_server(tmp_path / "short-lived") as url:
        connected = RedisState.connect(url, scope="down", replica_timeout_s=5)
        shared = await connected.__aenter__()
    try:
        with pytest.raises(ToolError) as failed:
            await shared.sessions.get("sess_1", "p")
        message = str(failed.value)
        assert "The shared state (Redis at 127.0.0.1:" in message and "TL_MCP_REDIS_URL" in message
        assert "Nothing was changed" in message and "call again" in message
        # Remembering a session is best effort, as with the session file: the answer still arrives.
        await shared.sessions.remember("sess_1", "ks_1", "p")
    finally:
        await connected.__aexit__(None, None, None)


async def test_calls_in_flight_are_counted_until_they_leave(state: SharedState) -> None:
    key: CancelKey = (("client", None, None), None, 5)
    other: CancelKey = (("client", None, None), None, "5")
    assert await state.calls(key) == 0
    await state.enter_call(key)
    await state.enter_call(key)
    await state.enter_call(other)
    assert await state.calls(key) == 2 and await state.calls(other) == 1
    await state.leave_call(key)
    await state.leave_call(key)
    assert await state.calls(key) == 0 and await state.calls(other) == 1


def test_a_record_written_by_a_newer_replica_still_loads() -> None:
    raw = json.loads(_record(MemoryState(SessionStore(Path("/nonexistent"))), 1).dumps())
    raw["written_by_a_later_version"] = True
    assert JobRecord.loads(json.dumps(raw)).events == 1
