"""Knowledge stores and `/responses` over real loopback HTTP against the real sandbox app (``create_app`` via
``EmbeddedSandbox``): objects and every SSE event checked against the OpenAPI snapshot and the SDK 1.3.6
models, citations, sessions, and bad requests that answer the spec's status and code and change nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx2
import pytest
from twelvelabs.core.pydantic_utilities import parse_obj_as
from twelvelabs.types import ResponseObject, ResponseStreamEvent

from tests.openapi_spec import assert_valid, schema_validator, stream_event_validator, validate_response
from tests.sandbox.conftest import Media, client_for, ready_asset, wait_for
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.engine import Engine

KS = "/knowledge-stores/{knowledge_store_id}"
ITEM = KS + "/items/{item_id}"
COL = KS + "/item-collections/{collection_id}"
TABLES = ("ks_stores", "ks_items", "ks_collections", "ks_collection_members", "ks_search_pages", "jobs")
JOCKEY_TABLES = ("jockey_sessions", "jockey_turns")


@dataclass
class Store:
    sb: EmbeddedSandbox
    client: httpx2.Client
    media: Media
    asset_id: str
    store_id: str
    item_id: str

    @property
    def phrase(self) -> str:
        return self.media.video.subtitles[1].text

    def ask(self, content: str | None = None) -> list[dict[str, Any]]:
        return [{"type": "message", "role": "user", "content": content or self.phrase}]

    def counts(self) -> dict[str, int]:
        db = cast(Engine, self.sb.engine).db
        return {t: int(db.one(f"SELECT COUNT(*) AS n FROM {t}")["n"]) for t in (*TABLES, *JOCKEY_TABLES)}


@pytest.fixture(scope="module")
def ks(tmp_path_factory: pytest.TempPathFactory, media: Media) -> Iterator[Store]:
    sb = EmbeddedSandbox.start_in_thread(
        tmp_path_factory.mktemp("ks"), analyzers="none", search_page_ttl_s=1.5, keepalive_interval_s=0.2
    )
    try:
        with client_for(sb) as client:
            asset_id = ready_asset(client, media.video.path)
            # String values only: the snapshot types metadata as map<string, string>; SDK 1.3.6 widened it
            # (numbers, booleans, string arrays), which test_official_sdk covers.
            r = client.post("/knowledge-stores", json={"name": "demo", "metadata": {"team": "qa"}})
            assert r.status_code == 201, r.text
            validate_response("post", "/knowledge-stores", 201, r.json())
            store_id = r.json()["_id"]
            r = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id})
            assert r.status_code == 202, r.text
            validate_response("post", KS + "/items", 202, r.json())
            assert r.json()["status"] == "queued" and r.json()["asset_type"] == "video"
            item = wait_for(
                lambda: client.get(f"/knowledge-stores/{store_id}/items/{r.json()['_id']}").json(),
                lambda b: b["status"] in ("ready", "failed"),
                timeout=60,
            )
            assert item["status"] == "ready", item
            validate_response("get", ITEM, 200, item)
            yield Store(sb, client, media, asset_id, store_id, item["_id"])
    finally:
        sb.stop()


# ---------------------------------------------------------------- SSE helpers


def sse(raw: str) -> tuple[list[dict[str, Any]], bool]:
    """Events of an SSE body, and whether it ended with ``data: [DONE]``; every frame must be well formed."""
    events: list[dict[str, Any]] = []
    done = False
    assert raw.endswith("\n\n"), "the stream does not end on a frame boundary"
    for block in raw.split("\n\n")[:-1]:
        lines = block.split("\n")
        if lines == ["data: [DONE]"]:
            done = True
            continue
        assert not done, "a frame follows [DONE]"
        assert len(lines) == 2 and lines[1].startswith("data: "), block
        event = json.loads(lines[1].removeprefix("data: "))
        assert lines[0] == f"event: {event['type']}"
        events.append(event)
    return events, done


def conform(events: list[dict[str, Any]]) -> None:
    """Each event against its spec variant (picked by `type`) and against the SDK 1.3.6 union, which
    silently drops anything it cannot parse; keepalive (not in the snapshot) has exactly its two fields."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        if event["type"] == "keepalive":
            assert set(event) == {"type", "sequence_number"}, event
        else:
            validator = stream_event_validator(event["type"])
            assert validator is not None, f"the spec has no stream event of type {event['type']!r}"
            assert_valid(validator, event, f"SSE {event['type']} #{event['sequence_number']}")
        parsed = parse_obj_as(ResponseStreamEvent, event)  # type: ignore[arg-type]
        assert parsed.type == event["type"], (parsed, event)
    for event in events:
        if event["type"] in ("response.completed", "response.failed"):
            check_response_object(event["response"])


