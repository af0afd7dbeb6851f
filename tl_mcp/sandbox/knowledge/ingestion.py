"""A knowledge store's ``ingestion_config``: what enrichment its items get, checked as the contract says."""

from __future__ import annotations

from typing import Any

from tl_mcp.sandbox.errors import ApiError, invalid
from tl_mcp.sandbox.knowledge.models import JsonObj


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
    else:
        raise invalid("`ingestion_config.enrichment_config.type` must be `description` or `json_schema`.")
    return value
