"""The one way to watch upstream work until it ends: capped exponential backoff with jitter.

Asset processing, indexing, store items and embedding tasks are all "ask again later" resources. A
fixed interval turns many watchers of slow (or stuck) work into a steady stream of requests; here the gap
between two checks grows from `initial` by `factor` up to `max_interval`, with jitter so that watchers
started together drift apart. A check that fails transiently (429, 502/503/504, a lost connection) even
after the request retry policy is not the end of the watch: the next check waits at least the server's
`Retry-After`. Whoever calls `poll` bounds the whole watch (a job's lifetime, a call's `wait_s`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from .errors import APIConnectionError, APITimeoutError, RateLimitError, ServerError, TwelveLabsError

logger = logging.getLogger("tl_mcp.api")

T = TypeVar("T")

#: Codes that mean "stop asking", even on a status that is otherwise worth waiting out.
_FINAL_CODES = frozenset({"plan_limit_exceeded", "usage_limit_exceeded"})


def _default_random() -> float:
    return random.random()


@dataclass(frozen=True)
class PollPolicy:
    initial: float = 2.0
    factor: float = 1.5
    max_interval: float = 30.0
    #: Each gap is shortened by up to this fraction, at random.
    jitter: float = 0.2
    #: A Retry-After longer than this is cut to it: the watch's own bound decides when to give up.
    max_retry_after: float = 300.0
    random: Callable[[], float] = field(default=_default_random, repr=False)

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.max_interval) or self.factor < 1:
            raise ValueError("PollPolicy needs 0 < initial <= max_interval and factor >= 1")

    def interval(self, checks: int) -> float:
        """The gap after the `checks`-th check (1-based)."""
        # min() before the power would overflow on a watch that has run for days.
        exponent = min(checks - 1, 64)
        base = min(self.max_interval, self.initial * self.factor**exponent)
        return float(base * (1.0 - self.jitter * self.random()))


def transient(exc: TwelveLabsError) -> bool:
    """True for failures worth waiting out while watching: rate limits, gateway errors, lost connections."""
    if exc.code in _FINAL_CODES:
        return False
    if isinstance(exc, APITimeoutError | APIConnectionError | RateLimitError):
        return True
    return isinstance(exc, ServerError) and exc.status in (502, 503, 504)


async def poll(
    fetch: Callable[[], Awaitable[T]],
    finished: Callable[[T], bool],
    *,
    policy: PollPolicy,
    on_value: Callable[[T], Awaitable[None] | None] | None = None,
    on_transient: Callable[[TwelveLabsError, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> T:
    """Call `fetch` until `finished(value)`; between checks wait per `policy` (via `sleep`).

    `on_value` sees every value (an awaitable it returns is awaited). Non-transient errors propagate;
    transient ones are reported to `on_transient` with the delay before the next check. Runs until
    finished or cancelled: the caller bounds it.
    """
    checks = 0
    while True:
        checks += 1
        delay = policy.interval(checks)
        try:
            value = await fetch()
        except TwelveLabsError as exc:
            if not transient(exc):
                raise
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, policy.max_retry_after))
            if on_transient is not None:
                on_transient(exc, delay)
            logger.info("watching upstream work: %s; next check in %.1f s", exc, delay)
        else:
            if on_value is not None:
                pending = on_value(value)
                if pending is not None:
                    await pending
            if finished(value):
                return value
        await sleep(delay)