def check_response_object(body: dict[str, Any]) -> None:
    assert_valid(schema_validator("ResponseObject"), body, "ResponseObject")
    parse_obj_as(ResponseObject, body)
    assert body["object"] == body["type"] == "response" and "incomplete_details" in body
    for item in body["output"]:
        if item["type"] == "message":
            assert item["phase"] in ("commentary", "final_answer")
            for part in item["content"]:
                assert set(part) >= {"type", "text", "annotations"}


def stream(store: Store, **body: Any) -> tuple[list[dict[str, Any]], bool]:
    payload = {"knowledge_store_id": store.store_id, "input": store.ask(), "stream": True, **body}
    r = store.client.post("/responses", json=payload)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return sse(r.text)


# ---------------------------------------------------------------- knowledge stores


def test_create_app_mounts_the_routes_and_registers_the_item_job() -> None:
    """In a fresh interpreter: items queued before a restart need the job handler before the first request."""
    code = (
        "import tempfile, pathlib\n"
        "from tl_mcp.sandbox.app import create_app\n"
        "from tl_mcp.sandbox.config import SandboxConfig\n"
        "app = create_app(SandboxConfig(data_dir=pathlib.Path(tempfile.mkdtemp()), analyzers='none'))\n"
        "paths = {r.path for r in app.routes[0].routes}\n"
        "workers = app.state.engine.jobs.workers\n"
        "assert 'ks_item' in workers, sorted(workers)\n"
        "assert {'/responses', '/knowledge-stores', '/knowledge-stores/{ks}/items'} <= paths, paths\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_store_item_and_collection_objects_conform(ks: Store) -> None:
    c, store_id = ks.client, ks.store_id
    store = c.get(f"/knowledge-stores/{store_id}").json()
    validate_response("get", KS, 200, store)
    assert store["item_count"] == 1 and store["metadata"] == {"team": "qa"}
    validate_response("get", "/knowledge-stores", 200, c.get("/knowledge-stores").json())
    items = c.get(f"/knowledge-stores/{store_id}/items", params={"status": "ready"}).json()
    validate_response("get", KS + "/items", 200, items)
    assert [i["_id"] for i in items["data"]] == [ks.item_id]
    assert items["data"][0]["system_metadata"]["duration"] > 0

    favs = {"name": "favs", "metadata": {"k": "v"}}
    r = c.post(f"/knowledge-stores/{store_id}/item-collections", json=favs)
    assert r.status_code == 201 and r.json()["_id"].startswith("ksic_")
    validate_response("post", KS + "/item-collections", 201, r.json())
    cid = r.json()["_id"]
    base = f"/knowledge-stores/{store_id}/item-collections/{cid}"
    added = c.post(base + "/items/add", json={"item_ids": [ks.item_id]})
    validate_response("post", COL + "/items/add", 200, added.json())
    assert added.json()["member_count"] == 1
    validate_response("get", COL + "/items", 200, c.get(base + "/items").json())
    validate_response("get", COL, 200, c.get(base).json())
    patched = c.patch(base, json={"description": "the good ones"})
    validate_response("patch", COL, 200, patched.json())
    validate_response(
        "get", KS + "/item-collections", 200, c.get(f"/knowledge-stores/{store_id}/item-collections").json()
    )
    dup = c.post(f"/knowledge-stores/{store_id}/item-collections", json={"name": "favs"})
    assert dup.status_code == 400
    validate_response("post", KS + "/item-collections", 400, dup.json())
    assert c.post(base + "/items/remove", json={"item_ids": [ks.item_id]}).status_code == 200
    assert c.delete(base).status_code == 200
    assert c.get(base).status_code == 404

    renamed = c.patch(f"/knowledge-stores/{store_id}", json={"description": "sample clip"})
    validate_response("patch", KS, 200, renamed.json())
    assert renamed.json()["description"] == "sample clip" and renamed.json()["name"] == "demo"


def test_items_and_stores_delete(ks: Store) -> None:
    c = ks.client
    scratch = c.post("/knowledge-stores", json={"name": "scratch"}).json()["_id"]
    item = c.post(f"/knowledge-stores/{scratch}/items", json={"asset_id": ks.asset_id}).json()["_id"]
    assert c.delete(f"/knowledge-stores/{scratch}/items/{item}").status_code == 200
    assert c.get(f"/knowledge-stores/{scratch}/items/{item}").status_code == 404
    assert c.get(f"/knowledge-stores/{scratch}").json()["item_count"] == 0
    assert c.delete(f"/knowledge-stores/{scratch}").status_code == 200
    assert c.get(f"/knowledge-stores/{scratch}").status_code == 404
    assert c.get(f"/knowledge-stores/{ks.store_id}/items/{ks.item_id}").json()["status"] == "ready"


def test_store_search_finds_the_subtitle_phrase(ks: Store) -> None:
    cue = ks.media.video.subtitles[1]
    r = ks.client.post(
        f"/knowledge-stores/{ks.store_id}/search",
        json={"query": {"text": cue.text}, "search_options": {"video": {"modalities": ["visual", "audio"]}}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    validate_response("post", KS + "/search", 200, body)
    top = body["data"][0]
    assert top["item_id"] == ks.item_id
    match = top["matches"][0]
    assert match["start_sec"] <= cue.start + 0.5 and match["end_sec"] >= cue.end - 0.5


def test_search_pages_with_tokens_and_expired_tokens_are_gone(ks: Store) -> None:
    words = " ".join(c.text for c in ks.media.video.subtitles)
    body = {"query": {"text": words}, "page_size": 1, "search_options": {"video": {"modalities": ["audio"]}}}
    path = f"/knowledge-stores/{ks.store_id}/search"
    first = ks.client.post(path, json=body).json()
    assert len(first["data"]) == 1 and "next_page_token" in first
    second = ks.client.post(path, json={"page_token": first["next_page_token"]})
    assert second.status_code == 200 and second.json()["data"][0]["rank"] == 2
    bad = ks.client.post(path, json={"page_token": "nonsense"})
    assert bad.status_code == 400 and bad.json()["code"] == "parameter_invalid"
    validate_response("post", KS + "/search", 400, bad.json())
    time.sleep(1.6)
    gone = ks.client.post(path, json={"page_token": first["next_page_token"]})
    assert gone.status_code == 410, gone.text
    validate_response("post", KS + "/search", 410, gone.json())


def test_lists_paginate_and_a_page_past_the_end_is_empty(ks: Store) -> None:
    path = f"/knowledge-stores/{ks.store_id}/items"
    page = ks.client.get(path, params={"page": 1, "page_limit": 1}).json()
    assert page["page_info"]["total_results"] == 1 and page["data"][0]["_id"] == ks.item_id
    past = ks.client.get(path, params={"page": 5})
    assert past.status_code == 200 and past.json()["data"] == []


# ---------------------------------------------------------------- /responses


def test_stream_conforms_in_documented_order_with_citations(ks: Store) -> None:
    events, done = stream(ks)
    assert done
    conform(events)
    types = [e["type"] for e in events if e["type"] != "keepalive"]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["phase"] == "final_answer"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    part_added = next(e for e in events if e["type"] == "response.content_part.added")
    part_done = next(e for e in events if e["type"] == "response.content_part.done")
    assert part_added["part"]["annotations"] == [] and part_done["part"]["annotations"]
    final = events[-1]["response"]
    part = final["output"][0]["content"][0]
    assert part["text"] == text and part["annotations"] == part_done["part"]["annotations"]
    for ann in part["annotations"]:
        assert text[ann["start_index"] : ann["end_index"] + 1].startswith("[")
        assert ann["item_id"] == ks.item_id and ann["type"] == "video_citation"
    assert final["usage"]["output_tokens"] > 0 and final["session_id"].startswith("sess_")


def test_stream_with_intermediate_outputs_conforms(ks: Store) -> None:
    events, done = stream(ks, include=["intermediate_outputs"])
    assert done
    conform(events)
    types = [e["type"] for e in events]
    assert "response.function_call_arguments.done" in types
    phases = [
        e["item"]["phase"]
        for e in events
        if e["type"] == "response.output_item.added" and "phase" in e["item"]
    ]
    assert phases == ["commentary", "final_answer"]


def test_json_response_conforms(ks: Store) -> None:
    r = ks.client.post("/responses", json={"knowledge_store_id": ks.store_id, "input": ks.ask()})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    check_response_object(body)
    assert body["status"] == "completed" and body["incomplete_details"] is None


def test_sessions_continue_and_reject_another_store(ks: Store) -> None:
    first = ks.client.post("/responses", json={"knowledge_store_id": ks.store_id, "input": ks.ask()}).json()
    sess = first["session_id"]
    follow = ks.client.post(
        "/responses",
        json={"knowledge_store_id": ks.store_id, "session_id": sess, "input": ks.ask("and when is it?")},
    )
    assert follow.status_code == 200 and follow.json()["session_id"] == sess
    assert follow.json()["output"][0]["id"] == f"msg_{sess}_1"
    other = ks.client.post("/knowledge-stores", json={"name": "other"}).json()["_id"]
    before = ks.counts()
    for stream_flag in (False, True):
        wrong = ks.client.post(
            "/responses",
            json={"knowledge_store_id": other, "session_id": sess, "input": ks.ask(), "stream": stream_flag},
        )
        assert wrong.status_code == 400 and wrong.json()["code"] == "parameter_invalid"
        assert sess in wrong.json()["message"] and other in wrong.json()["message"]
        validate_response("post", "/responses", 400, wrong.json())
    assert ks.counts() == before
    assert ks.client.delete(f"/knowledge-stores/{other}").status_code == 200


def test_json_schema_output_with_intermediate_steps(ks: Store) -> None:
    schema = {
        "type": "object",
        "properties": {
            "moments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "start_sec": {"type": "number"},
                        "quote": {"type": "string"},
                    },
                },
            }
        },
    }
    r = ks.client.post(
        "/responses",
        json={
            "knowledge_store_id": ks.store_id,
            "input": ks.ask(),
            "include": ["intermediate_outputs"],
            "text": {"format": {"type": "json_schema", "name": "moments", "schema": schema}},
        },
    )
    body = r.json()
    check_response_object(body)
    kinds = [o["type"] for o in body["output"]]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    call = body["output"][1]
    assert call["name"] == "search_knowledge_store"
    assert json.loads(call["arguments"])["knowledge_store_id"] == ks.store_id
    results = json.loads(body["output"][2]["output"])["results"]
    assert results and results[0]["item_id"] == ks.item_id
    final = body["output"][3]
    assert final["phase"] == "final_answer" and body["output"][0]["phase"] == "commentary"
    parsed = json.loads(final["content"][0]["text"])
    assert parsed["moments"] and parsed["moments"][0]["quote"]


