"""Knowledge stores (`/knowledge-stores`): stores, their items, item collections, and search over a store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

from .._http import HTTPCore
from ..models._base import MetadataValue, Page
from ..models.knowledge import (
    AddItemRequest,
    CreateItemCollectionRequest,
    CreateKnowledgeStoreRequest,
    ItemCollection,
    ItemIdsRequest,
    KnowledgeStore,
    KnowledgeStoreItem,
    KnowledgeStoreSearchPage,
    KnowledgeStoreSearchRequest,
    KSSearchOptions,
    KSSearchQuery,
    KSVideoSearchOptions,
    UpdateKnowledgeStoreRequest,
)
from ._base import Resource, iterate_pages, seg


def _store(ks_id: str) -> str:
    return f"/knowledge-stores/{seg(ks_id)}"


def _meta(metadata: Mapping[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
    return dict(metadata) if metadata is not None else None


class Stores(Resource):
    async def create(
        self,
        name: str,
        *,
        description: str | None = None,
        ingestion_config: Mapping[str, Any] | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> KnowledgeStore:
        request = CreateKnowledgeStoreRequest(
            name=name,
            description=description,
            ingestion_config=dict(ingestion_config) if ingestion_config is not None else None,
            metadata=_meta(metadata),
        )
        body = request.to_wire()
        response = await self._call("POST", "/knowledge-stores", json_body=body, idempotent=False)
        return self._parse(response, KnowledgeStore)

    async def get(self, ks_id: str) -> KnowledgeStore:
        return await self._get(_store(ks_id), KnowledgeStore)

    async def list(self, page: int = 1, page_limit: int = 10) -> Page[KnowledgeStore]:
        return await self._page("/knowledge-stores", KnowledgeStore, {"page": page, "page_limit": page_limit})

    def iter(self, *, page_limit: int = 50) -> AsyncIterator[KnowledgeStore]:
        return iterate_pages(lambda n: self.list(n, page_limit))

    async def update(
        self,
        ks_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> KnowledgeStore:
        request = UpdateKnowledgeStoreRequest(name=name, description=description, metadata=_meta(metadata))
        body = request.to_wire()
        if not body:
            raise ValueError("nothing to update: pass name, description or metadata")
        # PATCH replaces the given fields with the same values on a repeat: safe to repeat.
        response = await self._call("PATCH", _store(ks_id), json_body=body, idempotent=True)
        return self._parse(response, KnowledgeStore)

    async def delete(self, ks_id: str) -> None:
        await self._call("DELETE", _store(ks_id))


class Items(Resource):
    async def add(
        self,
        ks_id: str,
        *,
        asset_id: str,
        asset_type: Literal["video", "image"] | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> KnowledgeStoreItem:
        request = AddItemRequest(asset_id=asset_id, asset_type=asset_type, metadata=_meta(metadata))
        path = f"{_store(ks_id)}/items"
        response = await self._call("POST", path, json_body=request.to_wire(), idempotent=False)
        return self._parse(response, KnowledgeStoreItem)

    async def get(self, ks_id: str, item_id: str) -> KnowledgeStoreItem:
        return await self._get(f"{_store(ks_id)}/items/{seg(item_id)}", KnowledgeStoreItem)

    async def list(
        self, ks_id: str, page: int = 1, page_limit: int = 10, status: Sequence[str] | None = None
    ) -> Page[KnowledgeStoreItem]:
        params: dict[str, Any] = {"page": page, "page_limit": page_limit}
        if status:
            params["status"] = [*status]
        return await self._page(f"{_store(ks_id)}/items", KnowledgeStoreItem, params)

    async def delete(self, ks_id: str, item_id: str) -> None:
        await self._call("DELETE", f"{_store(ks_id)}/items/{seg(item_id)}")


class Collections(Resource):
    """Named subsets of a store's items."""

    @staticmethod
    def _path(ks_id: str, collection_id: str | None = None) -> str:
        path = f"{_store(ks_id)}/item-collections"
        return path if collection_id is None else f"{path}/{seg(collection_id)}"

    async def create(
        self,
        ks_id: str,
        name: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> ItemCollection:
        request = CreateItemCollectionRequest(name=name, description=description, metadata=_meta(metadata))
        response = await self._call("POST", self._path(ks_id), json_body=request.to_wire(), idempotent=False)
        return self._parse(response, ItemCollection)

    async def list(self, ks_id: str, page: int = 1, page_limit: int = 10) -> Page[ItemCollection]:
        return await self._page(self._path(ks_id), ItemCollection, {"page": page, "page_limit": page_limit})

    async def get(self, ks_id: str, collection_id: str) -> ItemCollection:
        return await self._get(self._path(ks_id, collection_id), ItemCollection)

    async def delete(self, ks_id: str, collection_id: str) -> None:
        """The collection goes; its items stay in the store."""
        await self._call("DELETE", self._path(ks_id, collection_id))

    async def items(
        self, ks_id: str, collection_id: str, page: int = 1, page_limit: int = 10
    ) -> Page[KnowledgeStoreItem]:
        path = f"{self._path(ks_id, collection_id)}/items"
        return await self._page(path, KnowledgeStoreItem, {"page": page, "page_limit": page_limit})

    async def add_items(self, ks_id: str, collection_id: str, item_ids: Sequence[str]) -> ItemCollection:
        body = ItemIdsRequest(item_ids=[*item_ids]).to_wire()
        path = f"{self._path(ks_id, collection_id)}/items/add"
        # Documented as idempotent (members already present are skipped).
        return self._parse(await self._call("POST", path, json_body=body, idempotent=True), ItemCollection)

    async def remove_items(self, ks_id: str, collection_id: str, item_ids: Sequence[str]) -> None:
        body = ItemIdsRequest(item_ids=[*item_ids]).to_wire()
        path = f"{self._path(ks_id, collection_id)}/items/remove"
        await self._call("POST", path, json_body=body, idempotent=True)


class Knowledge(Resource):
    """`.stores`, `.items` and `.collections`, plus search over one store's items."""

    def __init__(self, http: HTTPCore) -> None:
        super().__init__(http)
        self.stores = Stores(http)
        self.items = Items(http)
        self.collections = Collections(http)

    async def search(
        self,
        ks_id: str,
        query: str,
        *,
        page_token: str | None = None,
        page_size: int | None = None,
        modalities: Sequence[Literal["visual", "audio"]] | None = None,
        group_by: Literal["none", "item"] | None = None,
        filter: Mapping[str, Any] | None = None,
        include_metadata: bool | None = None,
    ) -> KnowledgeStoreSearchPage:
        if not query.strip():
            raise ValueError("query must not be empty")
        request = KnowledgeStoreSearchRequest(
            query=KSSearchQuery(text=query),
            page_token=page_token,
            page_size=page_size,
            search_options=KSSearchOptions(video=KSVideoSearchOptions(modalities=[*modalities]))
            if modalities
            else None,
            group_by=group_by,
            filter=dict(filter) if filter is not None else None,
            include_metadata=include_metadata,
        )
        path = f"{_store(ks_id)}/search"
        response = await self._call("POST", path, json_body=request.to_wire(), idempotent=True)
        return self._parse(response, KnowledgeStoreSearchPage)

    async def iter_search(
        self, ks_id: str, query: str, *, max_pages: int = 100, **kwargs: Any
    ) -> AsyncIterator[KnowledgeStoreSearchPage]:
        token: str | None = None
        for _ in range(max_pages):
            page = await self.search(ks_id, query, page_token=token, **kwargs)
            yield page
            token = page.next_page_token
            if not token:
                return
