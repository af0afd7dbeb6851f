"""Indexes (`/indexes`): the searchable collections that indexed assets and videos live in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from ..models._base import Page
from ..models.indexes import CreatedId, CreateIndexRequest, Index, IndexModel
from ._base import Resource, iterate_pages, seg


class Indexes(Resource):
    async def create(
        self, name: str, *, models: Sequence[IndexModel] | None = None, addons: Sequence[str] | None = None
    ) -> str:
        """Create an index (Marengo by default); its id."""
        request = CreateIndexRequest(
            index_name=name,
            models=[*models] if models else [IndexModel()],
            addons=[*addons] if addons is not None else None,
        )
        response = await self._call("POST", "/indexes", json_body=request.to_wire(), idempotent=False)
        return self._parse(response, CreatedId).id

    async def get(self, index_id: str) -> Index:
        return await self._get(f"/indexes/{seg(index_id)}", Index)

    async def list(self, page: int = 1, page_limit: int = 10, name: str | None = None) -> Page[Index]:
        return await self._page(
            "/indexes", Index, {"page": page, "page_limit": page_limit, "index_name": name}
        )

    def iter(self, *, page_limit: int = 50, name: str | None = None) -> AsyncIterator[Index]:
        return iterate_pages(lambda n: self.list(n, page_limit, name))

    async def delete(self, index_id: str) -> None:
        await self._call("DELETE", f"/indexes/{seg(index_id)}")
