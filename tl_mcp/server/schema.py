"""The one place tools are shaped for the wire: pydantic's JSON Schema, minus what no client needs.

Every agent pays for `tools/list` in context on every session, so each tool's input and output schema
(and its annotations) are rewritten here before they are advertised, whoever wrote the tool and whatever
fields it has:

- pydantic's `title`s (a title-cased copy of the property name) go;
- `default: null` goes; in output schemas every `default` and `required` go (a result leaves out what it
  has no value for), and so does a `type` beside an `enum` that fixes it;
- an optional input `X | None` is advertised as `X`: leaving the argument out is how a caller says "none";
- likewise a result field that defaults to null is advertised as `X` and left out of the result when
  empty (`drop_unset`, applied to every result); a nullable field with no default is `type: [X, "null"]`;
- input string rules (`pattern`, `minLength`, `maxLength`) and `additionalProperties: false` go: the
  server enforces them and its error names the rule broken, the value given and the arguments taken;
- `items: {}` and `additionalProperties: true` (both "anything", the default) go, and an `anyOf` of bare
  types becomes one `type` list, so a free-form JSON value has no empty schema in it;
- a `$defs` entry used once is inlined where it is used; one used more often stays shared;
- annotations state `readOnlyHint` always and the other hints only where the spec's default or a
  read-only tool does not already say it (`compact_annotations`).

Every result a tool really returns passes its output schema once `drop_unset` has shaped it (the SDK
checks the unshaped result against the tool's pydantic model first).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any, Literal

from mcp.types import ToolAnnotations

Schema = dict[str, Any]
Role = Literal["input", "output"]

_DEFS_PREFIX = "#/$defs/"
#: Keywords whose value is one subschema, a list of them, or a name → subschema map.
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")
#: Numeric keywords whose whole-number floats (`300.0`) print as integers (`300`): the same number.
_NUMBERS = ("default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
#: String rules an input keeps to, enforced (and explained when broken) by the server, not advertised.
_CHECKED_BY_SERVER = ("pattern", "minLength", "maxLength")


def compact(schema: Schema, role: Role) -> Schema:
    """`schema` (a tool's input or output JSON Schema) as it should be advertised."""
    out = copy.deepcopy(schema)
    out = _inline_single_use_defs(out)
    result = _shape(out, role)
    assert isinstance(result, dict)
    return result


def compact_annotations(full: ToolAnnotations) -> ToolAnnotations:
    """`full` (all four hints stated) with each hint only where the spec's reading does not already give
    it: `readOnlyHint` always (clients decide approval on it); for a tool that writes, `destructiveHint`
    always (its default, true, is the alarming one) and `idempotentHint` when true; `openWorldHint` when
    false. The spec says the destructive and idempotent hints mean nothing on a read-only tool."""
    hints = ToolAnnotations(read_only_hint=full.read_only_hint is True)
    if not hints.read_only_hint:
        hints.destructive_hint = full.destructive_hint is not False
        if full.idempotent_hint:
            hints.idempotent_hint = True
    if full.open_world_hint is False:
        hints.open_world_hint = False
    return hints


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
    # An optional argument is left out to say "none"; a result field whose model default is null is left
    # out of the result when empty (`drop_unset`): either way, null needs no room in the schema.
    unset_is_absent = role == "input" or ("default" in out and out["default"] is None)
    if out.get("items") == {}:
        del out["items"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    if "default" in out and (role == "output" or out["default"] is None):
        del out["default"]
    if role == "input":
        # The server checks these itself, and its error quotes the rule broken and the value given; an
        # agent copies ids and writes short text, so advertising them would cost every session for a
        # mistake made once. Which arguments are allowed at all is the `properties` list.
        for keyword in _CHECKED_BY_SERVER:
            out.pop(keyword, None)
        if out.get("additionalProperties") is False:
            del out["additionalProperties"]
    if role == "output":
        # What a result has no value for is left out (`drop_unset`), so no field is promised.
        out.pop("required", None)
        if "enum" in out and isinstance(out.get("type"), str):
            del out["type"]
    out = _nullable(out, drop_null=unset_is_absent)
    return _merge_bare_types(out)


def _nullable(node: Schema, *, drop_null: bool) -> Schema:
    """`anyOf: [X, {type: null}]` as X (`drop_null`) or as X that also admits null."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches:
        return node
    rest = [b for b in branches if b != {"type": "null"}]
    if len(rest) != 1 or not isinstance(rest[0], dict):
        if drop_null and rest:
            node["anyOf"] = rest
        return node
    inner = rest[0]
    siblings = {k: v for k, v in node.items() if k != "anyOf"}
    if drop_null:
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


def drop_unset(value: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Structured content (a model dump: every field, null when empty) as `schema` advertises it: a null
    the schema has no room for is a field left out. Applied to every result, so no tool can send a null
    its compacted output schema would refuse."""
    result = _drop(value, [schema], schema.get("$defs", {}))
    assert isinstance(result, dict)
    return result


def _alternatives(schemas: list[Any], defs: Schema) -> list[Schema]:
    """`schemas` with each `$ref` resolved and each `anyOf`/`oneOf` branch listed beside its parent."""
    found: list[Schema] = []
    for node in schemas:
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**defs.get(ref.removeprefix(_DEFS_PREFIX), {}), **siblings}
        found.append(node)
        for keyword in ("anyOf", "oneOf"):
            found += _alternatives(node.get(keyword, []), defs)
    return found


def _admits_null(node: Schema) -> bool:
    kind = node.get("type")
    if kind is not None:
        return kind == "null" or (isinstance(kind, list) and "null" in kind)
    if "enum" in node:
        return None in node["enum"]
    if "const" in node:
        return node["const"] is None
    return True  # unconstrained


def _drop(value: object, schemas: list[Any], defs: Schema) -> object:
    options = _alternatives(schemas, defs)
    if isinstance(value, dict):
        holders = [o["properties"] for o in options if isinstance(o.get("properties"), dict)]
        if not holders:
            return value  # a free-form object keeps its nulls: they are data
        out: dict[str, object] = {}
        for key, item in value.items():
            subs = [props[key] for props in holders if key in props]
            if not subs:
                out[key] = item
            elif item is not None:
                out[key] = _drop(item, subs, defs)
            elif any(_admits_null(o) for o in _alternatives(subs, defs) if not _branches(o)):
                out[key] = None
        return out
    if isinstance(value, list):
        items = [o["items"] for o in options if isinstance(o.get("items"), dict)]
        return [_drop(item, items, defs) for item in value] if items else value
    return value


def _branches(node: Schema) -> bool:
    """A union decides nothing itself: its branches, listed beside it, do."""
    return "anyOf" in node or "oneOf" in node
