"""Error mapping, the retry policy, and API-key redaction everywhere."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx2
import pytest

from tests.api.conftest import API_KEY, FakeAPI, Seen, json_response, make_client
from tl_mcp.api import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TwelveLabsClient,
    UnprocessableError,
)
from tl_mcp.api._http import parse_retry_after

pytestmark = pytest.mark.anyio


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def scripted(*responses: httpx2.Response | Exception) -> FakeAPI:
    queue = list(responses)

    def handler(seen: Seen) -> httpx2.Response:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return FakeAPI(handler, check_spec=False)


INDEX = {"_id": "i1", "index_name": "x"}


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message"),
    [
        (
            400,
            {"code": "parameter_invalid", "message": "bad page"},
            BadRequestError,
            "parameter_invalid",
            "bad page",
        ),
        (
            404,
            {"error": {"code": "resource_not_exist", "message": "no such task"}},
            NotFoundError,
            "resource_not_exist",
            "no such task",
        ),
        (
            401,
            {"code": "api_key_invalid", "message": "expired"},
            AuthenticationError,
            "api_key_invalid",
            "expired",
        ),
        (
            409,
            {"code": "batch_not_terminal", "message": "busy", "docs_url": "x"},
            ConflictError,
            "batch_not_terminal",
            "busy",
        ),
        (
            422,
            {"error": {"code": "parameter_invalid", "message": "schema", "details": {}}},
            UnprocessableError,
            "parameter_invalid",
            "schema",
        ),
    ],
)
async def test_flat_and_nested_error_bodies_map_to_typed_errors(
    status: int, body: dict[str, object], cls: type[Exception], code: str, message: str
) -> None:
    api = scripted(json_response(status, body, headers={"x-request-id": "req-42"}))
    async with make_client(api) as tl:
        with pytest.raises(cls) as info:
            await tl.indexes.get("i1")
    err = info.value
    assert err.status == status and err.code == code and message in err.message  # type: ignore[attr-defined]
    assert err.request_id == "req-42" and "req-42" in str(err) and f"HTTP {status}" in str(err)  # type: ignore[attr-defined]


async def test_empty_429_and_non_json_500_bodies() -> None:
    policy = RetryPolicy(max_attempts=1)
    api = scripted(
        httpx2.Response(429, content=b""), httpx2.Response(500, content=b"<html>Bad Gateway</html>")
    )
    async with make_client(api, retry=policy) as tl:
        with pytest.raises(RateLimitError) as rl:
            await tl.indexes.get("i1")
        with pytest.raises(ServerError, match="Bad Gateway"):
            await tl.indexes.get("i1")
    assert rl.value.code is None and "Rate limited" in rl.value.message


async def test_429_with_retry_after_then_success_is_retried_after_the_given_wait() -> None:
    sleeps = Sleeps()
    api = scripted(
        httpx2.Response(429, content=b"", headers={"retry-after": "3"}),
        httpx2.Response(503, json={"code": "unavailable", "message": "later"}),
        json_response(200, INDEX),
    )
    async with make_client(api, retry=RetryPolicy(sleep=sleeps, random=lambda: 0.0)) as tl:
        index = await tl.indexes.get("i1")
    assert index.id == "i1" and len(api.seen) == 3
    assert sleeps.calls == [3.0, 1.0]  # server's hint, then 0.5·2¹ backoff


async def test_idempotent_post_is_retried_but_create_is_not() -> None:
    sleeps = Sleeps()
    ok = {"data": [], "page_info": {}}
    api = scripted(httpx2.Response(502), json_response(200, ok), httpx2.Response(503), httpx2.Response(429))
    async with make_client(api, retry=RetryPolicy(sleep=sleeps)) as tl:
        await tl.search.query("i1", query_text="dog")
        with pytest.raises(ServerError):
            await tl.indexes.create("new")
        with pytest.raises(RateLimitError):
            await tl.knowledge.stores.create("ks")
    assert [s.method for s in api.seen] == ["POST", "POST", "POST", "POST"]
    assert len(sleeps.calls) == 1  # only the search was repeated


async def test_quota_codes_and_other_statuses_are_final() -> None:
    sleeps = Sleeps()
    api = scripted(
        json_response(429, {"code": "plan_limit_exceeded", "message": "upgrade"}),
        json_response(400, {"code": "parameter_invalid", "message": "no"}),
    )
    async with make_client(api, retry=RetryPolicy(sleep=sleeps)) as tl:
        with pytest.raises(RateLimitError, match="upgrade"):
            await tl.indexes.get("i1")
        with pytest.raises(BadRequestError):
            await tl.indexes.get("i1")
    assert sleeps.calls == [] and len(api.seen) == 2


async def test_connect_errors_are_retried_and_then_reported() -> None:
    sleeps = Sleeps()
    api = scripted(*(httpx2.ConnectError("refused") for _ in range(3)))
    async with make_client(api, retry=RetryPolicy(max_attempts=3, sleep=sleeps)) as tl:
        with pytest.raises(APIConnectionError, match="could not reach"):
            await tl.indexes.get("i1")
    assert len(sleeps.calls) == 2


async def test_total_time_budget_and_long_retry_after_stop_retrying() -> None:
    sleeps = Sleeps()
    api = scripted(httpx2.Response(503, headers={"retry-after": "500"}), httpx2.Response(503))
    async with make_client(api, retry=RetryPolicy(sleep=sleeps, max_retry_after=60)) as tl:
        with pytest.raises(ServerError) as info:
            await tl.indexes.get("i1")
    assert info.value.retry_after == 500 and sleeps.calls == []
    clock = iter([0.0, 0.0, 100.0, 100.0])
    api = scripted(httpx2.Response(503), httpx2.Response(503), json_response(200, INDEX))
    policy = RetryPolicy(sleep=sleeps, total_timeout=10, clock=lambda: next(clock))
    async with make_client(api, retry=policy) as tl:
        with pytest.raises(ServerError):
            await tl.indexes.get("i1")
    assert len(api.seen) == 2


def test_retry_after_forms() -> None:
    assert parse_retry_after(httpx2.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert parse_retry_after(httpx2.Headers({"retry-after": "7"})) == 7.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(httpx2.Headers({"retry-after": date}), now=now.timestamp()) == pytest.approx(30)
    assert parse_retry_after(httpx2.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx2.Headers()) is None


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=5, jitter=0.25, random=lambda: 1.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.75, 1.5, 3.0, 3.75, 3.75]


async def test_api_key_never_appears_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    echo = {"code": "api_key_invalid", "message": f"key {API_KEY} is not valid"}
    api = scripted(
        json_response(503, {"message": f"overloaded for {API_KEY}"}),
        json_response(401, echo),
        httpx2.ConnectError(f"boom {API_KEY}"),
    )
    with caplog.at_level(logging.DEBUG):
        async with make_client(api, retry=RetryPolicy(sleep=Sleeps(), max_attempts=2)) as tl:
            assert API_KEY not in repr(tl)
            with pytest.raises(AuthenticationError) as auth:
                await tl.indexes.get("i1")
            with pytest.raises(APIConnectionError) as conn:
                await tl.indexes.create("x")
    for text in (str(auth.value), repr(auth.value), auth.value.message, str(conn.value), caplog.text):
        assert API_KEY not in text
    assert "***" in str(auth.value) and "overloaded for ***" in caplog.text


def test_client_requires_a_key() -> None:
    with pytest.raises(ValueError, match="API key"):
        TwelveLabsClient("  ")
