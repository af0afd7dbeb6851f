"""What every resource shares: the JSON-and-models plumbing over the client's one `HTTPCore`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import BaseModel, ValidationError

from .._http import Body, HTTPCore, QueryParams
from .._multipart import ByteProgress, MultipartForm
from ..errors import TwelveLabsError
from ..models._base import Page

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def seg(value: str) -> str:
    """A path segment: ids and page tokens are opaque, so escape everything."""
    if not value:
        raise ValueError("an id or token must not be empty")
    return quote(value, safe="")


def one_source(**sources: object) -> str:
    """The name of the one source given; a `ValueError` naming them all when none or several are."""
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(sources)} (got {', '.join(given) or 'none'})")
    return given[0]


async def iterate_pages(
    fetch: Callable[[int], Awaitable[Page[T]]], *, start: int = 1, max_pages: int = 10_000
) -> AsyncIterator[T]:
    """Every entry of a page-number list, fetching the next page only while `has_more`."""
    page_no = start
    for _ in range(max_pages):
        page = await fetch(page_no)
        for entry in page.data:
            yield entry
        if not page.has_more:
            return
        page_no += 1


class Resource:
    """One family of endpoints. Every resource of a client shares its `HTTPCore` (connections, retries)."""

    def __init__(self, http: HTTPCore) -> None:
        self._http = http

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json_body: Any = None,
        form: MultipartForm | None = None,
        progress: ByteProgress | None = None,
        idempotent: bool | None = None,
    ) -> httpx2.Response:
        body = None
        if form is not None:
            body = Body(form=form, progress=progress)
        elif json_body is not None:
            body = Body(json=json_body)
        return await self._http.request(method, path, params=params, body=body, idempotent=idempotent)

    @staticmethod
    def _parse(response: httpx2.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise TwelveLabsError(
                f"{response.request.method} {response.request.url.path}: unexpected response shape "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})",
                status=response.status_code,
            ) from exc

    async def _get(self, path: str, model: type[M], params: QueryParams | None = None) -> M:
        return self._parse(await self._call("GET", path, params=params), model)

    async def _page(self, path: str, model: type[M], params: QueryParams) -> Page[M]:
        return self._parse(await self._call("GET", path, params=params), Page[model])  # type: ignore[valid-type]
