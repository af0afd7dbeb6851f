"""Knowledge stores for the sandbox: stores, items, item collections and store search (v1.3 §12).

Adding an asset creates an item in ``queued``; a background task moves it to ``processing`` while the
sandbox's own ingest of that asset runs, then to ``ready`` (searchable, usable by Jockey) or ``failed``
with the reason. Search ranks moments across the store's ready items with the sandbox's retrieval and
pages through them with page tokens that expire (an expired token answers 410, as the spec says).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from tl_mcp.sandbox.errors import ApiError, found, invalid, missing
from tl_mcp.sandbox.knowledge.models import AssetInfo, Evidence, Hit, JockeyOptions, JsonObj, SandboxHooks
from tl_mcp.sandbox.metadata import ITEM_METADATA_LIMITS, STORE_METADATA_LIMITS, check_metadata
from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.web import body_str

log = logging.getLogger(__name__)

ITEM_STATUSES = ("queued", "pending", "processing", "ready", "failed")
MODALITIES = ("visual", "audio")
_MAX_PAGE = 50
_SEARCH_POOL = 200  # moments ranked per search; pages are cut from this list


def store_json_of(row: sqlite3.Row, item_count: int) -> JsonObj:
    out: JsonObj = {"_id": row["id"], "name": row["name"]}
    if row["description"] is not None:
        out["description"] = row["description"]
    if row["ingestion_config"]:
        out["ingestion_config"] = loads(row["ingestion_config"])
    out.update(
        item_count=item_count,
        metadata=loads(row["metadata"]) or {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
    return out


def item_json(row: sqlite3.Row) -> JsonObj:
    out: JsonObj = {
        "_id": row["id"],
        "asset_type": row["asset_type"],
        "asset_id": row["asset_id"],
        "status": row["status"],
    }
    if row["system_metadata"]:
        out["system_metadata"] = loads(row["system_metadata"])
    out.update(
        metadata=loads(row["metadata"]) or {}, created_at=row["created_at"], updated_at=row["updated_at"]
    )
    if row["status"] == "failed":
        # Not in the item schema, which is open; the same `{message}` shape as a failed asset's `error`.
        out["error"] = {"message": row["error"] or "processing failed"}
    return out


def system_metadata(asset: AssetInfo) -> JsonObj:
    fields: dict[str, Any] = {
        "asset_type": asset.asset_type,
        "filename": asset.filename,
        "duration": asset.duration,
        "fps": asset.fps,
        "width": asset.width,
        "height": asset.height,
        "codec_name": asset.codec_name,
        "size": asset.size,
    }
    if asset.asset_type == "image":
        fields.pop("duration")
        fields.pop("fps")
    return {k: v for k, v in fields.items() if v is not None}


def _validate_ingestion_config(value: Any) -> JsonObj:
    if not isinstance(value, dict) or not isinstance(value.get("enrichment_config"), dict):
        raise invalid("`ingestion_config` must be an object with an `enrichment_config` object.")
    enrichment = value["enrichment_config"]
    kind = enrichment.get("type")
    if kind is None:  # April-2026 form: no discriminator, exactly one of the two fields
        kind = (
            "json_schema"
            if "json_schema" in enrichment
            else "description"
            if "description" in enrichment
            else None
        )
    if kind == "description":
        if not isinstance(enrichment.get("description"), str) or not enrichment["description"].strip():
            raise invalid("`ingestion_config.enrichment_config.description` must be a non-empty string.")
    elif kind == "json_schema":
        schema = enrichment.get("json_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise ApiError(
                422,
                "parameter_invalid",
                "`ingestion_config.enrichment_config.json_schema` must be a JSON Schema whose root type is "
                "`object`.",
            )
    else:
        raise invalid("`ingestion_config.enrichment_config.type` must be `description` or `json_schema`.")
    return value


class KnowledgeService:
    """Knowledge stores over SQLite plus background item processing; shared with Jockey."""

    def __init__(self, db: Database, hooks: SandboxHooks, options: JockeyOptions | None = None) -> None:
        self.db = db
        self.hooks = hooks
        self.options = options or JockeyOptions()

    # ---- stores -------------------------------------------------------------------------------------

    def store_row(self, store_id: str) -> sqlite3.Row:
        row = self.db.one("SELECT * FROM ks_stores WHERE id = ?", (store_id,))
        return found(row, store_id, "knowledge_stores")

    def item_count(self, store_id: str) -> int:
        row = self.db.one("SELECT COUNT(*) AS n FROM ks_items WHERE store_id = ?", (store_id,))
        return int(row["n"]) if row else 0

    def store_json(self, store_id: str) -> JsonObj:
        return store_json_of(self.store_row(store_id), self.item_count(store_id))

    def create_store(self, body: JsonObj) -> JsonObj:
        name = body_str(body, "name", required=True, max_len=256)
        description = body_str(body, "description", max_len=10_000)
        metadata = check_metadata(
            body.get("metadata") or {}, "metadata", nulls="reject", limits=STORE_METADATA_LIMITS
        )
        config = body.get("ingestion_config")
        if config is not None:
            config = _validate_ingestion_config(config)
        store_id, stamp = new_id("ks"), now_iso()
        self.db.run(
            "INSERT INTO ks_stores (id, name, description, ingestion_config, metadata, created_at,"
            " updated_at)"
            " "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (store_id, name, description, dumps(config) if config else None, dumps(metadata), stamp, stamp),
        )
        return self.store_json(store_id)

    def update_store(self, store_id: str, body: JsonObj) -> JsonObj:
        self.store_row(store_id)
        if "ingestion_config" in body:
            raise invalid("`ingestion_config` cannot be changed after the knowledge store is created.")
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = body_str(body, "name", required=True, max_len=256)
        if "description" in body:
            changes["description"] = body_str(body, "description", max_len=10_000)
        if "metadata" in body:
            changes["metadata"] = dumps(
                check_metadata(body["metadata"], "metadata", nulls="reject", limits=STORE_METADATA_LIMITS)
            )
        self._update("ks_stores", store_id, changes)
        return self.store_json(store_id)

    def _update(self, table: str, row_id: str, changes: dict[str, Any]) -> None:
        """Apply a PATCH's validated `changes` (column names are ours, never the caller's); none: no-op."""
        if not changes:
            return
        changes = {**changes, "updated_at": now_iso()}
        assignments = ", ".join(f"{k} = ?" for k in changes)
        self.db.run(f"UPDATE {table} SET {assignments} WHERE id = ?", (*changes.values(), row_id))

    def delete_store(self, store_id: str) -> None:
        self.store_row(store_id)
        with self.db.tx() as conn:
            conn.execute(
                "DELETE FROM ks_collection_members WHERE collection_id IN "
                "(SELECT id FROM ks_collections WHERE store_id = ?)",
                (store_id,),
            )
            conn.execute("DELETE FROM ks_collections WHERE store_id = ?", (store_id,))
            conn.execute("DELETE FROM ks_items WHERE store_id = ?", (store_id,))
            conn.execute("DELETE FROM ks_search_pages WHERE store_id = ?", (store_id,))
            conn.execute("DELETE FROM ks_stores WHERE id = ?", (store_id,))

    # ---- items --------------------------------------------------------------------------------------

    def item_row(self, store_id: str, item_id: str) -> sqlite3.Row:
        self.store_row(store_id)
        row = self.db.one("SELECT * FROM ks_items WHERE id = ? AND store_id = ?", (item_id, store_id))
        return found(row, item_id, f"knowledge store {store_id} items")

    async def add_item(self, store_id: str, body: JsonObj) -> JsonObj:
        self.store_row(store_id)
        asset_id = body_str(body, "asset_id", required=True, max_len=200)
        assert asset_id is not None
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
        item_id, stamp = new_id("ksi"), now_iso()
        self.db.run(
            "INSERT INTO ks_items (id, store_id, asset_id, asset_type, status, system_metadata, metadata, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
            (
                item_id,
                store_id,
                asset_id,
                asset.asset_type,
                dumps(system_metadata(asset)),
                dumps(metadata),
                stamp,
                stamp,
            ),
        )
        self.db.run("UPDATE ks_stores SET updated_at = ? WHERE id = ?", (stamp, store_id))
        # Read before enqueueing: the worker may finish a quick item before this answer is sent, and the
        # contract is that the item is created `queued`.
        created = item_json(self.item_row(store_id, item_id))
        self.hooks.enqueue_item(item_id, self.options.item_timeout_s)
        return created

    def list_items(
        self, store_id: str, *, page: int, limit: int, order: str, statuses: Sequence[str]
    ) -> tuple[list[JsonObj], int]:
        """A page of the store's items (of ``statuses``, when given) in ``order``, and how many there are."""
        self.store_row(store_id)
        for status in statuses:
            if status not in ITEM_STATUSES:
                raise invalid(f"`status` must be one of {', '.join(ITEM_STATUSES)}; got `{status[:40]}`.")
        where, params = "store_id = ?", [store_id]
        if statuses:
            where += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(statuses)
        total_row = self.db.one(f"SELECT COUNT(*) AS n FROM ks_items WHERE {where}", params)
        rows = self.db.all(
            f"SELECT * FROM ks_items WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, limit, (page - 1) * limit),
        )
        return [item_json(r) for r in rows], int(total_row["n"]) if total_row else 0

    def delete_item(self, store_id: str, item_id: str) -> None:
        self.item_row(store_id, item_id)
        with self.db.tx() as conn:
            conn.execute("DELETE FROM ks_collection_members WHERE item_id = ?", (item_id,))
            conn.execute("DELETE FROM ks_items WHERE id = ?", (item_id,))
            conn.execute("UPDATE ks_stores SET updated_at = ? WHERE id = ?", (now_iso(), store_id))

    # ---- item collections -------------------------------------------------------------------------

    def collection_row(self, store_id: str, collection_id: str) -> sqlite3.Row:
        self.store_row(store_id)
        row = self.db.one(
            "SELECT * FROM ks_collections WHERE id = ? AND store_id = ?", (collection_id, store_id)
        )
        return found(row, collection_id, f"knowledge store {store_id} item collections")

    def collection_json(self, row: sqlite3.Row) -> JsonObj:
        count = self.db.one(
            "SELECT COUNT(*) AS n FROM ks_collection_members WHERE collection_id = ?", (row["id"],)
        )
        out: JsonObj = {"_id": row["id"], "knowledge_store_id": row["store_id"], "name": row["name"]}
        if row["description"] is not None:
            out["description"] = row["description"]
        out.update(
            metadata=loads(row["metadata"]) or {},
            member_count=int(count["n"]) if count else 0,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
        return out

    def _name_taken(self, store_id: str, name: str, except_id: str | None = None) -> None:
        row = self.db.one("SELECT id FROM ks_collections WHERE store_id = ? AND name = ?", (store_id, name))
        if row is not None and row["id"] != except_id:
            raise invalid(
                f"An item collection named `{name}` already exists in this store; pick another name."
            )

    def create_collection(self, store_id: str, body: JsonObj) -> JsonObj:
        self.store_row(store_id)
        name = body_str(body, "name", required=True, max_len=256)
        assert name is not None
        description = body_str(body, "description")
        metadata = check_metadata(
            body.get("metadata") or {}, "metadata", nulls="reject", limits=STORE_METADATA_LIMITS
        )
        self._name_taken(store_id, name)
        cid, stamp = new_id("ksic"), now_iso()
        self.db.run(
            "INSERT INTO ks_collections (id, store_id, name, description, metadata, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cid, store_id, name, description, dumps(metadata), stamp, stamp),
        )
        return self.collection_json(self.collection_row(store_id, cid))

    def update_collection(self, store_id: str, cid: str, body: JsonObj) -> JsonObj:
        self.collection_row(store_id, cid)
        changes: dict[str, Any] = {}
        if "name" in body:
            name = body_str(body, "name", required=True, max_len=256)
            assert name is not None
            self._name_taken(store_id, name, except_id=cid)
            changes["name"] = name
        if "description" in body:
            changes["description"] = body_str(body, "description")
        if "metadata" in body:
            changes["metadata"] = dumps(
                check_metadata(body["metadata"], "metadata", nulls="reject", limits=STORE_METADATA_LIMITS)
            )
        self._update("ks_collections", cid, changes)
        return self.collection_json(self.collection_row(store_id, cid))

    def _item_ids(self, store_id: str, body: JsonObj) -> list[str]:
        ids = body.get("item_ids")
        if ids is None:
            raise missing("item_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise invalid("`item_ids` must be an array of item id strings.")
        if not ids or len(ids) > 500:
            raise invalid("`item_ids` must hold between 1 and 500 ids.")
        return list(dict.fromkeys(ids))

    def add_members(self, store_id: str, cid: str, body: JsonObj) -> JsonObj:
        self.collection_row(store_id, cid)
        ids = self._item_ids(store_id, body)
        known = {
            r["id"]
            for r in self.db.all(
                f"SELECT id FROM ks_items WHERE store_id = ? AND id IN ({', '.join('?' for _ in ids)})",
                (store_id, *ids),
            )
        }
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise invalid(
                f"These ids are not items of knowledge store {store_id}: {', '.join(unknown[:10])}."
            )
        with self.db.tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO ks_collection_members (collection_id, item_id) VALUES (?, ?)",
                [(cid, i) for i in ids],
            )
            conn.execute("UPDATE ks_collections SET updated_at = ? WHERE id = ?", (now_iso(), cid))
        return self.collection_json(self.collection_row(store_id, cid))

    def remove_members(self, store_id: str, cid: str, body: JsonObj) -> None:
        self.collection_row(store_id, cid)
        ids = self._item_ids(store_id, body)
        with self.db.tx() as conn:
            conn.executemany(
                "DELETE FROM ks_collection_members WHERE collection_id = ? AND item_id = ?",
                [(cid, i) for i in ids],
            )
            conn.execute("UPDATE ks_collections SET updated_at = ? WHERE id = ?", (now_iso(), cid))

    def collection_item_ids(self, cid: str) -> list[str]:
        return [
            r["item_id"]
            for r in self.db.all("SELECT item_id FROM ks_collection_members WHERE collection_id = ?", (cid,))
        ]

    # ---- retrieval (store search and Jockey) ---------------------------------------------------------

    def ready_items(self, store_id: str, item_ids: Sequence[str] | None = None) -> list[sqlite3.Row]:
        rows = self.db.all("SELECT * FROM ks_items WHERE store_id = ? AND status = 'ready'", (store_id,))
        if item_ids is not None:
            wanted = set(item_ids)
            rows = [r for r in rows if r["id"] in wanted]
        return rows

    def status_counts(self, store_id: str) -> dict[str, int]:
        rows = self.db.all(
            "SELECT status, COUNT(*) AS n FROM ks_items WHERE store_id = ? GROUP BY status", (store_id,)
        )
        return {r["status"]: int(r["n"]) for r in rows}

    async def moments(
        self,
        store_id: str,
        query: str,
        *,
        item_ids: Sequence[str] | None = None,
        modalities: Sequence[str] = MODALITIES,
        limit: int = _SEARCH_POOL,
    ) -> list[tuple[Evidence, Hit]]:
        """Ranked moments for ``query`` across the store's ready items (optionally only ``item_ids``)."""
        items = self.ready_items(store_id, item_ids)
        if not items or not query.strip():
            return []
        by_asset: dict[str, sqlite3.Row] = {}
        for row in items:
            by_asset.setdefault(row["asset_id"], row)
        hits = await self.hooks.retrieve(query, list(by_asset), list(modalities), limit)
        assets: dict[str, AssetInfo | None] = {}
        out: list[tuple[Evidence, Hit]] = []
        for hit in hits:
            hit_row = by_asset.get(hit.asset_id)
            if hit_row is None:
                continue
            row = hit_row
            if hit.asset_id not in assets:
                assets[hit.asset_id] = await self.hooks.get_asset(hit.asset_id)
            asset = assets[hit.asset_id]
            system = loads(row["system_metadata"]) or {}
            title = (asset.filename if asset else None) or system.get("filename") or row["asset_id"]
            moment = Evidence(
                item_id=row["id"],
                asset_id=row["asset_id"],
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
            out.append((moment, hit))
        return out

    async def search(self, store_id: str, body: JsonObj) -> JsonObj:
        self.store_row(store_id)
        token = body.get("page_token")
        if token is not None:
            if not isinstance(token, str) or not token:
                raise invalid("`page_token` must be the `next_page_token` string of a previous search.")
            return self._next_page(store_id, token)
        query = body.get("query")
        if query is None:
            raise missing("query", 'Send `{"query": {"text": "..."}}`.')
        if not isinstance(query, dict) or not isinstance(query.get("text"), str) or not query["text"].strip():
            raise invalid("`query` must be an object with a non-empty `text` string.")
        text = query["text"]
        if len(text) > 2000:
            raise invalid("`query.text` is longer than 2000 characters.")
        asset_types, item_filter = self._parse_filter(body.get("filter"))
        options = body.get("search_options")
        modalities: list[str] = ["visual"]
        if options is not None:
            if not isinstance(options, dict):
                raise invalid("`search_options` must be an object.")
            video = options.get("video")
            if video is not None:
                if "video" not in asset_types:
                    raise invalid("`search_options.video` was sent but `filter.asset_type` excludes videos.")
                mods = video.get("modalities") if isinstance(video, dict) else None
                if not isinstance(mods, list) or not mods or any(m not in MODALITIES for m in mods):
                    raise invalid(
                        "`search_options.video.modalities` must be a non-empty array of `visual`, `audio`."
                    )
                modalities = list(dict.fromkeys(mods))
        group_by = body.get("group_by", "none")
        if group_by not in ("none", "item"):
            raise invalid("`group_by` must be `none` or `item`.")
        page_size = body.get("page_size", 10)
        if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= _MAX_PAGE:
            raise invalid(f"`page_size` must be an integer between 1 and {_MAX_PAGE}.")
        include_metadata = body.get("include_metadata", False)
        if not isinstance(include_metadata, bool):
            raise invalid("`include_metadata` must be a boolean.")

        effective: JsonObj = {"video": {"modalities": modalities}} if "video" in asset_types else {}
        found = await self.moments(store_id, text, item_ids=item_filter, modalities=modalities)
        found = [(m, h) for m, h in found if self._asset_type(m.item_id) in asset_types]
        hits = self._hits(found, group_by, include_metadata)
        return self._first_page(store_id, hits, page_size, effective)

    def _asset_type(self, item_id: str) -> str:
        row = self.db.one("SELECT asset_type FROM ks_items WHERE id = ?", (item_id,))
        return str(row["asset_type"]) if row else "video"

    def _parse_filter(self, raw: Any) -> tuple[set[str], list[str] | None]:
        asset_types = {"video", "image"}
        item_ids: list[str] | None = None
        if raw is None:
            return asset_types, item_ids
        if not isinstance(raw, dict):
            raise invalid("`filter` must be an object.")
        unknown = set(raw) - {"asset_type", "item_id"}
        if unknown:
            raise invalid(f"`filter` has unknown fields: {', '.join(sorted(unknown))}.")

        def values(field: str, allowed: Sequence[str] | None) -> list[str]:
            cond = raw[field]
            if not isinstance(cond, dict) or len(cond) != 1 or next(iter(cond)) not in ("eq", "in"):
                raise invalid(f'`filter.{field}` must be `{{"eq": value}}` or `{{"in": [values]}}`.')
            op, val = next(iter(cond.items()))
            vals = [val] if op == "eq" else val
            if not isinstance(vals, list) or not vals or not all(isinstance(v, str) for v in vals):
                raise invalid(
                    f"`filter.{field}.{op}` must be a string (eq) or a non-empty array of strings (in)."
                )
            if allowed is not None and any(v not in allowed for v in vals):
                raise invalid(f"`filter.{field}` values must be among {', '.join(allowed)}.")
            return vals

        if "asset_type" in raw:
            asset_types = set(values("asset_type", ("video", "image")))
        if "item_id" in raw:
            item_ids = values("item_id", None)
        return asset_types, item_ids

    def _hits(
        self, found: list[tuple[Evidence, Hit]], group_by: str, include_metadata: bool
    ) -> list[JsonObj]:
        def match(moment: Evidence, hit: Hit) -> JsonObj:
            out: JsonObj = {
                "start_sec": round(moment.start, 3),
                "end_sec": round(moment.end, 3),
                "modalities": list(hit.modalities),
            }
            if moment.source in ("speech", "subtitle"):
                out["transcription"] = moment.text
            return out

        def metadata(item_id: str) -> JsonObj:
            row = self.db.one("SELECT system_metadata, metadata FROM ks_items WHERE id = ?", (item_id,))
            system = (loads(row["system_metadata"]) if row else None) or {}
            keep = ("duration", "width", "height", "size")
            return {
                "system": {k: system[k] for k in keep if k in system},
                "user": (loads(row["metadata"]) if row else None) or {},
            }

        hits: list[JsonObj] = []
        if group_by == "item":
            grouped: dict[str, list[tuple[Evidence, Hit]]] = {}
            for moment, hit in found:
                grouped.setdefault(moment.item_id, []).append((moment, hit))
            entries = [(item_id, [match(m, h) for m, h in pairs]) for item_id, pairs in grouped.items()]
        else:
            entries = [(m.item_id, [match(m, h)]) for m, h in found]
        for rank, (item_id, matches) in enumerate(entries, start=1):
            asset_type = self._asset_type(item_id)
            hit_json: JsonObj = {"asset_type": asset_type, "rank": rank, "item_id": item_id}
            if include_metadata:
                hit_json["metadata"] = metadata(item_id)
            if asset_type == "video":
                hit_json["matches"] = matches
            hits.append(hit_json)
        return hits

    def _first_page(self, store_id: str, hits: list[JsonObj], page_size: int, effective: JsonObj) -> JsonObj:
        out: JsonObj = {"data": hits[:page_size]}
        if len(hits) > page_size:
            token = new_id("kspt")
            self.db.run("DELETE FROM ks_search_pages WHERE expires_at < ?", (time.time() - 86_400,))
            self.db.run(
                "INSERT INTO ks_search_pages (token, store_id, hits, page_size, offset, effective,"
                " expires_at)"
                " "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token,
                    store_id,
                    dumps(hits),
                    page_size,
                    page_size,
                    dumps(effective),
                    time.time() + self.options.page_token_ttl_s,
                ),
            )
            out["next_page_token"] = token
        out["effective_search_options"] = effective
        return out

    def _next_page(self, store_id: str, token: str) -> JsonObj:
        row = self.db.one("SELECT * FROM ks_search_pages WHERE token = ?", (token,))
        if row is None or row["store_id"] != store_id:
            raise invalid(
                f"`page_token` `{token[:60]}` is not a page token of a search on this knowledge store. "
                "Use the `next_page_token` of the previous response, or search again."
            )
        if row["expires_at"] < time.time():
            raise ApiError(
                410,
                "search_page_token_expired",
                "The page token has expired. Send the search again without `page_token` for fresh results.",
            )
        hits: list[JsonObj] = loads(row["hits"])
        offset, size = int(row["offset"]), int(row["page_size"])
        out: JsonObj = {"data": hits[offset : offset + size]}
        if offset + size < len(hits):
            follow = new_id("kspt")
            self.db.run(
                "INSERT INTO ks_search_pages (token, store_id, hits, page_size, offset, effective,"
                " expires_at)"
                " "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (follow, store_id, row["hits"], size, offset + size, row["effective"], row["expires_at"]),
            )
            out["next_page_token"] = follow
        out["effective_search_options"] = loads(row["effective"])
        return out
