"""Shared state in Redis (`TL_MCP_REDIS_URL`): what lets any replica relay, continue and cancel.

Keys, all under `tl-mcp:<backend hash>:` so two backends (or deployments on one Redis) never mix, and
all with a TTL, so nothing outlives its use:
- `job:<id>` (hash: the record as JSON, the cursor) and `job:<id>:events` (a Stream whose entry ids
  are `0-<number>`, so "after cursor n" is a plain `XREAD` from `0-n`), capped at `MAX_EVENTS` entries
  and kept for as long as the job may run plus `keep_s`;
- `replica:<id>`: a heartbeat that expires after `replica_timeout_s` (`TL_MCP_REPLICA_TIMEOUT_S`);
- `session:<id>` (hash: store, owner) for `SESSION_TTL_S` after the last turn;
- `ingest:…`: the bulk-ingest ledger (`redis_ledger`);
- the `cancel` pub/sub channel, which every replica listens on.
A record and its events are written by one Lua script, so a retried write never doubles an event; it
renews the writer's heartbeat too. Every write and the TTL that bounds its key go together (one script,
`SET … PX`, or one MULTI/EXEC), so a write cut off half-way (a crash, a dropped connection) never
leaves a key that does not expire.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tl_mcp.config import ConfigError
from tl_mcp.server.limits import LimitStore, RedisLimits
from tl_mcp.server.shared.base import (
    MAX_EVENTS,
    SESSION_TTL_S,
    CancelHandler,
    CancelKey,
    JobRecord,
    SharedState,
)

log = logging.getLogger(__name__)

#: A pooled connection is dead once Redis restarts: each command may reconnect this often (a timeout is
#: not retried, as a Redis that hangs would hold each call for this many socket timeouts).
RECONNECTS = 2
#: Longest one blocking read waits, well under the socket timeout.
_BLOCK_MS_MAX = 1_000
_SOCKET_TIMEOUT_S = 10.0

_SAVE = """
local last = 0
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #top > 0 then last = tonumber(string.match(top[1][1], '-(%d+)$')) end
local first = tonumber(ARGV[4])
for i = 6, #ARGV do
  local n = first + i - 6
  if n > last then redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. n, 'e', ARGV[i]) end
