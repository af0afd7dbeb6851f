"""Query filters of the indexed-asset and video lists (``GET /indexes/{id}/indexed-assets`` and ``/videos``):
numeric ranges on the media (``duration[gte]=10&duration[lte]=60``, also ``fps``, ``width``, ``height``,
``size``), ``created_at`` / ``updated_at`` lower bounds (RFC 3339) and ``user_metadata[key]=value`` equality,
as the SDK encodes them (nested query objects become ``name[key]``), or ``key=value`` as the platform's docs
spell metadata filters. Every filter is checked before anything
is listed: a malformed one is a 400 ``parameter_invalid`` naming the parameter."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tl_mcp.sandbox.errors import invalid

RANGE_FIELDS = ("duration", "fps", "width", "height", "size")
#: The lists' own parameters; any other plain query key is a user-metadata key.
LIST_PARAMS = ("page", "page_limit", "sort_by", "sort_option", "status", "filename")
#: `name[key]`; greedy, so a metadata key holding brackets (`user_metadata[scores[home]]`) stays whole.
_BRACKETED = re.compile(r"^(?P<name>[A-Za-z_]+)\[(?P<key>.*)\]$", re.DOTALL)


@dataclass(slots=True)
class IndexedFilter:
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    created_from: datetime | None = None
    updated_from: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def matches(
        self, system: Mapping[str, Any], created_at: str, updated_at: str, meta: Mapping[str, Any]
    ) -> bool:
        """``system``: the media facts (duration, fps, ...); ``meta``: the indexed asset's user metadata."""
        for name, (lo, hi) in self.ranges.items():
            value = system.get(name)
            if not isinstance(value, int | float):
                return False  # unknown (e.g. not probed yet) never satisfies a range
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return False
        if self.created_from is not None and _stamp(created_at) < self.created_from:
            return False
        if self.updated_from is not None and _stamp(updated_at) < self.updated_from:
            return False
        return all(_meta_equal(meta.get(k), want) for k, want in self.metadata.items())


def parse_filters(params: Mapping[str, str]) -> IndexedFilter:
    """Read the filters from the query string (``params``: every parameter, last value wins)."""
    out = IndexedFilter()
    bounds: dict[str, dict[str, float]] = {}
    for raw_name, value in params.items():
        bracketed = _BRACKETED.match(raw_name)
        name, key = (bracketed["name"], bracketed["key"]) if bracketed else (raw_name, None)
        if name in RANGE_FIELDS:
            if key not in ("gte", "lte"):
                raise invalid(
                    f"The `{name}` filter takes a range: send `{name}[gte]` and/or `{name}[lte]` "
                    f"(the same value in both for an exact match), got `{raw_name}`."
                )
            bounds.setdefault(name, {})[key] = _number(raw_name, value)
        elif name == "user_metadata":
            if not key:
                raise invalid(
                    "Filter on user metadata with `user_metadata[<key>]=<value>` (e.g. "
                    f"`user_metadata[category]=news`), got `{raw_name}`."
                )
            out.metadata[key] = value
        elif name in ("created_at", "updated_at") and key is None:
            stamp = _parse_stamp(name, value)
            if name == "created_at":
                out.created_from = stamp
            else:
                out.updated_from = stamp
        elif key is None and name not in LIST_PARAMS:
            # The platform's docs filter on metadata with plain keys (`?category=news`), the SDK with
            # `user_metadata[category]=news`: both are accepted.
            out.metadata[name] = value
    for name, pair in bounds.items():
        lo, hi = pair.get("gte"), pair.get("lte")
        if lo is not None and hi is not None and lo > hi:
            raise invalid(
                f"`{name}[gte]` ({lo:g}) is greater than `{name}[lte]` ({hi:g}); nothing could match."
            )
        out.ranges[name] = (lo, hi)
    return out


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise invalid(f"The `{name}` filter must be a non-negative number (got {raw[:50]!r}).")
    return value


def _parse_stamp(name: str, raw: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(raw.strip())
    except ValueError:
        stamp = None
    if stamp is None or "T" not in raw.upper():
        raise invalid(
            f"The `{name}` filter must be an RFC 3339 date and time such as 2026-07-30T12:00:00Z "
            f"(got {raw[:50]!r})."
        )
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _meta_equal(have: Any, want: str) -> bool:
    """Query values are strings; the stored value's type decides how one compares (as the platform's
    ``?needsReview=true`` / ``?rating=9.3`` examples do)."""
    if isinstance(have, bool):
        return want.strip().lower() == ("true" if have else "false")
    if isinstance(have, int | float):
        try:
            return float(want) == float(have)
        except ValueError:
            return False
    if isinstance(have, list):
        return any(_meta_equal(item, want) for item in have)
    return isinstance(have, str) and have == want
