"""Structured output (`text.format` json_schema) for the sandbox's Jockey, built only from evidence.

TwelveLabs tightens the caller's schema (every property required, no additional properties) and returns
the JSON as the message text. We do the same, then fill the schema from the retrieved moments, each field
only with evidence that fits it (:mod:`tl_mcp.sandbox.fitting`): strings from their text and titles,
times from their times, other numbers, dates, enums and booleans only where the texts state them, arrays
of objects one moment each; a field nothing fits is null (when allowed) or empty, and is reported. The
result is validated with jsonschema before it is sent, so a caller never receives JSON its schema rejects.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import jsonschema

from tl_mcp.sandbox.fitting import (
    UNFILLED,
    allows_null,
    bool_for,
    date_in,
    empty_value,
    enum_for,
    hint,
    is_date_field,
    kind_of,
    name_words,
    number_for,
    text_for,
    within,
    word_set,
)
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


def check_fillable(schema: JsonObj) -> None:
    """Refuse, before any turn runs, a schema whose fields cannot be left unfilled: nothing may fit them,
    and a placeholder that breaks a pattern, a length or a multiple would fail the turn after the fact."""
    _, problems = fill(schema, question="", summary="", moments=[])
    if problems:
        raise SchemaError(
            "`text.format.schema` asks for what the offline sandbox cannot promise: a field nothing in the "
            f"videos fits gets a placeholder, and then {problems[0]}. The sandbox will not invent a value "
            "to fit a pattern, a length or a multiple; allow null for that field (for example "
            '`"type": ["string", "null"]`) or drop the constraint.'
        )


class _Filler:
    """Walks the tightened schema; a field no evidence fits gets the schema's empty value (null when
    allowed) and its path goes to ``unfilled``."""

    def __init__(self, root: JsonObj, question: str, summary: str, moments: Sequence[Evidence]) -> None:
        self.root = root
        self.question = question
        self.summary = summary
        self.moments = list(moments)
        self.unfilled: list[str] = []
        self._quoted: set[str] = set()

    def resolve(self, node: JsonObj) -> JsonObj:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            merged = {k: v for k, v in node.items() if k != "$ref"}
            return {**target, **merged} if isinstance(target, dict) else merged
        return node

    def texts(self, moment: Evidence | None) -> list[str]:
        return [moment.text] if moment is not None else [m.text for m in self.moments]

    def value(self, node: Any, path: str, moment: Evidence | None, depth: int) -> Any:
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return None
        node = self.resolve(node)
        found = self.found(node, path, moment, depth)
        if found is not UNFILLED:
            return found
        self.unfilled.append(path or "(root)")
        return empty_value(node, kind_of(node))

    def found(self, node: JsonObj, path: str, moment: Evidence | None, depth: int) -> Any:
        name = path.rsplit("/", 1)[-1].removesuffix("[]")
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return enum_for(node["enum"], self.texts(moment))
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if isinstance(options, list):
                for option in options:
                    if not isinstance(option, dict) or kind_of(self.resolve(option)) == "null":
                        continue
                    candidate = self.found(self.resolve(option), path, moment, depth + 1)
                    if candidate is not UNFILLED and _valid(self.root, option, candidate):
                        return candidate
                return UNFILLED
        kind = kind_of(node)
        if kind == "object":
            props: JsonObj = node["properties"] if isinstance(node.get("properties"), dict) else {}
            # Sibling fields never share a quote; another object (an array entry) may repeat one.
            outer, self._quoted = self._quoted, set()
            out = {
                key: self.value(sub, f"{path}/{key}" if path else key, moment, depth + 1)
                for key, sub in props.items()
            }
            self._quoted = outer
            return out
        if kind == "array":
            return self.array(node, path, moment, depth)
        if kind in ("number", "integer"):
            return self.number(node, name, moment, kind == "integer")
        if kind == "boolean":
            said = bool_for(name, node, self.texts(moment), found=bool(self.moments))
            return UNFILLED if said is None else said
        if kind == "null":
            return None
        return self.string(node, name, moment)

    def array(self, node: JsonObj, path: str, moment: Evidence | None, depth: int) -> Any:
        items: JsonObj = node["items"] if isinstance(node.get("items"), dict) else {}
        low = int(node.get("minItems", 0))
        high = node.get("maxItems")
        sources: list[Evidence | None] = [moment] if moment is not None else list(self.moments)
        if moment is None and set(name_words(path.rsplit("/", 1)[-1])) & _IN_TIME_ORDER:
            # A timeline or chapters read in time order (per video), not by relevance.
            ordered = sorted(self.moments, key=lambda m: (m.item_id, m.start))
            sources = [*ordered]
        values = [self.found(self.resolve(items), f"{path}[]", m, depth + 1) for m in sources]
        values = [v for v in values if v is not UNFILLED]  # an entry with nothing to say is left out
        if node.get("uniqueItems"):
            unique: list[Any] = []
            for v in values:
                if v not in unique:
                    unique.append(v)
            values = unique
        if isinstance(high, int):
            values = values[:high]
        if len(values) < low:
            if allows_null(node) and (not values or node.get("uniqueItems")):
                # Null is the honest empty value where allowed; repeats would break uniqueItems anyway.
                return UNFILLED
            # The schema insists on more entries than there is evidence for: repeat rather than invent,
            # and report the field.
            self.unfilled.append(path or "(root)")
            return _padded(values, low, self.resolve(items))
        return values

    def number(self, node: JsonObj, name: str, moment: Evidence | None, integer: bool) -> Any:
        words = set(name_words(name))
        target = moment or (self.moments[0] if self.moments else None)
        value: float | None = None
        if words & {"count", "total", "num", "how", "many"} or words == {"number"}:
            value = float(len(self.moments))
        elif target is not None and words & {"end", "until", "to"}:
            value = target.end
        elif target is not None and words & {"duration", "length"}:
            value = target.end - target.start
        elif target is not None and words & {"score", "confidence", "relevance"}:
            value = target.score
        elif target is not None and "rank" in words:
            value = float(self.moments.index(target) + 1) if target in self.moments else 1.0
        elif target is not None and words & {"start", "begin", "from", "time", "timestamp", "sec", "seconds"}:
            value = target.start
        else:
            value = number_for(hint(name, node), self.texts(moment), integer=integer, generic=False)
        if value is None:
            return UNFILLED
        value = round(value) if integer else round(value, 3)
        return value if within(node, value) else UNFILLED

    def string(self, node: JsonObj, name: str, moment: Evidence | None) -> Any:
        lowered = name.lower()
        target = moment
        if is_date_field(name, node):
            found = next((d for t in self.texts(moment) if (d := date_in(t, node.get("format")))), None)
            return UNFILLED if found is None else found
        if target is None:
            if any(k in lowered for k in ("question", "query")):
                return _fit_string(self.question, node)
            if self.moments and _asks_title(name):
                return _fit_string(self.moments[0].title, node)
            if set(name_words(name)) & _SPECIFIC_FREE or not name:
                return self.quote(self.summary, node)
            found = text_for(hint(name, node), self.texts(None))
            return UNFILLED if found is None else self.quote(found, node)
        if _asks_title(name):
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
        elif set(name_words(name)) & _SPECIFIC_FREE:
            text = target.text
        else:
            found = text_for(hint(name, node), [target.text])
            if found is None:
                return UNFILLED
            text = found
        return _fit_string(text, node)

    def quote(self, text: str, node: JsonObj) -> Any:
        """``text``, unless another field already quoted it: then the next moment nobody quoted yet."""
        for candidate in [text, *(m.text for m in self.moments)]:
            if candidate and candidate not in self._quoted:
                self._quoted.add(candidate)
                return _fit_string(candidate, node)
        return UNFILLED


#: String fields that ask for what was found, whatever it is about: the answer or a moment's own text.
_SPECIFIC_FREE = word_set(
    "answer text quote response result content summary explanation excerpt details evidence transcript "
    "description overview said statement reason"
)


_TITLE_WORDS = word_set("title video file filename name clip")
_IN_TIME_ORDER = word_set("chapters timeline sections scenes parts segments steps outline chronology")


def _asks_title(name: str) -> bool:
    """``video_title``, ``file_name``, ``title``: the video's title; ``speaker_name`` is not one."""
    words = set(name_words(name))
    return bool(words) and words <= _TITLE_WORDS


def _padded(values: list[Any], low: int, items: JsonObj) -> list[Any]:
    """``values`` repeated (or the items' empty value) up to ``low`` entries."""
    filler = values or [empty_value(items, kind_of(items))]
    return [*values, *(filler[i % len(filler)] for i in range(low - len(values)))]


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
    schema: JsonObj,
    *,
    question: str,
    summary: str,
    moments: Sequence[Evidence],
    unfilled: list[str] | None = None,
) -> tuple[Any, list[str]]:
    """JSON for the tightened ``schema`` from evidence; returns (value, validation problems). The paths of
    fields no evidence fitted are appended to ``unfilled`` when given."""
    tightened = tighten(schema)
    filler = _Filler(tightened, question, summary, moments)
    value = filler.value(tightened, "", None, 0)
    if unfilled is not None:
        unfilled.extend(dict.fromkeys(filler.unfilled))
    validator = jsonschema.Draft202012Validator(tightened)
    problems = [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in validator.iter_errors(value)
    ]
    return value, problems