def test_json_schema_fields_without_evidence_are_null_and_reported(ks: Store) -> None:
    schema = {
        "type": "object",
        "properties": {
            "quote": {"type": "string"},
            "release_date": {"type": ["string", "null"]},
            "rating": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
        },
    }
    r = ks.client.post(
        "/responses",
        json={
            "knowledge_store_id": ks.store_id,
            "input": ks.ask(),
            "text": {"format": {"type": "json_schema", "name": "facts", "schema": schema}},
        },
    )
    body = r.json()
    check_response_object(body)
    parsed = json.loads(body["output"][-1]["content"][0]["text"])
    assert parsed["quote"] and parsed["release_date"] is None and parsed["rating"] is None
    assert body["unfilled"] == ["release_date", "rating"]


def test_json_schema_lists_of_topics_and_quotes_come_from_the_moments(ks: Store) -> None:
    # Before: Jockey's filler returned [] for both, and did not report them.
    strings = {"type": "array", "items": {"type": "string"}}
    schema = {"type": "object", "properties": {"topics": strings, "quotes": strings}}
    r = ks.client.post(
        "/responses",
        json={
            "knowledge_store_id": ks.store_id,
            "input": ks.ask(),
            "text": {"format": {"type": "json_schema", "name": "lists", "schema": schema}},
        },
    )
    body = r.json()
    check_response_object(body)
    parsed = json.loads(body["output"][-1]["content"][0]["text"])
    assert parsed["quotes"] and body["unfilled"] == []
    assert len(set(parsed["quotes"])) == len(parsed["quotes"])
    # A topic is a short phrase of one of the quoted moments, not the moment's whole text.
    assert parsed["topics"] and all(t not in parsed["quotes"] for t in parsed["topics"])
    assert all(any(t.lower() in q.lower() for q in parsed["quotes"]) for t in parsed["topics"])


