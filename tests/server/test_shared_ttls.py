"""No write to the shared Redis can leave a key without a TTL, however it is cut off.

Each operation that writes (job records, sessions, calls in flight, limits, the bulk-ingest ledger)
runs against a real `redis-server` with its connection cut after each of its commands in turn:
- `drop`: that command never arrives, nor does any after it (the replica died, or Redis went away);
- `lost`: it arrives but its answer is lost, and nothing after it arrives (the reply was cut off);
- `expire`: every key of the operation expires just before it (its TTL ran out between two steps).
After each, every key in Redis still has a TTL (`tests/server/conftest.py` checks it after every test
on a module's Redis too), and what the ledger holds still reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
import redis.backoff
import redis.connection
from mcp.server.mcpserver.exceptions import ToolError
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.services import assert_every_key_expires, redis_server
from tl_mcp.server.ingest_ledger import Plan, PlanFile
from tl_mcp.server.limits import RedisLimits
from tl_mcp.server.shared.base import CancelKey, JobRecord
from tl_mcp.server.shared.redis_ledger import RedisIngestLedger
from tl_mcp.server.shared.redis_state import RedisState, prefix_of

pytestmark = pytest.mark.anyio

MODES = ("drop", "lost", "expire")
#: More commands than any one operation sends: the loop stops at the first cut it never reaches.
MAX_CUTS = 40


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


class Cut:
    """Counts the commands this process sends to Redis (sync and asyncio clients) and cuts the
    connection at command number `at` as `mode` says. Armed only while the operation runs."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.armed = False
        self.sent = 0
        self.at = 0
        self.mode = "drop"
        self.prefix = ""

    def arm(self, mode: str, at: int, prefix: str) -> None:
        self.mode, self.at, self.prefix, self.sent, self.armed = mode, at, prefix, 0, True

    def _step(self) -> str:
        """What to do with the command about to be sent: "send", "fail" (drop), or "lose" its answer."""
        if not self.armed:
            return "send"
        self.sent += 1
        if self.sent < self.at:
            return "send"
        if self.mode == "expire":
            if self.sent == self.at:
                self.armed = False
                client = redis.Redis.from_url(self._url, decode_responses=True)
                keys = list(client.scan_iter(match=f"{self.prefix}*"))
                if keys:
                    client.delete(*keys)
                client.close()
                self.armed = True
            return "send"
        return "lose" if self.mode == "lost" and self.sent == self.at else "fail"

    @property
    def reached(self) -> bool:
        return self.sent >= self.at


