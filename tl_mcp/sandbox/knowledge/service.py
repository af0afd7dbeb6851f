"""Knowledge stores for the sandbox: stores, their items and item collections (v1.3 §12).

Adding an asset creates an item in ``queued``; a background task moves it to ``processing`` while the
sandbox's own ingest of that asset runs, then to ``ready`` (searchable, usable by Jockey) or ``failed``
with the reason. Search over a store lives in :mod:`tl_mcp.sandbox.knowledge.search`; the rows live in
``sandbox/store/ks_*.py``. The service checks each request and returns records, which
:mod:`tl_mcp.sandbox.knowledge.render` turns into the API's JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tl_mcp.sandbox.errors import invalid, missing, not_found
from tl_mcp.sandbox.knowledge.ingestion import validate_ingestion_config
from tl_mcp.sandbox.knowledge.models import AssetInfo, Evidence, Hit, JockeyOptions, JsonObj, SandboxHooks
from tl_mcp.sandbox.metadata import ITEM_METADATA_LIMITS, STORE_METADATA_LIMITS, check_metadata
from tl_mcp.sandbox.store import ks_collections, ks_items, ks_stores
from tl_mcp.sandbox.store.db import Database
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.ks_collections import CollectionRecord
from tl_mcp.sandbox.store.ks_items import ItemRecord
from tl_mcp.sandbox.store.ks_stores import StoreRecord
from tl_mcp.sandbox.system_metadata import system_metadata
from tl_mcp.sandbox.web import body_str

log = logging.getLogger(__name__)

ITEM_STATUSES = ("queued", "pending", "processing", "ready", "failed")
MODALITIES = ("visual", "audio")
SEARCH_POOL = 200  # moments ranked per search; pages are cut from this list


def _evidence(item: ItemRecord, hit: Hit, asset: AssetInfo | None) -> Evidence:
    system = item.system_metadata or {}
    title = (asset.filename if asset else None) or system.get("filename") or item.asset_id
    return Evidence(
        item_id=item.id,
        asset_id=item.asset_id,
        title=title,
        start=hit.start,
        end=hit.end,
        text=hit.text,
        source=hit.source,
        score=hit.score,
        thumbnail_url=hit.thumbnail_url or (asset.thumbnail_url if asset else None),
        hls_url=asset.hls_url if asset else None,
        context=hit.context,
    )


class KnowledgeService:
    """Knowledge stores over SQLite plus background item processing; shared with Jockey."""

    def __init__(self, db: Database, hooks: SandboxHooks, options: JockeyOptions | None = None) -> None:
        self.db = db
        self.hooks = hooks
        self.options = options or JockeyOptions()

    # ---- stores -------------------------------------------------------------------------------------

    def store_row(self, store_id: str) -> StoreRecord:
        """The store, or the TwelveLabs 404 for ``store_id``."""
        store = ks_stores.get(self.db, store_id)
        if store is None:
            raise not_found(store_id, "knowledge_stores")
        return store

    def item_count(self, store_id: str) -> int:
        return ks_items.count(self.db, store_id)

    def list_stores(self, *, page: int, limit: int, order: str) -> tuple[list[tuple[StoreRecord, int]], int]:
        """A page of stores in ``order``, each with its item count, and how many stores there are."""
        stores, total = ks_stores.page(self.db, order=order, limit=limit, offset=(page - 1) * limit)
        return [(s, self.item_count(s.id)) for s in stores], total

    def create_store(self, body: JsonObj) -> StoreRecord:
        name = body_str(body, "name", required=True, max_len=256)
        description = body_str(body, "description", max_len=10_000)
        metadata = check_metadata(
            body.get("metadata") or {}, "metadata", nulls="reject", limits=STORE_METADATA_LIMITS
        )
        config = body.get("ingestion_config")
        if config is not None:
            config = validate_ingestion_config(config)
        store_id = new_id("ks")
        ks_stores.insert(
            self.db, store_id, name=name, description=description, ingestion_config=config, metadata=metadata
        )
        return self.store_row(store_id)

    def update_store(self, store_id: str, body: JsonObj) -> StoreRecord:
        self.store_row(store_id)
        if "ingestion_config" in body:
            raise invalid("`ingestion_config` cannot be changed after the knowledge store is created.")
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = body_str(body, "name", required=True, max_len=256)
        if "description" in body:
            changes["description"] = body_str(body, "description", max_len=10_000)
        if "metadata" in body:
            changes["metadata"] = check_metadata(
                body["metadata"], "metadata", nulls="reject", limits=STORE_METADATA_LIMITS
            )
        ks_stores.update(self.db, store_id, changes)
        return self.store_row(store_id)

    def delete_store(self, store_id: str) -> None:
        self.store_row(store_id)
        ks_stores.delete(self.db, store_id)

    # ---- items --------------------------------------------------------------------------------------

    def item_row(self, store_id: str, item_id: str) -> ItemRecord:
        """The store's item, or the TwelveLabs 404 for the store or the item."""
        self.store_row(store_id)
        item = ks_items.get(self.db, item_id, store_id)
        if item is None:
            raise not_found(item_id, f"knowledge store {store_id} items")
        return item

    async def add_item(self, store_id: str, body: JsonObj) -> ItemRecord:
        self.store_row(store_id)
        asset_id = body_str(body, "asset_id", required=True, max_len=200)
        asset_type = body.get("asset_type")
        if asset_type is not None and asset_type not in ("video", "image"):
            raise invalid("`asset_type` must be `video` or `image`.")
        metadata = check_metadata(
            body.get("metadata") or {}, "metadata", nulls="reject", limits=ITEM_METADATA_LIMITS
        )
        asset = await self.hooks.get_asset(asset_id)
        if asset is None:
            raise invalid(f"`asset_id` `{asset_id}` does not exist. Upload the file with POST /assets first.")
        if asset_type is not None and asset_type != asset.asset_type:
            raise invalid(f"`asset_type` is `{asset_type}` but asset `{asset_id}` is a {asset.asset_type}.")
        item_id = new_id("ksi")
        with self.db.tx() as conn:
            ks_items.insert(
                conn,
                item_id,
                store_id=store_id,
                asset_id=asset_id,
                asset_type=asset.asset_type,
                system_metadata=system_metadata(asset, typed=True),
                metadata=metadata,
            )
            ks_stores.touch(conn, store_id)
        # Read before enqueueing: the worker may finish a quick item before this answer is sent, and the
        # contract is that the item is created `queued`.
        created = self.item_row(store_id, item_id)
        self.hooks.enqueue_item(item_id, self.options.item_timeout_s)
        return created

    def list_items(
        self, store_id: str, *, page: int, limit: int, order: str, statuses: Sequence[str]
    ) -> tuple[list[ItemRecord], int]:
        """A page of the store's items (of ``statuses``, when given) in ``order``, and how many there are."""
        self.store_row(store_id)
        for status in statuses:
            if status not in ITEM_STATUSES:
                raise invalid(f"`status` must be one of {', '.join(ITEM_STATUSES)}; got `{status[:40]}`.")
        return ks_items.page(
            self.db, store_id, statuses=statuses, order=order, limit=limit, offset=(page - 1) * limit
        )

    def delete_item(self, store_id: str, item_id: str) -> None:
        self.item_row(store_id, item_id)
        with self.db.tx() as conn:
            ks_collections.drop_item(conn, item_id)
            ks_items.delete(conn, item_id)
            ks_stores.touch(conn, store_id)

    # ---- item collections -------------------------------------------------------------------------

    def collection_row(self, store_id: str, collection_id: str) -> CollectionRecord:
        """The store's collection, or the TwelveLabs 404 for the store or the collection."""
        self.store_row(store_id)
        collection = ks_collections.get(self.db, store_id, collection_id)
        if collection is None:
            raise not_found(collection_id, f"knowledge store {store_id} item collections")
        return collection

    def _name_taken(self, store_id: str, name: str, except_id: str | None = None) -> None:
        owner = ks_collections.id_named(self.db, store_id, name)
        if owner is not None and owner != except_id:
            raise invalid(
                f"An item collection named `{name}` already exists in this store; pick another name."
            )

    def list_collections(
        self, store_id: str, *, page: int, limit: int, order: str
    ) -> tuple[list[CollectionRecord], int]:
        self.store_row(store_id)
        return ks_collections.page(self.db, store_id, order=order, limit=limit, offset=(page - 1) * limit)

    def create_collection(self, store_id: str, body: JsonObj) -> CollectionRecord:
        self.store_row(store_id)
        name = body_str(body, "name", required=True, max_len=256)
        description = body_str(body, "description")
        metadata = check_metadata(
            body.get("metadata") or {}, "metadata", nulls="reject", limits=STORE_METADATA_LIMITS
        )
        self._name_taken(store_id, name)
        cid = new_id("ksic")
        ks_collections.insert(
            self.db, cid, store_id=store_id, name=name, description=description, metadata=metadata
        )
        return self.collection_row(store_id, cid)

    def update_collection(self, store_id: str, cid: str, body: JsonObj) -> CollectionRecord:
        self.collection_row(store_id, cid)
        changes: dict[str, Any] = {}
        if "name" in body:
            name = body_str(body, "name", required=True, max_len=256)
            self._name_taken(store_id, name, except_id=cid)
            changes["name"] = name
        if "description" in body:
            changes["description"] = body_str(body, "description")
        if "metadata" in body:
            changes["metadata"] = check_metadata(
                body["metadata"], "metadata", nulls="reject", limits=STORE_METADATA_LIMITS
            )
        ks_collections.update(self.db, cid, changes)
        return self.collection_row(store_id, cid)

    def delete_collection(self, store_id: str, cid: str) -> None:
        self.collection_row(store_id, cid)
        ks_collections.delete(self.db, cid)

    def collection_items(
        self, store_id: str, cid: str, *, page: int, limit: int
    ) -> tuple[list[ItemRecord], int]:
        self.collection_row(store_id, cid)
        return ks_collections.members_page(self.db, cid, limit=limit, offset=(page - 1) * limit)

    @staticmethod
    def _item_ids(body: JsonObj) -> list[str]:
        ids = body.get("item_ids")
        if ids is None:
            raise missing("item_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise invalid("`item_ids` must be an array of item id strings.")
        if not ids or len(ids) > 500:
            raise invalid("`item_ids` must hold between 1 and 500 ids.")
        return list(dict.fromkeys(ids))

    def add_members(self, store_id: str, cid: str, body: JsonObj) -> CollectionRecord:
        self.collection_row(store_id, cid)
        ids = self._item_ids(body)
        known = ks_items.known_ids(self.db, store_id, ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise invalid(
                f"These ids are not items of knowledge store {store_id}: {', '.join(unknown[:10])}."
            )
        ks_collections.add_members(self.db, cid, ids)
        return self.collection_row(store_id, cid)

    def remove_members(self, store_id: str, cid: str, body: JsonObj) -> None:
        self.collection_row(store_id, cid)
        ks_collections.remove_members(self.db, cid, self._item_ids(body))

    def collection_item_ids(self, cid: str) -> list[str]:
        return ks_collections.member_ids(self.db, cid)

    # ---- retrieval (store search and Jockey) ---------------------------------------------------------

    def ready_items(self, store_id: str, item_ids: Sequence[str] | None = None) -> list[ItemRecord]:
        items = ks_items.ready(self.db, store_id)
        if item_ids is not None:
            wanted = set(item_ids)
            items = [i for i in items if i.id in wanted]
        return items

    def status_counts(self, store_id: str) -> dict[str, int]:
        return ks_items.status_counts(self.db, store_id)

    async def moments(
        self,
        store_id: str,
        query: str,
        *,
        item_ids: Sequence[str] | None = None,
        modalities: Sequence[str] = MODALITIES,
        limit: int = SEARCH_POOL,
    ) -> list[tuple[Evidence, Hit]]:
        """Ranked moments for ``query`` across the store's ready items (optionally only ``item_ids``)."""
        items = self.ready_items(store_id, item_ids)
        if not items or not query.strip():
            return []
        by_asset: dict[str, ItemRecord] = {}
        for item in items:
            by_asset.setdefault(item.asset_id, item)
        hits = await self.hooks.retrieve(query, list(by_asset), list(modalities), limit)
        assets: dict[str, AssetInfo | None] = {}
        out: list[tuple[Evidence, Hit]] = []
        for hit in hits:
            hit_item = by_asset.get(hit.asset_id)
            if hit_item is None:
                continue
            if hit.asset_id not in assets:
                assets[hit.asset_id] = await self.hooks.get_asset(hit.asset_id)
            asset = assets[hit.asset_id]
            out.append((_evidence(hit_item, hit, asset), hit))
        return out

    async def neighbour(
        self, moment: Evidence, *, before: bool, sources: Sequence[str] = ()
    ) -> Evidence | None:
        """The moment of the same item just before (or after) ``moment``: "what came just before that";
        only text of ``sources`` when given ("what was said before that")."""
        item = ks_items.get(self.db, moment.item_id)
        if item is None:
            return None
        hit = await self.hooks.neighbour(
            moment.asset_id, moment.start, moment.end, before=before, sources=sources
        )
        if hit is None:
            return None
        return _evidence(item, hit, await self.hooks.get_asset(moment.asset_id))
