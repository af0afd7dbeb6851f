"""Structured output (`text.format` json_schema) for the sandbox's Jockey, built only from evidence.

TwelveLabs tightens the caller's schema (every property required, no additional properties) and returns
the JSON as the message text. We do the same, then fill the schema from the retrieved moments: strings
from their text and titles, numbers from their times, arrays of objects one moment each. The result is
validated with jsonschema before it is sent, so a caller never receives JSON its schema rejects.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import jsonschema

from tl_mcp.sandbox.jockey.compose import marker, timestamp
from tl_mcp.sandbox.knowledge.models import Evidence

JsonObj = dict[str, Any]

_MAX_DEPTH = 8


class SchemaError(ValueError):
    """The caller's schema is not a usable JSON Schema; the message says which part and why."""


def tighten(schema: JsonObj) -> JsonObj:
    """Copy of ``schema`` with every object property required and no additional properties."""
    tightened = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                props = node.get("properties")
                if isinstance(props, dict):
                    node["required"] = list(props)
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tightened)
    return tightened


def check_schema(schema: Any) -> JsonObj:
    if not isinstance(schema, dict):
        raise SchemaError("`text.format.schema` must be a JSON object (a JSON Schema).")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise SchemaError(
            f"`text.format.schema` is not a valid JSON Schema at {where}: {exc.message}"
        ) from exc
    return schema


class _Filler:
    def __init__(self, root: JsonObj, question: str, summary: str, moments: Sequence[Evidence]) -> None:
        self.root = root
        self.question = question
        self.summary = summary
        self.moments = list(moments)

    def resolve(self, node: JsonObj) -> JsonObj:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            merged = {k: v for k, v in node.items() if k != "$ref"}
            return {**target, **merged} if isinstance(target, dict) else merged
        return node

    def value(self, node: Any, name: str, moment: Evidence | None, depth: int) -> Any:
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return None
        node = self.resolve(node)
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return self.pick_enum(node["enum"], moment)
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if isinstance(options, list):
                for option in options:
                    candidate = self.value(option, name, moment, depth + 1)
                    if _valid(self.root, option, candidate):
                        return candidate
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in node else "array" if "items" in node else "string"
        if kind == "object":
            props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
            return {key: self.value(sub, key, moment, depth + 1) for key, sub in props.items()}
        if kind == "array":
            return self.array(node, name, moment, depth)
        if kind in ("number", "integer"):
            return self.number(node, name, moment, kind == "integer")
        if kind == "boolean":
            return bool(self.moments)
        if kind == "null":
            return None
        return self.string(node, name, moment)

    def pick_enum(self, options: list[Any], moment: Evidence | None) -> Any:
        evidence = (moment.text if moment else " ".join(m.text for m in self.moments)).lower()
        for option in options:
            if isinstance(option, str) and option.lower() in evidence:
                return option
        return options[0]

    def array(self, node: JsonObj, name: str, moment: Evidence | None, depth: int) -> list[Any]:
        items = node.get("items") if isinstance(node.get("items"), dict) else {}
        low = int(node.get("minItems", 0))
        high = node.get("maxItems")
        sources: list[Evidence | None] = [moment] if moment is not None else list(self.moments)
        values = [self.value(items, name, m, depth + 1) for m in sources]
        if node.get("uniqueItems"):
            unique: list[Any] = []
            for v in values:
                if v not in unique:
                    unique.append(v)
            values = unique
        while len(values) < low:
            # The schema insists on more entries than there is evidence for: repeat rather than invent.
            values.append(
                self.value(items, name, sources[len(values) % len(sources)] if sources else None, depth + 1)
            )
        if isinstance(high, int):
            values = values[:high]
        return values

    def number(self, node: JsonObj, name: str, moment: Evidence | None, integer: bool) -> float | int:
        lowered = name.lower()
        target = moment or (self.moments[0] if self.moments else None)
        value: float
        if any(k in lowered for k in ("count", "total", "number", "num_", "how_many")):
            value = float(len(self.moments))
        elif target is None:
            value = 0.0
        elif "end" in lowered:
            value = target.end
        elif "duration" in lowered or "length" in lowered:
            value = target.end - target.start
        elif any(k in lowered for k in ("score", "confidence", "relevance")):
            value = target.score
        elif "rank" in lowered:
            value = float(self.moments.index(target) + 1) if target in self.moments else 1.0
        else:
            value = target.start
        minimum = node.get("minimum", node.get("exclusiveMinimum"))
        maximum = node.get("maximum", node.get("exclusiveMaximum"))
        if isinstance(minimum, (int, float)):
            value = max(value, float(minimum) + (1 if "exclusiveMinimum" in node and integer else 0))
        if isinstance(maximum, (int, float)):
            value = min(value, float(maximum) - (1 if "exclusiveMaximum" in node and integer else 0))
        return round(value) if integer else round(value, 3)

    def string(self, node: JsonObj, name: str, moment: Evidence | None) -> str:
        lowered = name.lower()
        target = moment
        if node.get("format") == "date-time":
            return "1970-01-01T00:00:00Z"
        if target is None:
            if any(k in lowered for k in ("question", "query")):
                text = self.question
            elif self.moments and any(k in lowered for k in ("title", "video", "name")):
                text = self.moments[0].title
            else:
                text = self.summary
        elif any(k in lowered for k in ("title", "video", "file", "name")):
            text = target.title
        elif "item" in lowered and "id" in lowered:
            text = target.item_id
        elif "asset" in lowered:
            text = target.asset_id
        elif lowered in ("start", "start_time", "from"):
            text = timestamp(target.start)
        elif lowered in ("end", "end_time", "to"):
            text = timestamp(target.end)
        elif any(k in lowered for k in ("time", "timestamp", "range", "when")):
            text = marker(target.start, target.end).strip("[]")
        elif "source" in lowered or "modality" in lowered:
            text = target.source
        else:
            text = target.text
        return _fit_string(text, node)


def _fit_string(text: str, node: JsonObj) -> str:
    max_len = node.get("maxLength")
    min_len = node.get("minLength")
    if isinstance(max_len, int) and len(text) > max_len:
        text = text[:max_len]
    if isinstance(min_len, int) and len(text) < min_len:
        text = text.ljust(min_len, ".")
    pattern = node.get("pattern")
    if isinstance(pattern, str) and not re.search(pattern, text):
        return text  # left to validation: we will not fabricate a string just to fit a pattern
    return text


def _valid(root: JsonObj, node: Any, value: Any) -> bool:
    if not isinstance(node, dict):
        return False
    probe = {**node, "$defs": root.get("$defs", {})} if "$defs" in root else node
    return bool(jsonschema.Draft202012Validator(probe).is_valid(value))


def fill(
    schema: JsonObj, *, question: str, summary: str, moments: Sequence[Evidence]
) -> tuple[Any, list[str]]:
    """JSON for the tightened ``schema`` from evidence; returns (value, validation problems)."""
    tightened = tighten(schema)
    value = _Filler(tightened, question, summary, moments).value(tightened, "", None, 0)
    validator = jsonschema.Draft202012Validator(tightened)
    problems = [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in validator.iter_errors(value)
    ]
    return value, problems