def test_a_json_schema_ref_the_sandbox_cannot_follow_is_refused_saying_what_to_do(ks: Store) -> None:
    # Before: the schema check passed and validating the fill raised, a 500.
    schema: dict[str, Any] = {"type": "object", "properties": {"quote": {"$ref": "#/$defs/quote"}}}
    payload = {
        "knowledge_store_id": ks.store_id,
        "input": ks.ask(),
        "text": {"format": {"type": "json_schema", "name": "refs", "schema": schema}},
    }
    before = ks.counts()
    r = ks.client.post("/responses", json=payload)
    assert r.status_code == 400, r.text
    validate_response("post", "/responses", 400, r.json())
    message = r.json()["message"]
    assert "`#/$defs/quote`" in message and "under `$defs`" in message
    assert ks.counts() == before
    # What it says to do works.
    schema["$defs"] = {"quote": {"type": "string"}}
    r = ks.client.post("/responses", json=payload)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["output"][-1]["content"][0]["text"])["quote"]


def test_a_json_schema_asking_for_more_entries_than_the_sandbox_gives_is_refused_at_once(ks: Store) -> None:
    # Before: checking a minItems of 30 million did not end (it built the 30 million placeholders).
    items = {"type": "array", "items": {"type": "string"}, "minItems": 30_000_000}
    schema = {"type": "object", "properties": {"moments": {"type": "object", "properties": {"tags": items}}}}
    payload = {
        "knowledge_store_id": ks.store_id,
        "input": ks.ask(),
        "text": {"format": {"type": "json_schema", "name": "many", "schema": schema}},
    }
    before = ks.counts()
    r = ks.client.post("/responses", json=payload, timeout=10)
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert (
        "30000000 entries at properties/moments/properties/tags" in message and "lower `minItems`" in message
    )
    assert ks.counts() == before


