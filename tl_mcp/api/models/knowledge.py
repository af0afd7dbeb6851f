"""Knowledge stores, their items, item collections and KS search."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ._base import MetadataValue, RequestModel, WireModel


class KnowledgeStore(WireModel):
    id: str = Field(alias="_id")
    name: str | None = None
    description: str | None = None
    ingestion_config: dict[str, Any] | None = None
    item_count: int | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None


class CreateKnowledgeStoreRequest(RequestModel):
    name: str
    description: str | None = None
    ingestion_config: dict[str, Any] | None = None
    metadata: dict[str, MetadataValue] | None = None


class UpdateKnowledgeStoreRequest(RequestModel):
    name: str | None = None
    description: str | None = None
    metadata: dict[str, MetadataValue] | None = None


class KnowledgeStoreItem(WireModel):
    id: str = Field(alias="_id")
    asset_id: str | None = None
    asset_type: str | None = None
    status: str | None = None
    system_metadata: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("ready", "failed")


class AddItemRequest(RequestModel):
    asset_id: str
    asset_type: Literal["video", "image"] | None = None
    metadata: dict[str, MetadataValue] | None = None


class ItemCollection(WireModel):
    id: str = Field(alias="_id")
    knowledge_store_id: str | None = None
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    member_count: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class CreateItemCollectionRequest(RequestModel):
    name: str
    description: str | None = None
    metadata: dict[str, MetadataValue] | None = None


class ItemIdsRequest(RequestModel):
    item_ids: list[str]


class KSSearchQuery(RequestModel):
    text: str


class KSVideoSearchOptions(RequestModel):
    modalities: list[Literal["visual", "audio"]]


class KSSearchOptions(RequestModel):
    video: KSVideoSearchOptions | None = None


class KnowledgeStoreSearchRequest(RequestModel):
    query: KSSearchQuery
    filter: dict[str, Any] | None = None
    search_options: KSSearchOptions | None = None
    group_by: Literal["none", "item"] | None = None
    page_size: int | None = None
    page_token: str | None = None
    include_metadata: bool | None = None


class KSMatch(WireModel):
    start_sec: float
    end_sec: float
    modalities: list[str] = Field(default_factory=list)
    transcription: str | None = None


class KSSearchHit(WireModel):
    asset_type: str
    rank: int | None = None
    item_id: str
    metadata: dict[str, Any] | None = None
    matches: list[KSMatch] = Field(default_factory=list)


class KnowledgeStoreSearchPage(WireModel):
    data: list[KSSearchHit] = Field(default_factory=list)
    next_page_token: str | None = None
    effective_search_options: dict[str, Any] = Field(default_factory=dict)
