"""Entity collections and entities: people, objects or brands registered by reference assets, found in
videos by searching for `<@entity_id>`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ._base import RequestModel, WireModel

#: Entity metadata values: the contract allows strings, integers, floats and booleans (arrays and objects
#: must be sent as strings).
EntityMetadataValue = str | int | float | bool

EntityStatus = Literal["processing", "ready"]
EntitySort = Literal["created_at", "updated_at", "name"]


class EntityCollection(WireModel):
    id: str = Field(alias="_id")
    name: str | None = None
    description: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Entity(WireModel):
    id: str = Field(alias="_id")
    entity_collection_id: str | None = None
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    asset_ids: list[str] = Field(default_factory=list)
    status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"


class CreateEntityCollectionRequest(RequestModel):
    name: str
    description: str | None = None


class UpdateEntityCollectionRequest(RequestModel):
    name: str | None = None
    description: str | None = None


class CreateEntityRequest(RequestModel):
    name: str
    asset_ids: list[str] = Field(min_length=1)
    description: str | None = None
    metadata: dict[str, EntityMetadataValue] | None = None


class BulkCreateEntitiesRequest(RequestModel):
    entities: list[CreateEntityRequest] = Field(min_length=1)


class UpdateEntityRequest(RequestModel):
    name: str | None = None
    description: str | None = None
    metadata: dict[str, EntityMetadataValue] | None = None


class EntityAssetsRequest(RequestModel):
    asset_ids: list[str] = Field(min_length=1)


class BulkCreatedEntity(WireModel):
    id: str = Field(alias="_id")
    name: str | None = None
    status: str | None = None


class BulkEntityError(WireModel):
    entity_index: int | None = None
    entity_name: str | None = None
    error_reason: str | None = None


class BulkCreateEntitiesResult(WireModel):
    success_count: int | None = None
    failed_count: int | None = None
    entities: list[BulkCreatedEntity] = Field(default_factory=list)
    errors: list[BulkEntityError] = Field(default_factory=list)
