"""All the sandbox's DDL: the ordered migration steps of each table family.

Steps are applied in order, once each, by :meth:`tl_mcp.sandbox.store.db.Database.open`; the number applied
per family is recorded in ``schema_migrations`` (the family names are stored there, so never rename them).
Never edit or reorder a step that has shipped: append a new one.
"""

from __future__ import annotations

#: Family -> ordered DDL steps. ``core`` holds the TwelveLabs resources (assets, indexes, tasks, jobs ...),
#: ``knowledge`` the knowledge stores, their items and collections and the Jockey sessions.
MIGRATIONS: dict[str, list[str]] = {
    "core": [
        """CREATE TABLE IF NOT EXISTS assets (
            id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            status TEXT NOT NULL, method TEXT NOT NULL, filename TEXT NOT NULL, file_type TEXT,
            kind TEXT, path TEXT, source_url TEXT, size INTEGER, user_metadata TEXT,
            enable_hls INTEGER NOT NULL DEFAULT 0, enable_thumbnail INTEGER NOT NULL DEFAULT 1,
            probe TEXT, analyzed INTEGER NOT NULL DEFAULT 0, error TEXT, analyzers TEXT)""",
        """CREATE TABLE IF NOT EXISTS indexes (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, models TEXT NOT NULL, addons TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS indexed_assets (
            id TEXT PRIMARY KEY, index_id TEXT NOT NULL REFERENCES indexes(id) ON DELETE CASCADE,
            asset_id TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            indexed_at TEXT, user_metadata TEXT, error TEXT, task_id TEXT, enable_video_stream INTEGER)""",
        "CREATE INDEX IF NOT EXISTS indexed_assets_index ON indexed_assets(index_id, created_at)",
        """CREATE TABLE IF NOT EXISTS tasks (
            id TEXT PRIMARY KEY, index_id TEXT NOT NULL, video_id TEXT NOT NULL, asset_id TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS segments (
            asset_id TEXT NOT NULL, idx INTEGER NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
            thumbnail TEXT, image_vec BLOB, text TEXT NOT NULL DEFAULT '', text_vec BLOB,
            PRIMARY KEY (asset_id, idx))""",
        """CREATE TABLE IF NOT EXISTS texts (
            asset_id TEXT NOT NULL, idx INTEGER NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
            text TEXT NOT NULL, source TEXT NOT NULL, confidence REAL NOT NULL, vec BLOB,
            PRIMARY KEY (asset_id, idx))""",
        """CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, payload TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, error TEXT)""",
        "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at)",
        """CREATE TABLE IF NOT EXISTS uploads (
            id TEXT PRIMARY KEY, asset_id TEXT NOT NULL, filename TEXT NOT NULL, type TEXT NOT NULL,
            total_size INTEGER NOT NULL, chunk_size INTEGER NOT NULL, total_chunks INTEGER NOT NULL,
            status TEXT NOT NULL, options TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            expires_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS upload_chunks (
            upload_id TEXT NOT NULL, idx INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
            reported INTEGER NOT NULL DEFAULT 0, uploaded_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (upload_id, idx))""",
        """CREATE TABLE IF NOT EXISTS search_pages (
            id TEXT PRIMARY KEY, created_at REAL NOT NULL, expires_at REAL NOT NULL, body TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS embed_tasks (
            id TEXT PRIMARY KEY, version TEXT NOT NULL, status TEXT NOT NULL, model_name TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, request TEXT NOT NULL, result TEXT,
            error TEXT)""",
        """CREATE TABLE IF NOT EXISTS analyze_tasks (
            id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            completed_at TEXT, request TEXT NOT NULL, result TEXT, error TEXT)""",
        # Analysis batches; their tasks are analyze_tasks rows whose request names the batch.
        """CREATE TABLE IF NOT EXISTS analyze_batches (
            id TEXT PRIMARY KEY, model_name TEXT NOT NULL, analysis_mode TEXT NOT NULL,
            created_at TEXT NOT NULL, expires_at TEXT NOT NULL, canceled_at TEXT)""",
        # `Idempotency-Key` of task and batch creation: (kind, key) -> what it created, from which body.
        """CREATE TABLE IF NOT EXISTS analyze_idempotency (
            kind TEXT NOT NULL, key TEXT NOT NULL, ref TEXT NOT NULL, body_hash TEXT NOT NULL,
            created_at TEXT NOT NULL, PRIMARY KEY (kind, key))""",
    ],
    "knowledge": [
        """CREATE TABLE IF NOT EXISTS ks_stores ( id TEXT PRIMARY KEY, name TEXT NOT NULL, description
            TEXT, ingestion_config TEXT, metadata TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL )""",
        """CREATE TABLE IF NOT EXISTS ks_items ( id TEXT PRIMARY KEY, store_id TEXT NOT NULL, asset_id TEXT
            NOT NULL, asset_type TEXT NOT NULL, status TEXT NOT NULL, system_metadata TEXT, metadata TEXT
            NOT NULL DEFAULT '{}', error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL )""",
        """CREATE INDEX IF NOT EXISTS ks_items_store ON ks_items(store_id)""",
        """CREATE TABLE IF NOT EXISTS ks_collections ( id TEXT PRIMARY KEY, store_id TEXT NOT NULL, name
            TEXT NOT NULL, description TEXT, metadata TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, UNIQUE (store_id, name) )""",
        """CREATE TABLE IF NOT EXISTS ks_collection_members ( collection_id TEXT NOT NULL, item_id TEXT NOT
            NULL, PRIMARY KEY (collection_id, item_id) )""",
        """CREATE TABLE IF NOT EXISTS ks_search_pages ( token TEXT PRIMARY KEY, store_id TEXT NOT NULL,
            hits TEXT NOT NULL, page_size INTEGER NOT NULL, offset INTEGER NOT NULL, effective TEXT NOT
            NULL, expires_at REAL NOT NULL )""",
        """CREATE TABLE IF NOT EXISTS jockey_sessions ( id TEXT PRIMARY KEY, store_id TEXT NOT NULL,
            selections TEXT NOT NULL DEFAULT '[]', messages INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT
            NULL, updated_at TEXT NOT NULL )""",
        """CREATE TABLE IF NOT EXISTS jockey_turns ( session_id TEXT NOT NULL, turn INTEGER NOT NULL,
            response_id TEXT NOT NULL, question TEXT NOT NULL, query TEXT NOT NULL, answer TEXT NOT NULL,
            created_at TEXT NOT NULL, PRIMARY KEY (session_id, turn) )""",
        # The moments each turn cited, best first (JSON of the Evidence), so a follow-up can point back.
        """CREATE TABLE IF NOT EXISTS jockey_turn_moments ( session_id TEXT NOT NULL, turn INTEGER NOT
            NULL, rank INTEGER NOT NULL, moment TEXT NOT NULL, PRIMARY KEY (session_id, turn, rank) )""",
    ],
    # Entity collections, their entities, and each entity's reference assets (in the order linked).
    "entities": [
        """CREATE TABLE IF NOT EXISTS entity_collections ( id TEXT PRIMARY KEY, name TEXT NOT NULL,
            description TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL )""",
        """CREATE TABLE IF NOT EXISTS entities ( id TEXT PRIMARY KEY, collection_id TEXT NOT NULL, name TEXT
            NOT NULL, description TEXT, metadata TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL )""",
        """CREATE INDEX IF NOT EXISTS entities_collection ON entities(collection_id, created_at)""",
        """CREATE TABLE IF NOT EXISTS entity_assets ( entity_id TEXT NOT NULL, asset_id TEXT NOT NULL,
            position INTEGER NOT NULL, PRIMARY KEY (entity_id, asset_id) )""",
        """CREATE INDEX IF NOT EXISTS entity_assets_asset ON entity_assets(asset_id)""",
    ],
}
