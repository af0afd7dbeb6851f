"""Knowledge stores and /responses over real HTTP on loopback, against the sandbox engine and routes.

Until the core sandbox's ``create_app`` lands, the app is assembled here from the same pieces (engine,
asset routes, knowledge/Jockey routes) and served by uvicorn on an ephemeral port.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.openapi_spec import response_validator
from tl_mcp.samples import SampleInfo, make_sample_video
from tl_mcp.sandbox import jockey, knowledge
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.jockey_base import JockeyOptions
from tl_mcp.sandbox.routes import assets


@dataclass
class Sandbox:
    base_url: str
    client: httpx.Client
    sample: SampleInfo
    asset_id: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("ks")
    engine = Engine(SandboxConfig(data_dir=root / "data", analyzers="none"))
    engine.start()
    app = Starlette(routes=[Mount("/v1.3", routes=[*assets.routes, *knowledge.routes, *jockey.routes])])
    app.state.engine = engine
    app.state.url_secret = secrets.token_bytes(16)
    app.state.tl_jockey_options = JockeyOptions(keepalive_interval_s=0.2, page_token_ttl_s=1.5)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/v1.3"
    sample = make_sample_video(root / "sample.mp4", speech=False)
    client = httpx.Client(base_url=base, headers={"x-api-key": "k"}, timeout=30)
    with sample.path.open("rb") as fh:
        r = client.post("/assets", data={"method": "direct"}, files={"file": ("sample.mp4", fh, "video/mp4")})
    assert r.status_code in (200, 201), r.text
    try:
        yield Sandbox(base, client, sample, r.json()["_id"])
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)
        engine.stop()


def _wait_ready(sb: Sandbox, ks: str, item: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = sb.client.get(f"/knowledge-stores/{ks}/items/{item}").json()
        if body["status"] in ("ready", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError("item did not finish processing within 60 s")


@pytest.fixture(scope="module")
def store(sb: Sandbox) -> tuple[str, str]:
    r = sb.client.post("/knowledge-stores", json={"name": "demo", "metadata": {"team": "qa"}})
    assert r.status_code == 201, r.text
    response_validator("post", "/knowledge-stores", "201").validate(r.json())
    ks = r.json()["_id"]
    r = sb.client.post(f"/knowledge-stores/{ks}/items", json={"asset_id": sb.asset_id, "asset_type": "video"})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    item = _wait_ready(sb, ks, r.json()["_id"])
    assert item["status"] == "ready", item
    response_validator("get", "/knowledge-stores/{knowledge_store_id}/items/{item_id}", "200").validate(item)
    return ks, item["_id"]


def _phrase(sb: Sandbox) -> str:
    return sb.sample.subtitles[1].text


def test_store_search_finds_the_subtitle_phrase(sb: Sandbox, store: tuple[str, str]) -> None:
    ks, item = store
    cue = sb.sample.subtitles[1]
    r = sb.client.post(
        f"/knowledge-stores/{ks}/search",
        json={"query": {"text": cue.text}, "search_options": {"video": {"modalities": ["visual", "audio"]}}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    response_validator("post", "/knowledge-stores/{knowledge_store_id}/search", "200").validate(body)
    top = body["data"][0]
    assert top["item_id"] == item
    match = top["matches"][0]
    assert match["start_sec"] <= cue.start + 0.5 and match["end_sec"] >= cue.end - 0.5


def test_search_pages_with_tokens_and_expired_tokens_are_gone(sb: Sandbox, store: tuple[str, str]) -> None:
    ks, _ = store
    words = " ".join(c.text for c in sb.sample.subtitles)
    body = {"query": {"text": words}, "page_size": 1, "search_options": {"video": {"modalities": ["audio"]}}}
    first = sb.client.post(f"/knowledge-stores/{ks}/search", json=body).json()
    assert len(first["data"]) == 1 and "next_page_token" in first
    second = sb.client.post(f"/knowledge-stores/{ks}/search", json={"page_token": first["next_page_token"]})
    assert second.status_code == 200 and second.json()["data"][0]["rank"] == 2
    bad = sb.client.post(f"/knowledge-stores/{ks}/search", json={"page_token": "nonsense"})
    assert bad.status_code == 400 and bad.json()["code"] == "parameter_invalid"
    time.sleep(1.6)
    gone = sb.client.post(f"/knowledge-stores/{ks}/search", json={"page_token": first["next_page_token"]})
    assert gone.status_code == 410, gone.text
    response_validator("post", "/knowledge-stores/{knowledge_store_id}/search", "410").validate(gone.json())


def test_lists_paginate_and_a_page_past_the_end_is_empty(sb: Sandbox, store: tuple[str, str]) -> None:
    ks, item = store
    page = sb.client.get(f"/knowledge-stores/{ks}/items", params={"page": 1, "page_limit": 1}).json()
    assert page["page_info"]["total_results"] == 1 and page["data"][0]["_id"] == item
    past = sb.client.get(f"/knowledge-stores/{ks}/items", params={"page": 5})
    assert past.status_code == 200 and past.json()["data"] == []
    missing = sb.client.get("/knowledge-stores/ks_nope")
    assert missing.status_code == 404 and missing.json()["code"] == "resource_not_exist"


def test_item_collections(sb: Sandbox, store: tuple[str, str]) -> None:
    ks, item = store
    r = sb.client.post(f"/knowledge-stores/{ks}/item-collections", json={"name": "favs"})
    assert r.status_code == 201 and r.json()["_id"].startswith("ksic_")
    cid = r.json()["_id"]
    added = sb.client.post(
        f"/knowledge-stores/{ks}/item-collections/{cid}/items/add", json={"item_ids": [item]}
    )
    assert added.json()["member_count"] == 1
    dup = sb.client.post(f"/knowledge-stores/{ks}/item-collections", json={"name": "favs"})
    assert dup.status_code == 400


def _events(raw: str) -> tuple[list[dict[str, Any]], bool]:
    events, done = [], False
    for block in raw.split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln]
        data = [ln[6:] for ln in lines if ln.startswith("data: ")]
        if not data:
            continue
        if data[0] == "[DONE]":
            done = True
            continue
        event = json.loads(data[0])
        assert lines[0] == f"event: {event['type']}"
        events.append(event)
    return events, done


def test_responses_stream_in_documented_order_with_citations(sb: Sandbox, store: tuple[str, str]) -> None:
    ks, item = store
    body = {
        "knowledge_store_id": ks,
        "stream": True,
        "input": [{"type": "message", "role": "user", "content": _phrase(sb)}],
    }
    r = sb.client.post("/responses", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events, done = _events(r.text)
    assert done
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
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
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    part = final["output"][0]["content"][0]
    assert part["text"] == text and part["annotations"]
    for ann in part["annotations"]:
        assert text[ann["start_index"] : ann["end_index"] + 1].startswith("[")
        assert ann["item_id"] == item
    assert final["usage"]["output_tokens"] > 0 and final["session_id"].startswith("sess_")


def test_sessions_continue_and_reject_another_store(sb: Sandbox, store: tuple[str, str]) -> None:
    ks, _ = store
    msg = [{"type": "message", "role": "user", "content": _phrase(sb)}]
    first = sb.client.post("/responses", json={"knowledge_store_id": ks, "input": msg}).json()
    sess = first["session_id"]
    follow = sb.client.post(
        "/responses",
        json={
            "knowledge_store_id": ks,
            "session_id": sess,
            "input": [{"type": "message", "role": "user", "content": "and when is it?"}],
        },
    )
    assert follow.status_code == 200 and follow.json()["session_id"] == sess
    assert follow.json()["output"][0]["id"] == f"msg_{sess}_1"
    other = sb.client.post("/knowledge-stores", json={"name": "other"}).json()["_id"]
    wrong = sb.client.post("/responses", json={"knowledge_store_id": other, "session_id": sess, "input": msg})
    assert wrong.status_code == 400 and wrong.json()["code"] == "parameter_invalid"
    response_validator("post", "/responses", "400").validate(wrong.json())
    too_long = sb.client.post(
        "/responses", json={"knowledge_store_id": ks, "input": msg, "instructions": "x" * 2001}
    )
    assert too_long.status_code == 400


def test_intermediate_outputs_and_json_schema(sb: Sandbox, store: tuple[str, str]) -> None:
    ks, item = store
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
    r = sb.client.post(
        "/responses",
        json={
            "knowledge_store_id": ks,
            "input": [{"type": "message", "role": "user", "content": _phrase(sb)}],
            "include": ["intermediate_outputs"],
            "text": {"format": {"type": "json_schema", "name": "moments", "schema": schema}},
        },
    )
    body = r.json()
    kinds = [o["type"] for o in body["output"]]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    call = body["output"][1]
    assert (
        call["name"] == "search_knowledge_store" and json.loads(call["arguments"])["knowledge_store_id"] == ks
    )
    results = json.loads(body["output"][2]["output"])["results"]
    assert results and results[0]["item_id"] == item
    final = body["output"][3]
    assert final["phase"] == "final_answer" and body["output"][0]["phase"] == "commentary"
    parsed = json.loads(final["content"][0]["text"])
    assert parsed["moments"] and parsed["moments"][0]["quote"]


def test_official_sdk_streams_a_jockey_response(sb: Sandbox, store: tuple[str, str]) -> None:
    from twelvelabs import TwelveLabs
    from twelvelabs.types import ResponseInputItem

    ks, item = store
    client = TwelveLabs(api_key="k", base_url=sb.base_url)
    fetched = client.knowledge_stores.retrieve(ks)
    assert fetched.id == ks
    assert client.knowledge_store_items.retrieve(ks, item).status == "ready"
    events = list(
        client.responses.create_stream(
            knowledge_store_id=ks, input=[ResponseInputItem(type="message", role="user", content=_phrase(sb))]
        )
    )
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    final = events[-1].response
    assert final is not None and final.output
    part = final.output[0].content[0]
    assert part.annotations and part.annotations[0].item_id == item
    answer = client.responses.create(
        knowledge_store_id=ks, input=[ResponseInputItem(type="message", role="user", content=_phrase(sb))]
    )
    assert answer.status == "completed" and answer.session_id
