"""Knowledge-store records as the v1.3 API's JSON (`KnowledgeStore`, `KnowledgeStoreItem`, collections)."""

from __future__ import annotations

from tl_mcp.sandbox.knowledge.models import JsonObj
from tl_mcp.sandbox.store.ks_collections import CollectionRecord
from tl_mcp.sandbox.store.ks_items import ItemRecord
from tl_mcp.sandbox.store.ks_stores import StoreRecord


def store_json(store: StoreRecord, item_count: int) -> JsonObj:
    out: JsonObj = {"_id": store.id, "name": store.name}
    if store.description is not None:
        out["description"] = store.description
    if store.ingestion_config:
        out["ingestion_config"] = store.ingestion_config
    out.update(
        item_count=item_count,
        metadata=store.metadata,
        created_at=store.created_at,
        updated_at=store.updated_at,
    )
    return out


def item_json(item: ItemRecord) -> JsonObj:
    out: JsonObj = {
        "_id": item.id,
        "asset_type": item.asset_type,
        "asset_id": item.asset_id,
        "status": item.status,
    }
    if item.system_metadata:
        out["system_metadata"] = item.system_metadata
    out.update(metadata=item.metadata, created_at=item.created_at, updated_at=item.updated_at)
    if item.status == "failed":
        # Not in the item schema, which is open; the same `{message}` shape as a failed asset's `error`.
        out["error"] = {"message": item.error or "processing failed"}
    return out


def collection_json(collection: CollectionRecord) -> JsonObj:
    out: JsonObj = {
        "_id": collection.id,
        "knowledge_store_id": collection.store_id,
        "name": collection.name,
    }
    if collection.description is not None:
        out["description"] = collection.description
    out.update(
        metadata=collection.metadata,
        member_count=collection.member_count,
        created_at=collection.created_at,
        updated_at=collection.updated_at,
    )
    return out
