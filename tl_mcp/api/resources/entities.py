"""Entity collections and their entities (`/entity-collections`), and the entities of an asset
(`/assets/{asset_id}/entities`). Search for an entity with `<@entity_id>` in a search's `query_text`
(`entity_query`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..models._base import Page
from ..models.entities import (
    BulkCreateEntitiesRequest,
    BulkCreateEntitiesResult,
    CreateEntityCollectionRequest,
    CreateEntityRequest,
    Entity,
    EntityAssetsRequest,
    EntityCollection,
    EntityMetadataValue,
    EntitySort,
    EntityStatus,
    UpdateEntityCollectionRequest,
    UpdateEntityRequest,
)
from ._base import Resource, seg

#: How an entity is named inside a search query: `<@entity_id>`.
ENTITY_REF = re.compile(r"<@([^<>\s]+)>")


def entity_query(entity_ids: Sequence[str], text: str | None = None) -> str:
    """A search `query_text` that finds moments showing every entity in `entity_ids` (and `text`)."""
    if not entity_ids:
        raise ValueError("name at least one entity")
    refs = " ".join(f"<@{e}>" for e in entity_ids)
    return f"{refs} {text.strip()}" if text and text.strip() else refs


def referenced_entities(query_text: str) -> list[str]:
    """The entity ids a query names as `<@entity_id>`, in order, each once."""
    return list(dict.fromkeys(ENTITY_REF.findall(query_text)))


def _collection(collection_id: str | None = None) -> str:
    return "/entity-collections" if collection_id is None else f"/entity-collections/{seg(collection_id)}"


def _entities(collection_id: str, entity_id: str | None = None) -> str:
    path = f"{_collection(collection_id)}/entities"
    return path if entity_id is None else f"{path}/{seg(entity_id)}"


def _list_params(
    page: int, page_limit: int, name: str | None, sort_by: EntitySort | None, sort_option: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"page": page, "page_limit": page_limit}
    for key, value in (("name", name), ("sort_by", sort_by), ("sort_option", sort_option)):
        if value is not None:
            params[key] = value
    return params


class EntityCollections(Resource):
    async def create(self, name: str, *, description: str | None = None) -> EntityCollection:
        body = CreateEntityCollectionRequest(name=name, description=description).to_wire()
        response = await self._call("POST", _collection(), json_body=body, idempotent=False)
        return self._parse(response, EntityCollection)

    async def get(self, collection_id: str) -> EntityCollection:
        return await self._get(_collection(collection_id), EntityCollection)

    async def list(
        self,
        page: int = 1,
        page_limit: int = 10,
        *,
        name: str | None = None,
        sort_by: EntitySort | None = None,
        sort_option: str | None = None,
    ) -> Page[EntityCollection]:
        params = _list_params(page, page_limit, name, sort_by, sort_option)
        return await self._page(_collection(), EntityCollection, params)

    async def update(
        self, collection_id: str, *, name: str | None = None, description: str | None = None
    ) -> EntityCollection:
        body = UpdateEntityCollectionRequest(name=name, description=description).to_wire()
        if not body:
            raise ValueError("nothing to update: pass name or description")
        # PATCH sets the given fields to the same values on a repeat: safe to repeat.
        response = await self._call("PATCH", _collection(collection_id), json_body=body, idempotent=True)
        return self._parse(response, EntityCollection)

    async def delete(self, collection_id: str) -> None:
        await self._call("DELETE", _collection(collection_id))


class Entities(Resource):
    async def create(
        self,
        collection_id: str,
        name: str,
        asset_ids: Sequence[str],
        *,
        description: str | None = None,
        metadata: Mapping[str, EntityMetadataValue] | None = None,
    ) -> Entity:
        request = CreateEntityRequest(
            name=name,
            asset_ids=[*asset_ids],
            description=description,
            metadata=dict(metadata) if metadata is not None else None,
        )
        response = await self._call(
            "POST", _entities(collection_id), json_body=request.to_wire(), idempotent=False
        )
        return self._parse(response, Entity)

    async def create_bulk(
        self, collection_id: str, entities: Sequence[CreateEntityRequest]
    ) -> BulkCreateEntitiesResult:
        body = BulkCreateEntitiesRequest(entities=[*entities]).to_wire()
        path = f"{_entities(collection_id)}/bulk"
        return self._parse(
            await self._call("POST", path, json_body=body, idempotent=False), BulkCreateEntitiesResult
        )

    async def get(self, collection_id: str, entity_id: str) -> Entity:
        return await self._get(_entities(collection_id, entity_id), Entity)

    async def list(
        self,
        collection_id: str,
        page: int = 1,
        page_limit: int = 10,
        *,
        name: str | None = None,
        status: EntityStatus | None = None,
        sort_by: EntitySort | None = None,
        sort_option: str | None = None,
    ) -> Page[Entity]:
        params = _list_params(page, page_limit, name, sort_by, sort_option)
        if status is not None:
            params["status"] = status
        return await self._page(_entities(collection_id), Entity, params)

    async def of_asset(self, asset_id: str, page: int = 1, page_limit: int = 10) -> Page[Entity]:
        """The entities whose reference assets include `asset_id`, in any collection."""
        path = f"/assets/{seg(asset_id)}/entities"
        return await self._page(path, Entity, {"page": page, "page_limit": page_limit})

    async def update(
        self,
        collection_id: str,
        entity_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, EntityMetadataValue] | None = None,
    ) -> Entity:
        """Name, description or metadata (metadata given replaces the whole map); assets: `add_assets`."""
        request = UpdateEntityRequest(
            name=name, description=description, metadata=dict(metadata) if metadata is not None else None
        )
        body = request.to_wire()
        if not body:
            raise ValueError("nothing to update: pass name, description or metadata")
        path = _entities(collection_id, entity_id)
        return self._parse(await self._call("PATCH", path, json_body=body, idempotent=True), Entity)

    async def add_assets(self, collection_id: str, entity_id: str, asset_ids: Sequence[str]) -> Entity:
        body = EntityAssetsRequest(asset_ids=[*asset_ids]).to_wire()
        path = f"{_entities(collection_id, entity_id)}/assets"
        # Adding an asset that is already linked changes nothing: safe to repeat.
        return self._parse(await self._call("POST", path, json_body=body, idempotent=True), Entity)

    async def remove_assets(self, collection_id: str, entity_id: str, asset_ids: Sequence[str]) -> Entity:
        body = EntityAssetsRequest(asset_ids=[*asset_ids]).to_wire()
        path = f"{_entities(collection_id, entity_id)}/assets"
        return self._parse(await self._call("DELETE", path, json_body=body, idempotent=True), Entity)

    async def delete(self, collection_id: str, entity_id: str) -> None:
        await self._call("DELETE", _entities(collection_id, entity_id))