# ---------------------------------------------------------------- bad requests

MSG = [{"type": "message", "role": "user", "content": "what is said?"}]
BAD_STORE_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("post", "/knowledge-stores", {}, 400, "parameter_not_provided"),
    ("post", "/knowledge-stores", {"name": 5}, 400, "parameter_invalid"),
    ("post", "/knowledge-stores", {"name": "  "}, 400, "parameter_invalid"),
    ("post", "/knowledge-stores", {"name": "x", "metadata": {"a": None}}, 400, "parameter_invalid"),
    ("post", "/knowledge-stores", {"name": "x", "metadata": {"a": {"b": 1}}}, 400, "parameter_invalid"),
    (
        "post",
        "/knowledge-stores",
        {"name": "x", "metadata": {str(i): i for i in range(11)}},
        400,
        "parameter_invalid",
    ),
    ("post", "/knowledge-stores", {"name": "x", "ingestion_config": {"nope": 1}}, 400, "parameter_invalid"),
    ("post", "/knowledge-stores", b"{not json", 400, "parameter_invalid"),
    ("post", "/knowledge-stores", [1, 2], 400, "parameter_invalid"),
    ("get", "/knowledge-stores?page_limit=500", None, 400, "parameter_invalid"),
    ("get", "/knowledge-stores?sort_option=sideways", None, 400, "parameter_invalid"),
    ("get", "/knowledge-stores/ks_nope", None, 404, "resource_not_exist"),
    ("patch", "/knowledge-stores/ks_nope", {"name": "y"}, 404, "resource_not_exist"),
    ("delete", "/knowledge-stores/ks_nope", None, 404, "resource_not_exist"),
    ("patch", "/knowledge-stores/{ks}", {"name": ""}, 400, "parameter_invalid"),
    ("patch", "/knowledge-stores/{ks}", {"ingestion_config": {}}, 400, "parameter_invalid"),
    ("patch", "/knowledge-stores/{ks}", {"metadata": {"a": [1, 2]}}, 400, "parameter_invalid"),
    ("post", "/knowledge-stores/{ks}/items", {}, 400, "parameter_not_provided"),
    ("post", "/knowledge-stores/{ks}/items", {"asset_id": 7}, 400, "parameter_invalid"),
    (
        "post",
        "/knowledge-stores/{ks}/items",
        {"asset_id": "0123456789abcdef01234567"},
        400,
        "parameter_invalid",
    ),
    (
        "post",
        "/knowledge-stores/{ks}/items",
        {"asset_id": "{asset}", "asset_type": "image"},
        400,
        "parameter_invalid",
    ),
    (
        "post",
        "/knowledge-stores/{ks}/items",
        {"asset_id": "{asset}", "asset_type": "document"},
        400,
        "parameter_invalid",
    ),
    (
        "post",
        "/knowledge-stores/{ks}/items",
        {"asset_id": "{asset}", "metadata": {"k": None}},
        400,
        "parameter_invalid",
    ),
    ("post", "/knowledge-stores/ks_nope/items", {"asset_id": "{asset}"}, 404, "resource_not_exist"),
    ("get", "/knowledge-stores/{ks}/items?status=bogus", None, 400, "parameter_invalid"),
    ("get", "/knowledge-stores/{ks}/items?page=0", None, 400, "parameter_invalid"),
    ("get", "/knowledge-stores/{ks}/items/ksi_nope", None, 404, "resource_not_exist"),
    ("delete", "/knowledge-stores/{ks}/items/ksi_nope", None, 404, "resource_not_exist"),
    ("post", "/knowledge-stores/{ks}/search", {}, 400, "parameter_not_provided"),
    ("post", "/knowledge-stores/{ks}/search", {"query": "apples"}, 400, "parameter_invalid"),
    (
        "post",
        "/knowledge-stores/{ks}/search",
        {"query": {"text": "x"}, "page_size": 0},
        400,
        "parameter_invalid",
    ),
    (
        "post",
        "/knowledge-stores/{ks}/search",
        {"query": {"text": "x"}, "group_by": "asset"},
        400,
        "parameter_invalid",
    ),
    (
        "post",
        "/knowledge-stores/{ks}/search",
        {"query": {"text": "x"}, "search_options": {"video": {"modalities": ["smell"]}}},
        400,
        "parameter_invalid",
    ),
    ("post", "/knowledge-stores/ks_nope/search", {"query": {"text": "x"}}, 404, "resource_not_exist"),
    ("post", "/knowledge-stores/{ks}/item-collections", {}, 400, "parameter_not_provided"),
    (
        "post",
        "/knowledge-stores/{ks}/item-collections/ksic_nope/items/add",
        {"item_ids": ["{item}"]},
        404,
        "resource_not_exist",
    ),
    ("get", "/knowledge-stores/{ks}/item-collections/ksic_nope", None, 404, "resource_not_exist"),
]
BAD_RESPONSE_REQUESTS: list[tuple[Any, int, str]] = [
    (b"", 400, "parameter_invalid"),
    (b"{not json", 400, "parameter_invalid"),
    ({"input": MSG}, 400, "parameter_not_provided"),
    ({"knowledge_store_id": "{ks}"}, 400, "parameter_not_provided"),
    ({"knowledge_store_id": 5, "input": MSG}, 400, "parameter_invalid"),
    ({"knowledge_store_id": "ks_nope", "input": MSG}, 404, "resource_not_exist"),
    ({"knowledge_store_id": "ks_nope", "input": MSG, "stream": True}, 404, "resource_not_exist"),
    ({"knowledge_store_id": "{ks}", "input": "hello"}, 400, "parameter_invalid"),
    ({"knowledge_store_id": "{ks}", "input": []}, 400, "parameter_invalid"),
    (
        {"knowledge_store_id": "{ks}", "input": [{"type": "message", "role": "user", "content": 3}]},
        400,
        "parameter_invalid",
    ),
    (
        {
            "knowledge_store_id": "{ks}",
            "input": [{"type": "message", "role": "user", "content": "x" * 10_001}],
        },
        400,
        "parameter_invalid",
    ),
    ({"knowledge_store_id": "{ks}", "input": MSG, "instructions": "x" * 2001}, 400, "parameter_invalid"),
    (
        {"knowledge_store_id": "{ks}", "input": MSG, "instructions": "x" * 2001, "stream": True},
        400,
        "parameter_invalid",
    ),
    ({"knowledge_store_id": "{ks}", "input": MSG, "instructions": ["be brief"]}, 400, "parameter_invalid"),
    ({"knowledge_store_id": "{ks}", "input": MSG, "session_id": "sess_nope"}, 404, "resource_not_exist"),
    ({"knowledge_store_id": "{ks}", "input": MSG, "session_id": 12}, 400, "parameter_invalid"),
    ({"knowledge_store_id": "{ks}", "input": MSG, "stream": "yes"}, 400, "parameter_invalid"),
    ({"knowledge_store_id": "{ks}", "input": MSG, "include": ["reasoning"]}, 400, "parameter_invalid"),
    (
        {"knowledge_store_id": "{ks}", "input": MSG, "selections": [{"kind": "item", "id": "ksi_nope"}]},
        400,
        "parameter_invalid",
    ),
    (
        {
            "knowledge_store_id": "{ks}",
            "input": [{"type": "message", "role": "user", "content": "about {{sel:1}}"}],
            "selections": [{"kind": "item", "id": "{item}"}],
        },
        400,
        "parameter_invalid",
    ),
    (
        {
            "knowledge_store_id": "{ks}",
            "input": MSG,
            "text": {"format": {"type": "json_schema", "name": "x"}},
        },
        400,
        "parameter_not_provided",
    ),
    (
        {"knowledge_store_id": "{ks}", "input": MSG, "text": {"format": {"type": "xml"}}},
        400,
        "parameter_invalid",
    ),
]


