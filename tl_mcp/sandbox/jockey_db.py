"""Tables for knowledge stores, items, item collections, store-search page tokens and Jockey sessions,
registered with the sandbox database's migration registry (see :mod:`tl_mcp.sandbox.db`)."""

from __future__ import annotations

from tl_mcp.sandbox.db import Database, dumps, loads, register_schema

__all__ = ["Database", "dumps", "loads"]

register_schema(
    "knowledge",
    [
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
    ],
)
