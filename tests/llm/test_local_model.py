"""The local answerer with a real model (SmolLM2-135M via xllamacpp), through the sandbox's HTTP API:
constrained JSON is valid, every citation names a retrieved moment holding the sentence's numbers and key
words (or the answer falls back and says why), streaming gives more than one delta, follow-ups run, and
every response says what made it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest

from tests.sandbox.conftest import client_for, ready_asset, wait_for
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.answerers.local import LocalModel
from tl_mcp.sandbox.answerers.text import marker
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.jockey.structured import tighten

# `make test` leaves these to `make test-llm` (-m "not llm"), which installs the model first.
pytestmark = pytest.mark.llm

MARK = re.compile(r"\[\d\d:\d\d-\d\d:\d\d\]")
SCHEMA = {"type": "object", "properties": {"fruit": {"type": "string"}, "price_dollars": {"type": "integer"}}}


@dataclass
class World:
    client: httpx2.Client
    store_id: str
    model: Path
    asset_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("llm")
    video = make_sample_video(root / "clip.mp4", speech=False)
    sb = EmbeddedSandbox.start_in_thread(root / "sb", analyzers="none", answerer="local", llm_model=smollm2)
    try:
        with client_for(sb) as client:
            asset_id = ready_asset(client, video.path)
            store_id = client.post("/knowledge-stores", json={"name": "llm"}).json()["_id"]
            item = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id}).json()
            wait_for(
                lambda: client.get(f"/knowledge-stores/{store_id}/items/{item['_id']}").json(),
                lambda b: b["status"] == "ready",
                timeout=60,
            )
            yield World(client, store_id, smollm2, asset_id)
    finally:
        sb.stop()


def ask(world: World, question: str, **body: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """A streamed turn: (final response, text deltas, markers of the moments retrieval returned)."""
    payload = {
        "knowledge_store_id": world.store_id,
        "input": [{"type": "message", "role": "user", "content": question}],
        "include": ["intermediate_outputs"],
        "stream": True,
        **body,
    }
    r = world.client.post("/responses", json=payload, timeout=120)
    assert r.status_code == 200, r.text
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    final = next(e["response"] for e in events if e["type"] == "response.completed")
    answer = next(i for i in final["output"] if i["type"] == "message" and i["phase"] == "final_answer")
    deltas = [
        e["delta"]
        for e in events
        if e["type"] == "response.output_text.delta" and e["item_id"] == answer["id"]
    ]
    found = next(i for i in final["output"] if i["type"] == "function_call_output")
    retrieved = [marker(m["start_sec"], m["end_sec"]) for m in json.loads(found["output"])["results"]]
    return final, deltas, retrieved


def text_of(response: dict[str, Any]) -> str:
    answer = next(i for i in response["output"] if i["type"] == "message" and i["phase"] == "final_answer")
    return "".join(p["text"] for p in answer["content"])


def test_the_model_under_a_schema_always_gives_valid_json(world: World) -> None:
    model = LocalModel(world.model)
    tight = tighten(SCHEMA)
    # Bounded, so the answer must end within the 96 tokens asked for: this model can loop inside a string
    # ("2018-01-01 2018-01-02 …"), and how it loops depends on what prompt prefix llama.cpp had cached.
    bounded = {**tight, "properties": {**tight["properties"], "fruit": {"type": "string", "maxLength": 24}}}
    messages = [
        {
            "role": "system",
            "content": "Fill the JSON object from the evidence.\n\nEvidence:\n[00:06-00:12] "
            "(subtitles) Fresh apples from the orchard cost two dollars per pound.",
        },
        {"role": "user", "content": "How much do the fresh apples cost?"},
    ]
    value = json.loads("".join(model.chat(messages, bounded, 96)))
    jsonschema.validate(value, bounded)

    # Through the sandbox: valid JSON for the caller's schema, whether the model's or (if its numbers are
    # not in the evidence) the extractive fill, and the response says which.
    fmt = {"text": {"format": {"type": "json_schema", "name": "price", "schema": SCHEMA}}}
    final, _, _ = ask(world, "How much do the fresh apples cost?", **fmt)
    jsonschema.validate(json.loads(text_of(final)), tight)
    made = final["generated_by"]
    assert made["answerer"] in ("local", "extractive")
    if made["answerer"] == "local":
        assert made["model"] == world.model.name
    else:
        assert "set aside" in made["note"]


def test_every_citation_names_a_retrieved_moment_and_the_answer_streams(world: World) -> None:
    final, deltas, retrieved = ask(world, "How much do the fresh apples cost?")
    text = text_of(final)
    assert len(deltas) > 1 and "".join(deltas) == text
    assert MARK.findall(text) and set(MARK.findall(text)) <= set(retrieved)
    made = final["generated_by"]
    assert made["answerer"] == "local" or "set aside" in (made["note"] or "")


def test_an_unanswerable_question_gets_no_invented_answer(world: World) -> None:
    final, _, retrieved = ask(world, "When were the fresh apples picked?")
    text = text_of(final)
    # Whatever the small model said, nothing reaches the caller as an answer that the moments do not
    # hold (no date, no time of day): a refusal, a fallback quoting why, or only the evidence's words.
    claims = text.split("The retrieved moments themselves:")[-1]
    assert not re.search(r"\b(19|20)\d\d\b|\b(morning|yesterday|monday|january)\b", claims, re.IGNORECASE)
    assert set(MARK.findall(text)) <= set(retrieved)
    assert final["generated_by"]["answerer"] in ("local", "extractive")


def test_a_follow_up_runs_with_the_previous_turn(world: World) -> None:
    first, _, _ = ask(world, "How much do the fresh apples cost?")
    follow, _, retrieved = ask(world, "Repeat the price you just told me.", session_id=first["session_id"])
    text = text_of(follow)
    assert follow["session_id"] == first["session_id"]
    assert set(MARK.findall(text)) <= set(retrieved) | set(MARK.findall(text_of(first)))
    assert follow["generated_by"]["answerer"] in ("local", "extractive")


def test_a_streamed_analysis_is_the_non_streamed_one_delta_by_delta(world: World) -> None:
    body = {
        "video": {"type": "asset_id", "asset_id": world.asset_id},
        "prompt": "How much do the apples cost?",
    }
    r = world.client.post("/analyze", json=body, timeout=120)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert events[0]["event_type"] == "stream_start" and events[-1]["event_type"] == "stream_end"
    deltas = [e["text"] for e in events[1:-1] if e["event_type"] == "text_generation"]
    end = events[-1]
    made = end["metadata"]["generated_by"]
    assert made["answerer"] == "local" or "set aside" in (made["note"] or ""), made
    assert len(deltas) > 1 and end["metadata"]["usage"]["output_tokens"] == len("".join(deltas).split(" "))
    # Greedy decoding: the same question gives the same answer unstreamed, in one piece.
    whole = world.client.post("/analyze", json={**body, "stream": False}, timeout=120).json()
    assert whole["data"] == "".join(deltas) and whole["generated_by"] == made
    assert whole["finish_reason"] == end["finish_reason"] and whole["usage"] == end["metadata"]["usage"]


WARMED = """
import sys, threading, time
from pathlib import Path
from tl_mcp.sandbox.answerers import local
from tl_mcp.sandbox.embedded import EmbeddedSandbox

model = Path(sys.argv[2])
sb = EmbeddedSandbox.start_in_thread(Path(sys.argv[1]), analyzers="none", answerer="local", llm_model=model)
try:
    # No request is made: only the start-up can have loaded it (the smallest model loads in well under 1 s).
    deadline = time.monotonic() + 120
    while not local._SERVERS and time.monotonic() < deadline:
        time.sleep(0.05)
    for warm in [t for t in threading.enumerate() if t.name == "tl-mcp-llm-warm"]:
        warm.join(max(0.0, deadline - time.monotonic()))
    print(sorted(local._SERVERS))
finally:
    sb.stop()
"""


def test_the_model_is_loaded_when_the_sandbox_starts_not_at_the_first_question(
    tmp_path: Path, smollm2: Path
) -> None:
    # A fresh process, so nothing earlier in this session has loaded the model already; no request is made.
    done = subprocess.run(
        [sys.executable, "-c", WARMED, str(tmp_path / "sb"), str(smollm2)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == repr([str(smollm2)])
