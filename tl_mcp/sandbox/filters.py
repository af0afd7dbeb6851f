"""The search ``filter`` language (``POST /search``): a JSON object whose keys are system fields or user
metadata keys, each with one condition, all of which must hold (v1.3 §8.1, the OpenAPI ``filter`` text).

    {"id": ["<video id>", ...]}                  any of these videos (arrays only for ``id``)
    {"duration": 600} / {"duration": {"gte": 600, "lte": 800}}   also width, height, size
    {"filename": "Animal Encounters part 1"}     exact file name
    {"<metadata key>": "text" | number | true | {"gte": n, "lte": n}}

A string condition also matches a metadata array of strings that contains it. A filter that does not
follow this grammar is a 400 ``search_filter_invalid`` that says which key is wrong and what it may be.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.errors import ApiError

NUMERIC_FIELDS = ("duration", "width", "height", "size")
_RANGE_KEYS = ("gte", "lte")
_GRAMMAR = (
    'Use a JSON object such as {"duration": {"gte": 10, "lte": 60}, "filename": "a.mp4", '
    '"id": ["<video id>"], "<metadata key>": "value" | number | true | {"gte": n, "lte": n}}.'
)


def _bad(message: str) -> ApiError:
    return ApiError(400, "search_filter_invalid", f"{message} {_GRAMMAR}")


@dataclass(frozen=True, slots=True)
class Range:
    gte: float | None
    lte: float | None

    def holds(self, value: Any) -> bool:
        if not _is_number(value):
            return False  # unknown (not probed, key absent, a string) never satisfies a range
        return (self.gte is None or value >= self.gte) and (self.lte is None or value <= self.lte)


Condition = Range | str | float | bool | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    conditions: Mapping[str, Condition]

    def matches(self, system: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
        """``system``: id, filename and the numeric media fields; ``metadata``: the video's user metadata."""
        return all(
            _holds(cond, system.get(key) if key in system else metadata.get(key))
            for key, cond in self.conditions.items()
        )


def parse_search_filter(raw: str | None) -> SearchFilter | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise _bad(f"`filter` is not valid JSON ({exc}).") from exc
    if not isinstance(value, dict):
        raise _bad(f"`filter` must be a JSON object, not {_kind(value)}.")
    conditions: dict[str, Condition] = {}
    for key, cond in value.items():
        if not key.strip():
            raise _bad("`filter` has an empty key.")
        conditions[key] = _condition(key, cond)
    return SearchFilter(conditions)


def _condition(key: str, cond: Any) -> Condition:
    where = f"`filter.{key}`"
    if key == "id":
        if isinstance(cond, str) and cond:
            return (cond,)
        if isinstance(cond, list) and cond and all(isinstance(v, str) and v for v in cond):
            return tuple(cond)
        raise _bad(f"{where} must be an array of video ids (got {_kind(cond)}).")
    if isinstance(cond, dict):
        return _range(where, cond)
    if key in NUMERIC_FIELDS:
        if _is_number(cond):
            return _finite(where, cond)
        raise _bad(f"{where} must be a number or a {{gte, lte}} range (got {_kind(cond)}).")
    if key == "filename":
        if isinstance(cond, str):
            return cond
        raise _bad(f"{where} must be the exact file name as a string (got {_kind(cond)}).")
    if isinstance(cond, bool | str):
        return cond
    if _is_number(cond):
        return _finite(where, cond)
    if isinstance(cond, list):
        raise _bad(f"{where}: arrays are allowed for `id` only; give one value.")
    raise _bad(f"{where} must be a string, a number, a boolean or a {{gte, lte}} range (got {_kind(cond)}).")


def _range(where: str, cond: dict[str, Any]) -> Range:
    extra = sorted(set(cond) - set(_RANGE_KEYS))
    if extra or not cond:
        raise _bad(f"{where} takes `gte` and/or `lte` only (got {extra or 'an empty object'}).")
    bounds = {}
    for op in _RANGE_KEYS:
        if op in cond:
            if not _is_number(cond[op]):
                raise _bad(f"{where[:-1]}.{op}` must be a number (got {_kind(cond[op])}).")
            bounds[op] = _finite(f"{where[:-1]}.{op}`", cond[op])
    lo, hi = bounds.get("gte"), bounds.get("lte")
    if lo is not None and hi is not None and lo > hi:
        raise _bad(f"{where}: gte ({lo:g}) is greater than lte ({hi:g}), so nothing could match.")
    return Range(lo, hi)


def _holds(cond: Condition, actual: Any) -> bool:
    if isinstance(cond, Range):
        return cond.holds(actual)
    if isinstance(cond, tuple):
        return actual in cond
    if isinstance(actual, list):
        return isinstance(cond, str) and cond in actual
    if isinstance(cond, bool) or isinstance(actual, bool):
        return type(cond) is type(actual) and cond == actual
    return bool(actual == cond)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(where: str, value: float) -> float:
    if not math.isfinite(value):
        raise _bad(f"{where} must be a finite number.")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__
