"""Ids for every sandbox resource, in the two formats TwelveLabs uses.

Resources of the v1.3 API (assets, indexes, tasks, uploads, jobs ...) have 24-hex ids like a Mongo
ObjectId; knowledge stores, their items and collections, Jockey sessions and responses have a type prefix
and a UUIDv7 (``ks_…``, ``ksi_…``). Both sort by creation time.
"""

from __future__ import annotations

import secrets
import time
import uuid


def new_id(prefix: str | None = None) -> str:
    """A new id: 24 hex digits (4 bytes of seconds, then 8 random bytes) without ``prefix``; with one,
    ``prefix_`` + a UUIDv7-style id (48-bit millisecond time, then random)."""
    if prefix is None:
        return f"{int(time.time()):08x}{secrets.token_hex(8)}"
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return f"{prefix}_{uuid.UUID(int=value)}"
