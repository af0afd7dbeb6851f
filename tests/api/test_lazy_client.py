"""The API client makes its `httpx2.AsyncClient` (and so its TLS context) on its first request, not when it is
opened: a server's start-up to its first `tools/list` does not need it (issue 13)."""

from __future__ import annotations

import pytest

from tests.api.conftest import API_KEY, BASE_URL, FakeAPI, Seen, json_response
from tl_mcp.api import TwelveLabsClient

pytestmark = pytest.mark.anyio


async def test_opening_and_closing_a_client_makes_no_http_client() -> None:
    made: list[object] = []

    async with TwelveLabsClient(API_KEY, BASE_URL) as tl:
        made.append(tl._http._httpx)
    assert made == [None]
    with pytest.raises(RuntimeError, match="closed"):
        await tl.indexes.get("idx1")
    assert tl._http._httpx is None


async def test_the_first_request_makes_the_http_client_and_the_later_ones_reuse_it() -> None:
    def answer(seen: Seen) -> object:
        return json_response(200, {"_id": "idx1", "index_name": "n", "models": []})

    api = FakeAPI(answer, check_spec=False)
    async with TwelveLabsClient(API_KEY, BASE_URL, transport=api) as tl:
        await tl.indexes.get("idx1")
        first = tl._http._httpx
        await tl.indexes.get("idx1")
        assert first is not None and tl._http._httpx is first
    assert first.is_closed
    assert [s.path for s in api.seen] == ["/indexes/idx1", "/indexes/idx1"]
