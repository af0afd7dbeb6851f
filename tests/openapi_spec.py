"""The TwelveLabs OpenAPI 3.1 snapshot as a test oracle: operations, $ref-resolving JSON Schema validators,
multipart field names, and schema-derived sample instances.

Shared by the API-client and sandbox tests; extend additively.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# A copy of TwelveLabs' published OpenAPI spec (snapshot of 2026-07-30), kept with the tests so a fresh
# clone validates against it without anything beside the repository.
SPEC_PATH = Path(__file__).parent / "data" / "twelvelabs-openapi-2026-07-30.json"
_SPEC_URI = "urn:twelvelabs-openapi"
_METHODS = ("get", "post", "put", "patch", "delete")


@cache
def load_spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return data


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    return Registry().with_resource(_SPEC_URI, resource)


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator_at(*parts: str) -> Draft202012Validator:
    """A validator for the schema at a JSON pointer into the spec; every `$ref` resolves inside the spec."""
    return Draft202012Validator({"$ref": f"{_SPEC_URI}#{_pointer(*parts)}"}, registry=_registry())


def schema_validator(name: str) -> Draft202012Validator:
    return validator_at("components", "schemas", name)


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in load_spec()["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        out.append((re.compile(f"^{regex}$"), template))
    # Literal segments beat parameters: `/assets/multipart-uploads` before `/assets/{asset_id}`.
    out.sort(key=lambda t: (t[1].count("{"), -len(t[1])))
    return out


def match_path(path: str) -> str | None:
    """The spec's path template for a concrete API path (relative to the `/v1.3` root)."""
    for regex, template in _templates():
        if regex.match(path):
            return template
    return None


def operation(method: str, template: str) -> dict[str, Any]:
    op: dict[str, Any] = load_spec()["paths"][template][method.lower()]
    return op


def resolve(node: Any) -> Any:
    """Follow local `$ref`s (one level at a time, repeatedly) to a concrete schema node."""
    spec = load_spec()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def request_validator(
    method: str, template: str, content_type: str = "application/json"
) -> Draft202012Validator:
    return validator_at("paths", template, method.lower(), "requestBody", "content", content_type, "schema")


def response_validator(
    method: str, template: str, status: str, content_type: str = "application/json"
) -> Draft202012Validator:
    return validator_at(
        "paths", template, method.lower(), "responses", status, "content", content_type, "schema"
    )


def multipart_fields(method: str, template: str) -> set[str]:
    schema = resolve(operation(method, template)["requestBody"]["content"]["multipart/form-data"]["schema"])
    return set(schema.get("properties", {}))


def query_params(method: str, template: str) -> set[str]:
    names = set()
    for param in operation(method, template).get("parameters", []):
        param = resolve(param)
        if param.get("in") == "query":
            names.add(param["name"])
    return names


def success_response(method: str, template: str) -> tuple[str, str] | None:
    """(status, content type) of the first 2xx response that has a body schema."""
    for status, response in operation(method, template).get("responses", {}).items():
        if status.startswith("2"):
            for content_type in resolve(response).get("content", {}):
                return status, content_type
    return None


def all_operations() -> list[tuple[str, str]]:
    return [(m, p) for p, item in load_spec()["paths"].items() for m in item if m in _METHODS]


# ---------------------------------------------------------------- sample instances


def sample(schema: Any, *, depth: int = 0) -> Any:
    """A deterministic instance of a schema, filling every property: the first branch of each oneOf/anyOf,
    the first enum value, ISO dates for date-times. Good enough to exercise parsers against the contract."""
    schema = resolve(schema)
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [resolve(b) for b in schema[key]]
            non_null = [b for b in branches if b.get("type") != "null"] or branches
            return sample(non_null[0], depth=depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = sample(part, depth=depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: sample(sub, depth=depth + 1) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        item = sample(schema.get("items", {}), depth=depth + 1)
        return [] if item is None else [item]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-07-11T03:13:57Z"
        if fmt in ("uri", "url"):
            return "https://example.com/x"
        return "sample"
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    return None


# ---------------------------------------------------------------- response conformance


def validate_response(method: str, path_template: str, status: int | str, body: Any) -> None:
    """Assert ``body`` matches the spec's JSON schema for that operation and status (AssertionError listing
    every violation otherwise). ``path_template`` is the spec's template, e.g. ``/indexes/{index-id}``."""
    validator = response_validator(method, path_template, str(status))
    assert_valid(validator, body, f"{method.upper()} {path_template} {status}")


def assert_valid(validator: Draft202012Validator, body: Any, label: str) -> None:
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:20]]
        raise AssertionError(f"{label} violates the spec:\n" + "\n".join(lines))


def stream_event_validator(event_type: str) -> Draft202012Validator | None:
    """The `ResponseStreamEvent` variant for one event ``type`` (None when the snapshot has none, e.g.
    ``keepalive``). The spec's oneOf repeats the `response.*` wrapper variant once per event type, so
    validating against the whole oneOf always fails for those; this picks the first variant by `type`."""
    branches = resolve(load_spec()["components"]["schemas"]["ResponseStreamEvent"])["oneOf"]
    for i, branch in enumerate(branches):
        kind = resolve(resolve(branch)["properties"]["type"])
        if event_type in kind.get("enum", ()) or kind.get("const") == event_type:
            return validator_at("components", "schemas", "ResponseStreamEvent", "oneOf", str(i))
    return None
