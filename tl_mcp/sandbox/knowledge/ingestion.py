"""A knowledge store's ``ingestion_config``: what enrichment its items get, checked as the contract says.

A ``json_schema`` enrichment is a draft 2020-12 subset (v1.3 §12.1): only the keywords below, a root of
type ``object``, a ``description`` on every property (nested ones too), no nullable types. Anything else
is a 422 naming the first offending place. The sandbox keeps the config but runs no enrichment.
"""

from __future__ import annotations

from typing import Any

from tl_mcp.sandbox.errors import ApiError, invalid
from tl_mcp.sandbox.knowledge.models import JsonObj

#: The JSON Schema keywords an enrichment schema may use; any other keyword is refused.
SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "title",
        "description",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "format",
    }
)
_SCHEMA = "ingestion_config.enrichment_config.json_schema"


def validate_ingestion_config(value: Any) -> JsonObj:
    if not isinstance(value, dict) or not isinstance(value.get("enrichment_config"), dict):
        raise invalid("`ingestion_config` must be an object with an `enrichment_config` object.")
    enrichment = value["enrichment_config"]
    kind = enrichment.get("type")
    if kind is None:  # April-2026 form: no discriminator, exactly one of the two fields
        kind = (
            "json_schema"
            if "json_schema" in enrichment
            else "description"
            if "description" in enrichment
            else None
        )
    if kind == "description":
        if not isinstance(enrichment.get("description"), str) or not enrichment["description"].strip():
            raise invalid("`ingestion_config.enrichment_config.description` must be a non-empty string.")
    elif kind == "json_schema":
        schema = enrichment.get("json_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise ApiError(
                422,
                "parameter_invalid",
                "`ingestion_config.enrichment_config.json_schema` must be a JSON Schema whose root type is "
                "`object`.",
            )
        _check_schema(schema, _SCHEMA)
    else:
        raise invalid("`ingestion_config.enrichment_config.type` must be `description` or `json_schema`.")
    return value


def _unprocessable(where: str, why: str) -> ApiError:
    return ApiError(422, "parameter_invalid", f"`{where}` {why}")


def _check_schema(node: Any, where: str) -> None:
    if not isinstance(node, dict):
        raise _unprocessable(where, "must be a JSON Schema object.")
    unknown = sorted(set(node) - SCHEMA_KEYWORDS)
    if unknown:
        raise _unprocessable(
            where,
            f"uses `{unknown[0]}`, which enrichment schemas do not support. Allowed keywords: "
            f"{', '.join(sorted(SCHEMA_KEYWORDS))}.",
        )
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        raise _unprocessable(where, "is nullable; enrichment schemas do not support nullable types.")
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], bool):
        raise _unprocessable(f"{where}.additionalProperties", "must be `true` or `false`.")
    properties = node.get("properties", {})
    if not isinstance(properties, dict):
        raise _unprocessable(f"{where}.properties", "must be an object of property schemas.")
    for name, prop in properties.items():
        place = f"{where}.properties.{name}"
        if not isinstance(prop, dict) or not isinstance(prop.get("description"), str):
            raise _unprocessable(
                place, "needs a `description`: every property of an enrichment schema has one."
            )
        _check_schema(prop, place)
    items = node.get("items")
    if items is not None:
        _check_schema(items, f"{where}.items")
    prefix = node.get("prefixItems")
    if prefix is not None:
        if not isinstance(prefix, list):
            raise _unprocessable(f"{where}.prefixItems", "must be an array of schemas.")
        for i, sub in enumerate(prefix):
            _check_schema(sub, f"{where}.prefixItems[{i}]")