@pytest.fixture
def cut(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Cut:
    cut = Cut(redis_url)
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        step = cut._step()
        if step == "fail":
            self.disconnect()
            raise RedisConnectionError("cut by the test before this command")
        sync_send(self, command, check_health)
        if step == "lose":
            self.disconnect()
            raise RedisConnectionError("cut by the test after this command")

    async def asend(self: Any, command: Any, check_health: bool = True) -> None:
        step = cut._step()
        if step == "fail":
            await self.disconnect(nowait=True)
            raise RedisConnectionError("cut by the test before this command")
        await async_send(self, command, check_health)
        if step == "lose":
            await self.disconnect(nowait=True)
            raise RedisConnectionError("cut by the test after this command")

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
    # Every reconnect after the cut fails too: waiting between them would only make the test slow.
    monkeypatch.setattr(redis.backoff.ExponentialBackoff, "compute", lambda self, failures: 0.0)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", asend)
    return cut


@dataclass
class Shared:
    """One replica's writers under one fresh prefix."""

    state: RedisState
    ledger: RedisIngestLedger
    limits: RedisLimits
    prefix: str


Op = Callable[[Shared], Awaitable[Any]]
_KEY: CancelKey = (("client", None, None), None, 1)
_PLAN = Plan("bulk_1", "p", {"to": "index:i1"}, [PlanFile(0, "a.mp4"), PlanFile(1, "b.mp4")])


def _record(shared: Shared, events: int) -> JobRecord:
    return JobRecord(
        id="job_abc", kind="jockey", label="Jockey answer", owner="p", replica="r", status="in_progress",
        events=events,
    )  # fmt: skip


async def _nothing(shared: Shared) -> None:
    pass


async def _job_saved(shared: Shared) -> None:
    await shared.state.save_job(_record(shared, 1), ["e1"], ttl_s=60)


async def _plan_saved(shared: Shared) -> None:
    shared.ledger.save_plan(_PLAN)


async def _plan_claimed(shared: Shared) -> None:
    shared.ledger.save_plan(_PLAN)
    shared.ledger.claim_plan("bulk_1", "me", 60, lambda _: True)


async def _upload_claimed(shared: Shared) -> None:
    shared.ledger.claim_upload("sha256:00", "a.mp4", "me", 60, lambda _: True)


async def _save_job(shared: Shared) -> None:
    await shared.state.save_job(_record(shared, 3), ["e1", "e2", "e3"], ttl_s=60)


async def _advance(shared: Shared) -> None:
    await shared.state.advance("job_abc", 1)


async def _remember(shared: Shared) -> None:
    await shared.state.sessions.remember("sess_1", "ks_1", "p")


async def _enter_and_leave(shared: Shared) -> None:
    await shared.state.enter_call(_KEY)
    await shared.state.enter_call(_KEY)
    await shared.state.leave_call(_KEY)


async def _acquire_and_take(shared: Shared) -> None:
    slot = await shared.limits.acquire("tool:p", 4)
    await shared.limits.take("tool:p", 60, 5)
    await shared.limits.release("tool:p", slot or "")
    await shared.limits.acquire("tool:p", 4)


async def _upload(shared: Shared) -> None:
    shared.ledger.claim_upload("sha256:01", "b.mp4", "me", 60, lambda _: True)
    shared.ledger.renew_uploads("me", 60)
    shared.ledger.record_upload("sha256:01", "asset-1", "b.mp4")


async def _release_upload(shared: Shared) -> None:
    shared.ledger.release_upload("sha256:00", "me")


async def _registration(shared: Shared) -> None:
    shared.ledger.claim_registration("asset-1", "index:i1", "me", 60, lambda _: True)
    shared.ledger.intend_registration("asset-1", "index:i2")
    shared.ledger.record_registration("asset-1", "index:i1", "video-1")
    shared.ledger.release_registration("asset-1", "index:i1", "me")


async def _save_plan(shared: Shared) -> None:
    shared.ledger.save_plan(_PLAN)


async def _update_file(shared: Shared) -> None:
    shared.ledger.update_file("bulk_1", PlanFile(1, "b.mp4", status="done", asset_id="asset-1"))


async def _finish_plan(shared: Shared) -> None:
    shared.ledger.finish_plan("bulk_1")


async def _claim_plan(shared: Shared) -> None:
    shared.ledger.claim_plan("bulk_1", "me", 60, lambda _: True)


async def _renew_and_release_plan(shared: Shared) -> None:
    shared.ledger.renew_plan("bulk_1", "me", 60, job_id="job_1")
    shared.ledger.release_plan("bulk_1", "me")


#: (name, what is there before, the operation cut off): every write the shared state makes.
OPERATIONS: list[tuple[str, Op, Op]] = [
    ("save_job", _nothing, _save_job),
    ("save_job_again", _job_saved, _save_job),
    ("advance", _job_saved, _advance),
    ("remember_session", _nothing, _remember),
    ("calls_in_flight", _nothing, _enter_and_leave),
    ("limits", _nothing, _acquire_and_take),
    ("upload", _nothing, _upload),
    ("release_upload", _upload_claimed, _release_upload),
    ("registration", _nothing, _registration),
    ("save_plan", _plan_saved, _save_plan),
    ("update_file", _plan_saved, _update_file),
    ("finish_plan", _plan_saved, _finish_plan),
    ("claim_plan", _plan_saved, _claim_plan),
    ("renew_and_release_plan", _plan_claimed, _renew_and_release_plan),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "before", "operation"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_a_write_cut_off_at_any_step_leaves_no_key_without_a_ttl(
    name: str, before: Op, operation: Op, mode: str, cut: Cut, redis_url: str, tmp_path: Path
) -> None:
    for at in range(1, MAX_CUTS):
        prefix = prefix_of(f"ttl:{tmp_path}:{mode}:{at}")
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        state = RedisState(client, scope=f"ttl:{tmp_path}:{mode}:{at}", replica_timeout_s=5)
        ledger = RedisIngestLedger(redis_url, prefix)
        shared = Shared(state, ledger, RedisLimits(client, prefix=prefix), prefix)
        try:
            await before(shared)
            await client.ping()  # connected before the cut: the count is the operation's own commands
            cut.arm(mode, at, prefix)
            try:
                await operation(shared)
            except (ToolError, redis.RedisError, KeyError):
                pass  # cut off (or the plan expired under it): what it left is what is checked
            finally:
                cut.armed = False
            assert_every_key_expires(redis_url)
            # What the ledger holds still reads as a whole (a plan the cut left is complete or absent).
            shared.ledger.plan("bulk_1")
        finally:
            shared.ledger.close()
            await client.aclose()
        if not cut.reached:
            return  # the operation ran to its end before this cut: every step has been cut
    raise AssertionError(f"{name} sent more than {MAX_CUTS} commands")