end
redis.call('HSET', KEYS[1], 'r', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
return 1
"""

#: Leaving a call: the count goes down, and the key goes when it reaches zero.
_LEAVE = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"""

#: The longest one call is counted as in flight: a replica that died mid-call leaves no count behind
#: for longer (a call's wait_s is at most 300 s).
_CALL_TTL_MS = 600_000

_ADVANCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local c = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0')
if tonumber(ARGV[1]) > c then redis.call('HSET', KEYS[1], 'cursor', ARGV[1]) end
return 1
"""


#: A session's owner, store and TTL in one step: a write cut off half-way would leave a key that never
#: expires. The first owner keeps it: continue_session refuses others, so theirs changes nothing.
_REMEMBER = """
redis.call('HSETNX', KEYS[1], 'owner', ARGV[1])
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'knowledge_store_id', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def unreachable(where: str, exc: BaseException) -> ToolError:
    """The error a tool call gets when Redis does not answer: what failed and what to do."""
    return ToolError(
        f"The shared state (Redis at {where}, TL_MCP_REDIS_URL) did not answer ({type(exc).__name__}). "
        "Nothing was changed. Check that Redis is running and reachable from every replica, then call again."
    )


def _text(value: bytes | str) -> str:
    """What the client hands back (`decode_responses=True`: always str; the types allow bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def _texts(mapping: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in mapping.items()}


def prefix_of(scope: str) -> str:
    """Where one backend's keys live: two backends (or deployments) on one Redis never mix."""
    return f"tl-mcp:{hashlib.sha256(scope.encode()).hexdigest()[:16]}:"


def where_of(client: Redis | SyncRedis) -> str:
    """host:port (or the socket path) of the Redis server, never its password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _wire(key: CancelKey) -> list[Any]:
    principal, hint, request_id = key
    return [list(principal) if principal else None, hint, request_id]


class RedisSessions:
    """The Jockey session map in Redis: the first owner keeps a session, as in `sessions.SessionStore`."""

    def __init__(self, client: Redis, prefix: str, where: str) -> None:
        self._r = client
        self._prefix = prefix
        self._where = where
        self._remember = client.register_script(_REMEMBER)

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    async def _entry(self, session_id: str) -> dict[str, str]:
        with _answering(self._where):
            return _texts(await self._r.hgetall(self._key(session_id)))

    async def get(self, session_id: str, owner: str) -> str | None:
        entry = await self._entry(session_id)
        if not entry or entry.get("owner") != owner:
            return None
        return entry.get("knowledge_store_id")

    async def foreign(self, session_id: str, owner: str) -> bool:
        entry = await self._entry(session_id)
        return bool(entry) and entry.get("owner") != owner

    async def remember(self, session_id: str, knowledge_store_id: str, owner: str) -> None:
        args: list[str | int] = [owner, knowledge_store_id, int(SESSION_TTL_S * 1000)]
        try:
            await self._remember(keys=[self._key(session_id)], args=args)
        except RedisError as exc:
            # As with the session file: losing the mapping only means passing knowledge_store_id later.
            log.warning("could not remember a Jockey session in Redis at %s: %s", self._where, exc)


@contextmanager
def _answering(where: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        log.warning("Redis at %s did not answer: %s", where, type(exc).__name__)
        raise unreachable(where, exc) from None


class RedisState(SharedState):
    replicated = True

    def __init__(self, client: Redis, *, scope: str, replica_timeout_s: float) -> None:
        self._r = client
        self._where = where_of(client)
        self._prefix = prefix_of(scope)
        self._timeout_s = replica_timeout_s
        self.replica = secrets.token_hex(6)
        self._heart = f"{self._prefix}replica:{self.replica}"
        self._beat_ms = int(replica_timeout_s * 1000)
        self.sessions = RedisSessions(client, self._prefix, self._where)
        self._handlers: list[CancelHandler] = []
        self._save = client.register_script(_SAVE)
        self._advance = client.register_script(_ADVANCE)
        self._leave = client.register_script(_LEAVE)

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, *, scope: str, replica_timeout_s: float) -> AsyncIterator[RedisState]:
        """Connected (or a ConfigError that says where it could not connect and what to do)."""
        client = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=_SOCKET_TIMEOUT_S,
            socket_connect_timeout=5.0,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RECONNECTS, (RedisConnectionError,)),
        )
        state = cls(client, scope=scope, replica_timeout_s=replica_timeout_s)
        try:
            try:
                await client.ping()
                await state._beat()
            except RedisError as exc:
                raise ConfigError(
                    f"cannot reach Redis at {state._where} (TL_MCP_REDIS_URL): {type(exc).__name__}. Start "
                    "Redis there or fix the URL (redis://[:password@]host:port/db, rediss:// for TLS); unset "
                    "TL_MCP_REDIS_URL to keep the state in this one process."
                ) from None
            log.info("shared state in Redis at %s (this replica: %s)", state._where, state.replica)
            yield state
        finally:
            await state.aclose()

    def _job(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    def _events(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}:events"

    async def save_job(self, record: JobRecord, new_events: Sequence[str], *, ttl_s: float) -> None:
        first = record.events - len(new_events) + 1
        # The writer's heartbeat goes with it: a record back after a restart never reads as lost.
        args: list[str | int] = [record.dumps(), int(ttl_s * 1000), MAX_EVENTS, first, self._beat_ms]
        args += new_events
        keys = [self._job(record.id), self._events(record.id), self._heart]
        with _answering(self._where):
            await self._save(keys=keys, args=args)

    async def load_job(self, job_id: str) -> JobRecord | None:
        with _answering(self._where):
            raw = await self._r.hget(self._job(job_id), "r")
        return JobRecord.loads(_text(raw)) if raw else None

    async def job_events(self, job_id: str, after: int, *, wait_s: float) -> Sequence[tuple[int, str]]:
        block = min(int(wait_s * 1000), _BLOCK_MS_MAX)
        with _answering(self._where):
            answer = await self._r.xread(
                {self._events(job_id): f"0-{after}"}, count=1000, block=block if block > 0 else None
            )
        found: list[tuple[int, str]] = []
        stream: Any
        for stream in answer or []:
            for entry_id, fields in stream[1]:
                number = int(_text(entry_id).partition("-")[2])
                found.append((number, _texts(fields)["e"]))
        return found

    async def cursor(self, job_id: str) -> int:
        with _answering(self._where):
            raw = await self._r.hget(self._job(job_id), "cursor")
        return int(_text(raw)) if raw else 0

    async def advance(self, job_id: str, cursor: int) -> None:
        with _answering(self._where):
            await self._advance(keys=[self._job(job_id)], args=[cursor])

    async def alive(self, replica: str) -> bool:
        with _answering(self._where):
            return bool(await self._r.exists(f"{self._prefix}replica:{replica}"))

    async def publish_cancel(self, key: CancelKey) -> None:
        payload = json.dumps(_wire(key))
        with _answering(self._where):
            await self._r.publish(f"{self._prefix}cancel", payload)

    def on_cancel(self, handler: CancelHandler) -> None:
        self._handlers.append(handler)

    def _call(self, key: CancelKey) -> str:
        # Hashed: the key holds who the caller is, which Redis need not learn.
        digest = hashlib.sha256(json.dumps(_wire(key)).encode()).hexdigest()[:32]
        return f"{self._prefix}call:{digest}"

    async def enter_call(self, key: CancelKey) -> None:
        name = self._call(key)
        with _answering(self._where):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.pexpire(name, _CALL_TTL_MS)
                await pipe.execute()

    async def leave_call(self, key: CancelKey) -> None:
        with _answering(self._where):
            await self._leave(keys=[self._call(key)])

    async def calls(self, key: CancelKey) -> int:
        with _answering(self._where):
            raw = await self._r.get(self._call(key))
        return int(_text(raw)) if raw else 0

    async def _beat(self) -> None:
        await self._r.set(self._heart, "1", px=self._beat_ms)

    def limit_store(self) -> LimitStore:
        return RedisLimits(self._r, prefix=f"{self._prefix}limits:")

    async def serve(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat)
            tg.start_soon(self._listen)

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self._timeout_s / 3)
            try:
                await self._beat()
            except RedisError as exc:
                # Missing beats for the whole timeout makes the other replicas call this one's jobs lost.
                log.warning("could not renew this replica's heartbeat in Redis at %s: %s", self._where, exc)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._r.pubsub() as pubsub:
                    await pubsub.subscribe(f"{self._prefix}cancel")
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._deliver(message["data"])
            except RedisError as exc:
                log.warning(
                    "lost the cancel channel in Redis at %s (%s); cancels from other replicas wait until "
                    "it is back",
                    self._where,
                    type(exc).__name__,
                )
                await anyio.sleep(1.0)

    def _deliver(self, data: str) -> None:
        try:
            principal, hint, request_id = json.loads(data)
            who = (str(principal[0]), principal[1], principal[2]) if principal else None
            key: CancelKey = (who, hint, request_id)
        except (ValueError, TypeError, IndexError):
            log.warning("ignoring a malformed message on the cancel channel")
            return
        for handler in self._handlers:
            handler(key)

    async def aclose(self) -> None:
        """Release the connections and say this replica is gone (its running jobs are lost at once)."""
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._r.delete(self._heart)
        except RedisError:
            pass
        await self._r.aclose()
