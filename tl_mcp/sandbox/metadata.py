"""User metadata and knowledge-store metadata: the one check of their values, and how an edit applies.

SDK 1.3.6 gives every family the same value union (string, number, boolean, array of strings; integers
within 53 bits, wider ones sent as strings) and differs only in what a ``null`` means and in limits:

- ``user_metadata`` (assets, indexed assets, videos, tasks, multipart uploads) and entity ``metadata``:
  on create and PUT, ``null``, ``""`` and ``[]`` are omitted; on PATCH they are ignored, except that
  ``null`` deletes the key. No limits are documented; ours are ``USER_METADATA_LIMITS``
  (``tl_mcp.metadata_limits``, which the MCP tools check too), and a PATCH is held to them after the merge.
- knowledge-store, item and item-collection ``metadata``: ``null`` is rejected; at most N pairs, keys and
  string values of bounded length (SDK 1.3.6's limits).

Every check runs before anything is stored: a refused request changes nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from tl_mcp.metadata_limits import (
    ITEM_METADATA_LIMITS,
    STORE_METADATA_LIMITS,
    USER_METADATA_LIMITS,
    MetadataLimits,
    limit_problem,
    size_problem,
)
from tl_mcp.sandbox.errors import invalid

__all__ = [
    "ITEM_METADATA_LIMITS",
    "STORE_METADATA_LIMITS",
    "USER_METADATA_LIMITS",
    "apply_metadata_edit",
    "check_metadata",
    "metadata_from_json",
]

MAX_SAFE_INT = 9007199254740991

#: What a null value means: ``omit`` (create / PUT: dropped, like "" and []), ``delete`` (PATCH: kept
#: so the merge deletes the key), ``reject`` (knowledge-store metadata: a 400).
Nulls = Literal["omit", "delete", "reject"]

_EMPTY: tuple[Any, ...] = (None, "", [])


def check_metadata(
    value: Any,
    name: str = "user_metadata",
    *,
    nulls: Nulls = "omit",
    limits: MetadataLimits = USER_METADATA_LIMITS,
) -> dict[str, Any]:
    """``value`` checked against the contract and ``limits``, or a 400 ``parameter_invalid`` naming the
    first bad key."""
    if not isinstance(value, dict):
        raise invalid(f"The `{name}` parameter must be a JSON object of key/value pairs.")
    problem = limit_problem(value, limits, name)
    if problem:
        raise invalid(f"{problem}. Nothing was stored; fix it and send it again.")
    for key, item in value.items():
        if item is None:
            if nulls == "reject":
                raise invalid(
                    f"`{name}.{key}` is null, which is not allowed here; leave the key out instead (an "
                    "update replaces the whole object)."
                )
            continue
        problem = _value_problem(item)
        if problem:
            raise invalid(
                f"`{name}.{key}` {problem}. Values may be a string, a number, a boolean or an array of "
                "strings; send wider integers and verbatim ids as strings."
            )
    if nulls == "omit":
        return {k: v for k, v in value.items() if v not in _EMPTY}
    return dict(value)


def metadata_from_json(raw: str | None, name: str = "user_metadata") -> dict[str, Any] | None:
    """A form field's user metadata (a JSON object sent as a string), checked; ``None`` when absent."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise invalid(f"The `{name}` parameter must be a JSON object encoded as a string ({exc}).") from exc
    return check_metadata(value, name)


def _value_problem(item: Any) -> str | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return None if abs(item) <= MAX_SAFE_INT else f"is an integer wider than 53 bits (±{MAX_SAFE_INT})"
    if isinstance(item, float):
        return None if math.isfinite(item) else "is not a finite number"
    if isinstance(item, str):
        return None
    if isinstance(item, list):
        if all(isinstance(v, str) for v in item):
            return None
        return "is an array with non-string members"
    return f"is a {type(item).__name__.replace('dict', 'nested object')}"


def apply_metadata_edit(
    current: dict[str, Any], incoming: Any, *, replace: bool, name: str = "user_metadata"
) -> dict[str, Any]:
    """The user metadata after a PUT (``replace``: keys left out are removed) or a PATCH (keys left out are
    kept, ``null`` deletes one); in both, ``""`` and ``[]`` are ignored."""
    if replace:
        return check_metadata(incoming, name, nulls="omit")
    edit = check_metadata(incoming, name, nulls="delete")
    merged = dict(current)
    for key, item in edit.items():
        if item is None:
            merged.pop(key, None)
        elif item not in _EMPTY:
            merged[key] = item
    # Each key fits; together with the keys already there they must still fit.
    problem = size_problem(merged, USER_METADATA_LIMITS, name)
    if problem:
        raise invalid(
            f"{problem} after this edit. Nothing was changed; delete keys (null) or send fewer and "
            "shorter values."
        )
    return merged
