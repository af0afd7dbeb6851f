"""Per-token limits on HTTP: how many tool calls (and upstream requests) one caller may have running at
once, and how many it may start per minute, so that no client starves the others.

- Concurrency is a counter per (principal, kind): a call takes a slot when it starts and gives it back
  when it ends. A full counter refuses the call at once, with `retry after`, rather than queueing it:
  a queue would hold the caller's connection open and still let it crowd the others.
- Rate is a token bucket per (principal, kind): `per_minute` tokens a minute, at most `burst` saved up.
  A refused call is told how long until its next token.
- `MemoryLimits` counts in this process (one replica); `RedisLimits` counts in Redis, so that replicas
  behind a load balancer share one budget per token. Slots in Redis carry a TTL, so a replica that dies
  holding some gives them back within `SLOT_TTL_S`, each slot on its own.

Principals are the opaque ids of `principals.py`, never tokens, so neither store ever holds a secret.
"""

from __future__ import annotations

import math
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tl_mcp.config import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

Kind = Literal["tool", "upstream"]
#: A slot in Redis outlives any single call by far; it only bounds what a dead replica keeps.
SLOT_TTL_S = 600.0


@dataclass(frozen=True)
class Budget:
    """One kind of limit: 0 turns that part off."""

    concurrent: int
    per_minute: int
    burst: int


class Refused(Exception):
    """A limit was reached; `retry_after_s` says when trying again can succeed."""

    def __init__(
        self, kind: Kind, reason: Literal["concurrency", "rate"], budget: Budget, retry_after_s: float
    ):
        self.kind = kind
        self.reason = reason
        self.budget = budget
        self.retry_after_s = max(retry_after_s, 0.001)
        super().__init__(self.describe())

    def describe(self) -> str:
        what = "tool calls" if self.kind == "tool" else "requests to the TwelveLabs API"
        if self.reason == "concurrency":
            why = f"this token already has {self.budget.concurrent} {what} running (the most it may)"
            then = "Wait for one of them to finish"
        else:
            why = f"this token made more than {self.budget.per_minute} {what} a minute"
            then = "Slow down"
        return (
            f"Limit reached: {why}. {then}, then retry after {math.ceil(self.retry_after_s)} s "
            "(limits are per token, so other clients are not affected)."
        )


class LimitStore(ABC):
    """Where the counters live: this process, or Redis shared by the replicas."""

    @abstractmethod
    async def acquire(self, key: str, limit: int) -> str | None:
        """Take one of `limit` slots under `key`: its name, or None (nothing taken) when all are taken."""

    @abstractmethod
    async def release(self, key: str, slot: str) -> None: ...

    @abstractmethod
    async def take(self, key: str, per_minute: int, burst: int) -> float:
        """Take a token from the bucket `key`: 0 when taken, else seconds until one is there."""


class MemoryLimits(LimitStore):
    def __init__(self) -> None:
        self._slots: dict[str, set[str]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, key: str, limit: int) -> str | None:
        held = self._slots.setdefault(key, set())
        if len(held) >= limit:
            return None
        slot = secrets.token_hex(8)
        held.add(slot)
        return slot

    async def release(self, key: str, slot: str) -> None:
        held = self._slots.get(key, set())
        held.discard(slot)
        if not held:
            self._slots.pop(key, None)

    async def take(self, key: str, per_minute: int, burst: int) -> float:
        now = time.monotonic()
        rate = per_minute / 60.0
        tokens, at = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate


# KEYS[1] the slots (a sorted set, each slot scored by when it lapses); ARGV: limit, ttl ms, slot name.
# Each slot lapses on its own, so a dead replica's slots come back even while the token stays busy.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] the bucket (tokens, at ms); ARGV: tokens per ms, burst. Redis's clock, so replicas agree.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return tostring(wait)
"""


class RedisLimits(LimitStore):
    """The counters in Redis, each changed by one script so that replicas never race on them."""

    def __init__(
        self, client: Redis, *, prefix: str = "tl-mcp:limits:", slot_ttl_s: float = SLOT_TTL_S
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._slot_ms = int(slot_ttl_s * 1000)
        self._acquire: Any = client.register_script(_ACQUIRE)
        self._take: Any = client.register_script(_TAKE)

    async def acquire(self, key: str, limit: int) -> str | None:
        slot = secrets.token_hex(8)
        taken = await self._acquire(keys=[self._prefix + "c:" + key], args=[limit, self._slot_ms, slot])
        return slot if int(taken) else None

    async def release(self, key: str, slot: str) -> None:
        await self._client.zrem(self._prefix + "c:" + key, slot)

    async def take(self, key: str, per_minute: int, burst: int) -> float:
        wait = await self._take(keys=[self._prefix + "r:" + key], args=[per_minute / 60_000.0, burst])
        return float(wait) / 1000.0


class Limits:
    """The budgets of one server, applied through one store."""

    def __init__(self, store: LimitStore, *, tool: Budget, upstream: Budget) -> None:
        self.store = store
        self._budgets: dict[Kind, Budget] = {"tool": tool, "upstream": upstream}

    async def enter(self, kind: Kind, principal: str) -> str | None:
        """Admit one `kind` of work for `principal` or raise `Refused`; the slot taken, if the budget
        has slots (give it back with `leave`)."""
        budget = self._budgets[kind]
        key = f"{kind}:{principal}"
        slot: str | None = None
        if budget.concurrent > 0:
            slot = await self.store.acquire(key, budget.concurrent)
            if slot is None:
                # Nothing says when a running call ends; a second is a polite first retry.
                raise Refused(kind, "concurrency", budget, 1.0)
        if budget.per_minute > 0:
            wait = await self.store.take(key, budget.per_minute, budget.burst or budget.per_minute)
            if wait > 0:
                if slot is not None:
                    await self.store.release(key, slot)
                raise Refused(kind, "rate", budget, wait)
        return slot

    async def leave(self, kind: Kind, principal: str, slot: str) -> None:
        await self.store.release(f"{kind}:{principal}", slot)


def limits_of(settings: Settings, store: LimitStore | None = None) -> Limits:
    """The budgets the settings ask for, counted in `store` (this process when None; `RedisLimits`
    for replicas sharing a Redis)."""
    return Limits(
        store or MemoryLimits(),
        tool=Budget(
            settings.tool_concurrency, settings.tool_calls_per_minute, settings.tool_calls_per_minute
        ),
        upstream=Budget(
            settings.upstream_concurrency,
            settings.upstream_requests_per_minute,
            settings.upstream_requests_per_minute,
        ),
    )
