"""A knowledge store's `ingestion_config` over real loopback HTTP: a `json_schema` enrichment is held to the
contract's draft 2020-12 subset (v1.3 §12.1) — a refused one answers 422 naming the place and changes
nothing — and an accepted one comes back as sent, in the spec's shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx2
import pytest

from tests.openapi_spec import validate_response
from tests.sandbox.conftest import client_for
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.engine import Engine


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedSandbox, httpx2.Client]]:
    sb = EmbeddedSandbox.start_in_thread(tmp_path_factory.mktemp("enrich"), analyzers="none")
    try:
        with client_for(sb) as client:
            yield sb, client
    finally:
        sb.stop()


def _stores(sb: EmbeddedSandbox) -> int:
    return int(cast(Engine, sb.engine).db.one("SELECT COUNT(*) AS n FROM ks_stores")["n"])


def _schema(**props: Any) -> dict[str, Any]:
    return {
        "enrichment_config": {"type": "json_schema", "json_schema": {"type": "object", "properties": props}}
    }


SPEAKER = {"type": "string", "description": "Who speaks first."}

REFUSED: list[tuple[dict[str, Any], str]] = [
    (_schema(speaker={"type": "string"}), "properties.speaker` needs a `description`"),
    (_schema(speaker={**SPEAKER, "pattern": "^[A-Z]"}), "uses `pattern`"),
    (_schema(speaker={**SPEAKER, "type": ["string", "null"]}), "nullable"),
    (
        _schema(
            topics={
                "type": "array",
                "description": "Topics.",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            }
        ),
        "items.properties.name` needs a `description`",
    ),
    (
        {
            "enrichment_config": {
                "type": "json_schema",
                "json_schema": {
                    "type": "object",
                    "properties": {},
                    "additionalProperties": {"type": "string"},
                },
            }
        },
        "additionalProperties` must be `true` or `false`",
    ),
    (
        {"enrichment_config": {"type": "json_schema", "json_schema": {"type": "object", "$defs": {}}}},
        "uses `$defs`",
    ),
]


@pytest.mark.parametrize(("config", "says"), REFUSED)
def test_a_schema_outside_the_supported_subset_is_422_and_changes_nothing(
    sandbox: tuple[EmbeddedSandbox, httpx2.Client], config: dict[str, Any], says: str
) -> None:
    sb, client = sandbox
    before = _stores(sb)
    r = client.post("/knowledge-stores", json={"name": "enriched", "ingestion_config": config})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "parameter_invalid" and says in body["message"], body
    assert "ingestion_config.enrichment_config.json_schema" in body["message"]
    assert _stores(sb) == before


def test_a_supported_schema_and_a_description_are_kept_as_sent(
    sandbox: tuple[EmbeddedSandbox, httpx2.Client],
) -> None:
    _, client = sandbox
    schema = _schema(
        speaker=SPEAKER,
        topics={
            "type": "array",
            "description": "Topics discussed.",
            "items": {"type": "string", "enum": ["sales", "support"]},
            "minItems": 1,
        },
        scores={
            "type": "array",
            "description": "First and last score.",
            "prefixItems": [
                {"type": "integer", "description": "First.", "minimum": 0},
                {"type": "integer", "description": "Last.", "maximum": 10},
            ],
        },
    )
    schema["enrichment_config"]["json_schema"]["required"] = ["speaker"]
    schema["enrichment_config"]["json_schema"]["additionalProperties"] = False
    for config in (schema, {"enrichment_config": {"type": "description", "description": "Who speaks."}}):
        r = client.post("/knowledge-stores", json={"name": "enriched", "ingestion_config": config})
        assert r.status_code == 201, r.text
        validate_response("post", "/knowledge-stores", 201, r.json())
        got = client.get(f"/knowledge-stores/{r.json()['_id']}").json()
        assert got["ingestion_config"] == config