def _fill(value: Any, ks: Store) -> Any:
    if isinstance(value, str):
        return (
            value.replace("{ks}", ks.store_id).replace("{asset}", ks.asset_id).replace("{item}", ks.item_id)
        )
    if isinstance(value, list):
        return [_fill(v, ks) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ks) for k, v in value.items()}
    return value


def _send(ks: Store, method: str, path: str, body: Any) -> httpx2.Response:
    if isinstance(body, bytes):
        return ks.client.request(method, path, content=body, headers={"content-type": "application/json"})
    if body is None:
        return ks.client.request(method, path)
    return ks.client.request(method, path, json=_fill(body, ks))


def _check_error(r: httpx2.Response, status: int, code: str) -> None:
    assert (r.status_code, r.headers["content-type"]) == (status, "application/json"), r.text
    body = r.json()
    assert body["code"] == code, body
    assert len(body["message"]) > 20, body  # says what is wrong and what to do, not just a code
    # Every error shares the 400 schema's {code, message} shape, whatever its status.
    validate_response("post", "/knowledge-stores", 400, body)


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_STORE_REQUESTS)
def test_bad_store_requests_change_nothing(
    ks: Store, method: str, path: str, body: Any, status: int, code: str
) -> None:
    before = ks.counts()
    _check_error(_send(ks, method, _fill(path, ks), body), status, code)
    assert ks.counts() == before


@pytest.mark.parametrize(("body", "status", "code"), BAD_RESPONSE_REQUESTS)
def test_bad_response_requests_change_nothing(ks: Store, body: Any, status: int, code: str) -> None:
    before = ks.counts()
    r = _send(ks, "post", "/responses", body)
    _check_error(r, status, code)
    if status == 400:
        validate_response("post", "/responses", 400, r.json())
    assert ks.counts() == before
