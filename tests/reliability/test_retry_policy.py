"""The retry rules the fault tests rely on, pinned at the network boundary (a scripted httpx2 transport)."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from tl_mcp.api import TwelveLabsClient
from tl_mcp.api._http import RetryPolicy
from tl_mcp.api.errors import APIConnectionError, APITimeoutError, ServerError
from tl_mcp.server.errors import explain

pytestmark = pytest.mark.anyio

KEY = "tlk_retry_policy_" + "k" * 20
INDEX = {
    "_id": "i1",
    "index_name": "x",
    "models": [{"model_name": "marengo3.0", "model_options": ["visual"]}],
}


class Script(httpx2.AsyncBaseTransport):
    def __init__(self, *steps: Callable[[httpx2.Request], httpx2.Response]) -> None:
        self.steps = list(steps)
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return self.steps.pop(0)(request)


def fail(exc: type[httpx2.TransportError]) -> Callable[[httpx2.Request], httpx2.Response]:
    def step(request: httpx2.Request) -> httpx2.Response:
        raise exc(f"injected with {KEY}", request=request)

    return step


def ok(body: object, status: int = 200) -> Callable[[httpx2.Request], httpx2.Response]:
    return lambda request: httpx2.Response(status, json=body)


async def no_sleep(_: float) -> None:
    return None


def client(script: Script) -> TwelveLabsClient:
    return TwelveLabsClient(
        KEY, "https://api.example.test/v1.3", transport=script, retry=RetryPolicy(sleep=no_sleep)
    )


async def test_a_get_broken_mid_answer_is_repeated() -> None:
    script = Script(fail(httpx2.RemoteProtocolError), ok(INDEX))
    async with client(script) as tl:
        index = await tl.indexes.get("i1")
    assert index.id == "i1" and len(script.seen) == 2


async def test_a_get_that_timed_out_is_not_repeated() -> None:
    script = Script(fail(httpx2.ReadTimeout), ok(INDEX))
    async with client(script) as tl:
        with pytest.raises(APITimeoutError) as info:
            await tl.indexes.get("i1")
    assert len(script.seen) == 1 and KEY not in str(info.value)


@pytest.mark.parametrize(
    "first",
    [fail(httpx2.RemoteProtocolError), ok({"code": "unavailable", "message": "later"}, status=503)],
    ids=["broken-connection", "503"],
)
async def test_a_create_is_never_repeated_and_says_whether_calling_again_is_safe(
    first: Callable[[httpx2.Request], httpx2.Response],
) -> None:
    script = Script(first, ok({"_id": "i2"}))
    async with client(script) as tl:
        with pytest.raises((APIConnectionError, ServerError)) as info:
            await tl.indexes.create("new")
    assert script.seen == ["POST /v1.3/indexes"]
    assert info.value.repeat_safe is False
    text = explain("Creating index 'new'", info.value)
    assert "not retried automatically" in text and "safe to call again" in text and "list_indexes" in text
    assert KEY not in text
