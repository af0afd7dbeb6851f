"""The one place tool schemas are shaped for the wire: pydantic's JSON Schema, minus what no client needs.

Every agent pays for `tools/list` in context on every session, so each tool's input and output schema is
rewritten here before it is advertised, whoever wrote the tool and whatever fields it has:

- pydantic's `title`s (a title-cased copy of the property name) go;
- `default: null` goes; in output schemas every `default` and `required` go (a result always carries
  every field of its model, null when empty), and so does a `type` beside an `enum` that fixes it;
- an optional input `X | None` is advertised as `X`: leaving the argument out is how a caller says "none";
- a nullable output field becomes `type: [X, "null"]` instead of an `anyOf` of two schemas;
- `items: {}` and `additionalProperties: true` (both "anything", the default) go, and an `anyOf` of bare
  types becomes one `type` list, so a free-form JSON value has no empty schema in it;
- a `$defs` entry used once is inlined where it is used; one used more often stays shared.

The result means the same to a validator as the input did for every value a tool really returns.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, Literal

Schema = dict[str, Any]
Role = Literal["input", "output"]

_DEFS_PREFIX = "#/$defs/"
#: Keywords whose value is one subschema, a list of them, or a name → subschema map.
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")
#: Numeric keywords whose whole-number floats (`300.0`) print as integers (`300`): the same number.
_NUMBERS = ("default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def compact(schema: Schema, role: Role) -> Schema:
    """`schema` (a tool's input or output JSON Schema) as it should be advertised."""
    out = copy.deepcopy(schema)
    out = _inline_single_use_defs(out)
    result = _shape(out, role)
    assert isinstance(result, dict)
    return result


def size(value: object) -> int:
    """Bytes of `value` as compact JSON, the way it travels."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            yield ref.removeprefix(_DEFS_PREFIX)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _inline_single_use_defs(schema: Schema) -> Schema:
    defs: dict[str, Schema] = schema.pop("$defs", {})
    while True:
        uses = Counter(_refs(schema)) + Counter(r for d in defs.values() for r in _refs(d))
        once = [name for name in defs if uses[name] == 1 and name not in set(_refs(defs[name]))]
        unused = [name for name in defs if uses[name] == 0]
        for name in unused:
            del defs[name]
        if not once:
            break
        for name in once:
            target = defs.pop(name)
            schema = _replace_ref(schema, name, target)
            defs = {k: _replace_ref(v, name, target) for k, v in defs.items()}
    if defs:
        schema["$defs"] = defs
    return schema


def _replace_ref(node: Any, name: str, target: Schema) -> Any:
    if isinstance(node, dict):
        if node.get("$ref") == _DEFS_PREFIX + name:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            # The use site's own keywords (its description) win over the definition's.
            return {**copy.deepcopy(target), **siblings}
        return {k: _replace_ref(v, name, target) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_ref(v, name, target) for v in node]
    return node


def _shape(node: object, role: Role) -> object:
    if not isinstance(node, dict):
        return node  # a boolean schema
    out: Schema = {}
    for key, value in node.items():
        if key in _ONE:
            out[key] = _shape(value, role)
        elif key in _MANY:
            out[key] = [_shape(v, role) for v in value]
        elif key in _MAP:
            out[key] = {name: _shape(v, role) for name, v in value.items()}
        elif isinstance(value, float) and value.is_integer() and key in _NUMBERS:
            out[key] = int(value)
        else:
            out[key] = value
    out.pop("title", None)
    if out.get("items") == {}:
        del out["items"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    if "default" in out and (role == "output" or out["default"] is None):
        del out["default"]
    if role == "output":
        # A result carries every field of its model (null when empty), so `required` would list them all.
        out.pop("required", None)
        if "enum" in out and isinstance(out.get("type"), str):
            del out["type"]
    out = _nullable(out, role)
    return _merge_bare_types(out)


def _nullable(node: Schema, role: Role) -> Schema:
    """`anyOf: [X, {type: null}]` as X (input) or as X that also admits null (output)."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches:
        return node
    rest = [b for b in branches if b != {"type": "null"}]
    if len(rest) != 1 or not isinstance(rest[0], dict):
        if role == "input" and rest:
            node["anyOf"] = rest
        return node
    inner = rest[0]
    siblings = {k: v for k, v in node.items() if k != "anyOf"}
    if role == "input":
        return {**inner, **siblings}
    kind = inner.get("type")
    if "$ref" in inner or not isinstance(kind, str):
        return node
    merged = {**inner, **siblings, "type": [kind, "null"]}
    for keyword in ("enum", "const"):
        if keyword in merged:
            # enum/const constrain every type, so null has to be one of the allowed values too.
            allowed = merged.pop(keyword)
            merged["enum"] = [*(allowed if keyword == "enum" else [allowed]), None]
    return merged


def _merge_bare_types(node: Schema) -> Schema:
    """An `anyOf` whose branches only name a type is one `type` list (number already admits integers)."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or not all(
        isinstance(b, dict) and set(b) == {"type"} and isinstance(b["type"], str | list) for b in branches
    ):
        return node
    kinds: list[str] = []
    for b in branches:
        for kind in b["type"] if isinstance(b["type"], list) else [b["type"]]:
            if kind not in kinds:
                kinds.append(kind)
    if "number" in kinds and "integer" in kinds:
        kinds.remove("integer")
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    merged["type"] = kinds[0] if len(kinds) == 1 else kinds
    return merged
