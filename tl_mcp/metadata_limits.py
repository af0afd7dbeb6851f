"""How big metadata may be: the one check, shared by the MCP tools (before anything is sent) and the
sandbox (which answers a 400), so both refuse the same thing with the same words.

Knowledge-store, item and item-collection metadata have the limits SDK 1.3.6 documents. User metadata
(assets, indexed assets, videos, tasks, uploads) and entity metadata have none documented, yet every key
and value is stored, returned by every list and search, and sent to TwelveLabs; these limits are ours,
chosen to fit any tagging scheme: 50 keys (what the SDK allows an item), keys of 64 characters with
something visible, no control or invisible format characters and no space at either end (they are spelled
in search and list filters, and read in listings), text of 2,048 characters (a store's limit), 100 texts
in a list, and 16 KiB for the whole object as JSON.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class MetadataLimits:
    pairs: int
    key_chars: int
    str_chars: int
    #: Texts in one list value; None: not limited beyond str_chars each.
    list_items: int | None = None
    #: The whole object as compact UTF-8 JSON; None: not limited beyond the rest.
    total_bytes: int | None = None
    #: Keys must show something, without control or format characters or a space at either end.
    plain_keys: bool = False
    #: ``""`` and ``[]`` store nothing (the user-metadata contract ignores them), so they are not held to
    #: the limits. A null never is: it deletes its key (a key stored before a limit existed must stay
    #: deletable), is omitted, or is refused by the value check.
    empty_ignored: bool = False


USER_METADATA_LIMITS = MetadataLimits(
    pairs=50,
    key_chars=64,
    str_chars=2048,
    list_items=100,
    total_bytes=16 * 1024,
    plain_keys=True,
    empty_ignored=True,
)
STORE_METADATA_LIMITS = MetadataLimits(pairs=10, key_chars=128, str_chars=2048)
ITEM_METADATA_LIMITS = MetadataLimits(pairs=50, key_chars=128, str_chars=8192)


def _hidden(key: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in key)


def _shown(key: str) -> str:
    return repr(key if len(key) <= 40 else key[:40] + "…")


def size_problem(meta: Mapping[str, object], limits: MetadataLimits, name: str) -> str | None:
    """How the object as a whole is too big (too many keys, too many bytes), or None."""
    if len(meta) > limits.pairs:
        return f"`{name}` has {len(meta)} keys; at most {limits.pairs} are allowed"
    if limits.total_bytes is not None:
        size = len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode())
        if size > limits.total_bytes:
            return f"`{name}` is {size:,} bytes as JSON; at most {limits.total_bytes:,} are allowed"
    return None


def stored_part(meta: Mapping[str, object], limits: MetadataLimits) -> dict[str, object]:
    """The keys of ``meta`` that would be stored: what the limits are about."""
    empty: tuple[object, ...] = ("", []) if limits.empty_ignored else ()
    return {k: v for k, v in meta.items() if v is not None and v not in empty}


def limit_problem(meta: Mapping[str, object], limits: MetadataLimits, name: str) -> str | None:
    """The first way ``meta`` breaks ``limits``, naming the key and the limit; None when it fits."""
    meta = stored_part(meta, limits)
    for key, value in meta.items():
        if len(key) > limits.key_chars:
            return f"`{name}` key {_shown(key)} is longer than {limits.key_chars} characters ({len(key)})"
        if limits.plain_keys and (not key.strip() or key != key.strip() or _hidden(key)):
            return (
                f"`{name}` key {_shown(key)} is blank, has a space at an end or holds control or "
                "invisible characters; use a visible name such as shot_type"
            )
        texts = value if isinstance(value, list) else [value]
        if isinstance(value, list) and limits.list_items is not None and len(value) > limits.list_items:
            return f"`{name}.{key}` has {len(value)} texts; at most {limits.list_items} are allowed"
        for text in texts:
            if isinstance(text, str) and len(text) > limits.str_chars:
                return (
                    f"`{name}.{key}` is {len(text)} characters long; at most {limits.str_chars} are allowed"
                )
    return size_problem(meta, limits, name)
