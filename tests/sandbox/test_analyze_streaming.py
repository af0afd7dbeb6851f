"""`POST /analyze` with a model answerer streams the model's checked deltas as they are produced, against
a real loopback server speaking the OpenAI chat streaming protocol at a deliberately slow token rate: the
first delta arrives while the model is still writing, the joined stream is the non-streamed answer
(`max_tokens` cut, `finish_reason`, `usage`, `generated_by` included), and a server that dies mid-answer
gives the extractive answer with the reason, in a stream that still ends properly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tests.chat_server import ChatServer, serve, tokens
from tests.sandbox.conftest import Media, client_for, ready_asset
from tests.sandbox.test_answerers_hostile import _chunk, raw_endpoint
from tl_mcp.sandbox.answerers import ModelDown
from tl_mcp.sandbox.answerers.endpoint import EndpointModel
from tl_mcp.sandbox.embedded import EmbeddedSandbox

APPLES = "How much do the fresh apples cost?"
TOKEN_DELAY_S = 0.05


def _answer(body: dict[str, Any]) -> list[str]:
    """Three grounded sentences, the first citing the apples moment (about 30 tokens in all)."""
    mark = next(e for e in ChatServer.evidence(body) if "apples" in e[2].lower())[0]
    return tokens(
        f"Fresh apples from the orchard cost two dollars per pound {mark}. "
        "That is the orchard price, two dollars per pound of fresh apples. "
        "Fresh apples from the orchard cost two dollars."
    )


@dataclass
class World:
    client: httpx2.Client
    chat: ChatServer
    source: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, media: Media) -> Iterator[World]:
    with serve(ChatServer(_answer, token_delay_s=TOKEN_DELAY_S)) as chat:
        sb = EmbeddedSandbox.start_in_thread(
            tmp_path_factory.mktemp("analyze-stream"),
            analyzers="none",
            llm_url=chat.url,
            llm_name="qwen2.5:1.5b",
            llm_timeout_s=10.0,
        )
        try:
            with client_for(sb) as client:
                source = {"type": "asset_id", "asset_id": ready_asset(client, media.video.path)}
                yield World(client, chat, source)
        finally:
            sb.stop()


def streamed(world: World, **body: Any) -> tuple[list[dict[str, Any]], list[float]]:
    """The NDJSON events of one streamed analysis, and when (time.monotonic) each text delta arrived."""
    events: list[dict[str, Any]] = []
    arrivals: list[float] = []
    payload = {"video": world.source, "prompt": APPLES, **body}
    with world.client.stream("POST", "/analyze", json=payload) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        for line in r.iter_lines():
            if line.strip():
                events.append(json.loads(line))
                if events[-1]["event_type"] == "text_generation":
                    arrivals.append(time.monotonic())
    assert events[0]["event_type"] == "stream_start" and events[-1]["event_type"] == "stream_end"
    assert events[0]["metadata"]["generation_id"] == events[-1]["metadata"]["generation_id"]
    assert all(e["event_type"] == "text_generation" for e in events[1:-1])
    return events, arrivals


def whole(world: World, **body: Any) -> dict[str, Any]:
    r = world.client.post("/analyze", json={"video": world.source, "prompt": APPLES, "stream": False, **body})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def joined(events: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in events if e["event_type"] == "text_generation")


def same_answer(events: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """The stream says what the non-streamed result says (only the generation id differs)."""
    end = events[-1]
    assert joined(events) == result["data"]
    assert end["finish_reason"] == result["finish_reason"]
    assert end["metadata"]["usage"] == result["usage"]
    assert end["metadata"]["generated_by"] == result["generated_by"]
    assert end.get("error") == result.get("error")
    assert end["metadata"].get("unfilled") == result.get("unfilled")


def test_a_model_answer_streams_while_the_model_is_still_writing(world: World) -> None:
    world.chat.hang_up_after = None
    events, arrivals = streamed(world)
    model_tokens = world.chat.sent_at[-1]
    text = joined(events)
    assert text.startswith("Fresh apples from the orchard cost two dollars per pound [")
    assert events[-1]["metadata"]["generated_by"]["answerer"] == "endpoint"
    assert events[-1]["metadata"]["generated_by"]["note"] is None
    # Released sentence by sentence as checked: the first sentence reached the client before the model
    # wrote its last token (by the server's own clock), more than a token's time before.
    assert len(arrivals) > 1
    assert arrivals[0] < model_tokens[-1] - TOKEN_DELAY_S, (arrivals[0], model_tokens)
    same_answer(events, whole(world))


def test_max_tokens_cuts_the_stream_where_it_cuts_the_answer_and_stops_the_model(world: World) -> None:
    world.chat.hang_up_after = None
    events, _ = streamed(world, max_tokens=20)
    result = whole(world, max_tokens=20)
    same_answer(events, result)
    assert result["finish_reason"] == "length" and result["usage"]["output_tokens"] == 20
    assert len(result["data"].split(" ")) == 20 and result["data"].endswith("price, two dollars per pound")
    assert result["error"] == {"message": "The answer was cut at max_tokens."}
    # Every word sent is the model's: it is not set aside as "ran longer than max_tokens" after the cut.
    assert result["generated_by"] == {**result["generated_by"], "answerer": "endpoint", "note": None}
    # Nothing past the cut was wanted, so the model was stopped instead of writing its third sentence.
    assert len(world.chat.sent_at[-1]) < len(_answer(world.chat.requests[-1]))


def test_a_structured_answer_streams_as_the_validated_json(world: World) -> None:
    world.chat.hang_up_after = None
    schema = {"type": "object", "properties": {"fruit": {"type": "string"}, "price": {"type": "integer"}}}
    fmt = {"response_format": {"type": "json_schema", "json_schema": schema}}
    results = []
    for price in (2, 9):
        world.chat.reply = lambda body, price=price: tokens(json.dumps({"fruit": "apples", "price": price}))
        try:
            events, _ = streamed(world, **fmt)
            result = whole(world, **fmt)
        finally:
            world.chat.reply = _answer
        same_answer(events, result)
        results.append(result)
    model, fallback = results
    assert json.loads(model["data"]) == {"fruit": "apples", "price": 2}
    assert model["generated_by"]["answerer"] == "endpoint" and "unfilled" not in model
    # An invented price sets the model's JSON aside: the extractive fill, with what it could not fill.
    assert fallback["generated_by"]["answerer"] == "extractive"
    assert "the number 9 is not in the evidence" in fallback["generated_by"]["note"]
    assert "unfilled" in fallback and json.loads(fallback["data"]).get("price") != 9


def test_an_endpoint_that_dies_mid_answer_falls_back_with_the_reason_and_the_stream_ends(
    world: World,
) -> None:
    # The first sentence and two words of the next, then the server closes the connection.
    world.chat.hang_up_after = 13
    try:
        events, arrivals = streamed(world)
        result = whole(world)
    finally:
        world.chat.hang_up_after = None
    same_answer(events, result)
    text, made = result["data"], result["generated_by"]
    # What was checked and sent stays; what followed is the evidence itself, with why.
    assert text.startswith("Fresh apples from the orchard cost two dollars per pound [")
    assert "closed the stream mid-answer" in text and "That is" not in text
    assert made["answerer"] == "endpoint" and "closed the stream mid-answer" in made["note"]
    assert made["note"].startswith("partly extractive: the model stopped (")
    assert result["finish_reason"] == "stop" and len(arrivals) > 1


def test_a_client_that_goes_away_mid_stream_stops_the_model(world: World) -> None:
    world.chat.hang_up_after = None
    payload = {"video": world.source, "prompt": APPLES}
    with world.client.stream("POST", "/analyze", json=payload) as r:
        lines = r.iter_lines()
        while json.loads(next(lines))["event_type"] != "text_generation":
            pass
    # The first sentence arrived and the client hung up: the sandbox closes the model's stream, so the
    # server's next writes fail and it stops well before the answer's last token.
    sent = world.chat.sent_at[-1]
    total = len(_answer(world.chat.requests[-1]))
    deadline = time.monotonic() + 10
    while len(sent) < total and time.monotonic() < deadline:
        seen = len(sent)
        time.sleep(TOKEN_DELAY_S * 4)
        if len(sent) == seen:
            break
    assert len(sent) < total, (len(sent), total)


def test_an_endpoint_stream_is_whole_only_when_the_server_says_it_finished() -> None:
    stop = "data: " + json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    with raw_endpoint() as endpoint:
        model = EndpointModel(endpoint.url, "m", timeout_s=5.0)
        # A finish_reason is the end of the answer even when the server then closes without [DONE].
        endpoint.lines = lambda body: iter([_chunk("Fresh apples."), stop])
        assert "".join(model.chat([], None, 16)) == "Fresh apples."
        endpoint.lines = lambda body: iter([_chunk("Fresh apples"), "data: [DONE]"])
        assert "".join(model.chat([], None, 16)) == "Fresh apples"
        # Neither: the body just ended, as a server that died mid-answer leaves it.
        endpoint.lines = lambda body: iter([_chunk("Fresh apples cost")])
        with pytest.raises(ModelDown, match="closed the stream mid-answer"):
            "".join(model.chat([], None, 16))
