"""Model answerers behind the sandbox's Jockey, against a real loopback server speaking the OpenAI chat
streaming protocol (the network boundary to Ollama / llama.cpp / LM Studio / vLLM): grounding checks,
fallbacks that say why, refusals, constrained JSON, sessions that pass earlier turns, live deltas."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tests.chat_server import ChatServer, serve, tokens
from tests.sandbox.conftest import Media, client_for, ready_asset, wait_for
from tests.sandbox.test_knowledge_http import check_response_object, conform, sse
from tl_mcp.sandbox.embedded import EmbeddedSandbox

APPLES = "How much do the fresh apples cost?"


@dataclass
class Scripted:
    """What the fake model answers next: a function of the evidence the sandbox sent it."""

    mode: str = "grounded"

    def __call__(self, body: dict[str, Any]) -> list[str]:
        evidence = ChatServer.evidence(body)
        apples = next((e for e in evidence if "apples" in e[2].lower()), evidence[0])
        if self.mode == "marker first":
            return tokens(f"{apples[0]} Fresh apples cost two dollars per pound.")
        if self.mode == "grounded":
            return tokens(f"Fresh apples cost two dollars per pound {apples[0]}. That is the orchard price.")
        if self.mode == "invented number":
            return tokens(f"Fresh apples cost seven dollars per pound {apples[0]}.")
        if self.mode == "unknown marker first":
            return tokens("[09:00-09:10] Fresh apples cost two dollars per pound, picked by farmers today.")
        if self.mode == "unknown marker":
            return tokens("Fresh apples cost two dollars per pound [09:00-09:10].")
        if self.mode == "invented words":
            return tokens(f"The presenter wears a blue striped shirt {apples[0]}.")
        if self.mode == "pieced together":
            # Each fact is in some retrieved moment, but not together: the price is the sales report's.
            return tokens("Fresh apples cost twenty percent.")
        if self.mode == "only a marker":
            return tokens(apples[0])
        if self.mode == "embellished":
            # The price is right, but a third of the sentence is the model's own story.
            said = "Fresh apples from the orchard cost two dollars per pound"
            return tokens(f"{said} because farmers pick them {apples[0]}.")
        if self.mode == "refuse":
            return tokens("The picking date is not mentioned in the evidence. [00:06-00:12]")
        if self.mode == "echo history":
            earlier = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
            assert earlier, "the follow-up reached the model without the previous turn"
            return tokens(f"As before: fresh apples cost two dollars per pound {apples[0]}.")
        if self.mode == "json":
            return tokens(json.dumps({"fruit": "apples", "price_dollars": 2}))
        if self.mode == "json invented":
            return tokens(json.dumps({"fruit": "apples", "price_dollars": 9}))
        raise AssertionError(self.mode)


@dataclass
class World:
    sb: EmbeddedSandbox
    client: httpx2.Client
    store_id: str
    chat: ChatServer
    script: Scripted


def _store(client: httpx2.Client, media: Media) -> str:
    asset_id = ready_asset(client, media.video.path)
    store_id: str = client.post("/knowledge-stores", json={"name": "answers"}).json()["_id"]
    r = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id})
    assert r.status_code == 202, r.text
    item_id = r.json()["_id"]
    wait_for(
        lambda: client.get(f"/knowledge-stores/{store_id}/items/{item_id}").json(),
        lambda b: b["status"] == "ready",
        timeout=60,
    )
    return store_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, media: Media) -> Iterator[World]:
    script = Scripted()
    with serve(ChatServer(script)) as chat:
        sb = EmbeddedSandbox.start_in_thread(
            tmp_path_factory.mktemp("answerers"),
            analyzers="none",
            llm_url=chat.url,
            llm_name="qwen2.5:1.5b",
            llm_timeout_s=5.0,
        )
        try:
            with client_for(sb) as client:
                yield World(sb, client, _store(client, media), chat, script)
        finally:
            sb.stop()


def ask(world: World, question: str, mode: str, **body: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One streamed turn; (the final response object, the text deltas in order)."""
    world.script.mode = mode
    payload = {
        "knowledge_store_id": world.store_id,
        "input": [{"type": "message", "role": "user", "content": question}],
        "stream": True,
        **body,
    }
    r = world.client.post("/responses", json=payload)
    assert r.status_code == 200, r.text
    events, done = sse(r.text)
    assert done
    conform(events)
    final = next(e["response"] for e in events if e["type"] == "response.completed")
    check_response_object(final)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    return final, deltas


def text_of(response: dict[str, Any]) -> str:
    message = next(i for i in response["output"] if i["type"] == "message" and i["phase"] == "final_answer")
    return "".join(p["text"] for p in message["content"])


def annotations_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    message = next(i for i in response["output"] if i["type"] == "message" and i["phase"] == "final_answer")
    return [a for p in message["content"] for a in p["annotations"]]


def test_a_grounded_model_answer_streams_token_by_token_and_says_which_model(world: World) -> None:
    final, deltas = ask(world, APPLES, "grounded")
    text = text_of(final)
    assert text.startswith("Fresh apples cost two dollars per pound [")
    assert final["generated_by"] == {
        "answerer": "endpoint",
        "model": "qwen2.5:1.5b at http://127.0.0.1:" + world.chat.url.split(":")[2].split("/")[0],
        "note": None,
    }
    # Streamed as the model produced it (more than one delta), and the deltas join to the final text.
    assert len(deltas) > 3 and "".join(d["delta"] for d in deltas) == text
    # The citation is a retrieved moment, located where its marker is.
    notes = annotations_of(final)
    assert notes and all(text[a["start_index"] : a["end_index"] + 1].startswith("[") for a in notes)
    sent = world.chat.requests[-1]
    assert sent["stream"] is True and sent["model"] == "qwen2.5:1.5b" and sent["temperature"] == 0
    # The model saw only the evidence (about 500 tokens at most), never the whole transcript dump.
    assert 1 <= len(ChatServer.evidence(sent)) <= 10
    assert len(sent["messages"][-1]["content"].split()) < 700
    assert sent["messages"][-1]["content"].endswith(f"Question: {APPLES}")


@pytest.mark.parametrize(
    ("mode", "reason", "question"),
    [
        ("invented number", "the number 7 is not in the moment it cites", APPLES),
        ("invented words", "its key words (presenter, wears, blue) are not in the moment it cites", APPLES),
        ("only a marker", "it gave a citation but no answer", APPLES),
        (
            "pieced together",
            "its key words (fresh, apples) are not in any single retrieved moment (and it cites none)",
            # Both moments are retrieved: the price "twenty" is in one, the apples in the other.
            "Tell me about the fresh apples and the quarterly sales",
        ),
    ],
)
def test_an_ungrounded_model_answer_falls_back_to_extractive_and_says_why(
    world: World, mode: str, reason: str, question: str
) -> None:
    final, deltas = ask(world, question, mode)
    text = text_of(final)
    assert reason in text and "set aside" in text
    # None of the model's claim reaches the caller except as the quoted reason for setting it aside.
    lead, moments = text.split("The retrieved moments themselves:")
    assert lead.startswith("The endpoint model qwen2.5:1.5b at http://127.0.0.1:")
    assert not any(claim in moments for claim in ("seven", "blue", "apples cost twenty", "farmers"))
    assert "two dollars per pound" in moments
    assert final["generated_by"]["answerer"] == "extractive"
    assert reason in final["generated_by"]["note"]
    assert "".join(d["delta"] for d in deltas) == text
    # The extractive tail keeps its exact citations.
    assert all(text[a["start_index"] : a["end_index"] + 1].startswith("[") for a in annotations_of(final))


@pytest.mark.parametrize(
    ("mode", "said", "reason"),
    [
        (
            "unknown marker",
            "Fresh apples cost two dollars per pound",
            "it cites [09:00-09:10], which is not one of the retrieved moments",
        ),
        (
            "embellished",
            "Fresh apples from the orchard cost two dollars per pound",
            "its key words (because, farmers, pick) are not in the moment it cites",
        ),
    ],
)
def test_words_sent_before_a_sentence_failed_are_only_what_one_moment_says(
    world: World, mode: str, said: str, reason: str
) -> None:
    # The start of the sentence went out early, every word of it held by the apples moment; the rest
    # (a wrong citation, the model's own story) is set aside and the extractive answer follows.
    final, deltas = ask(world, APPLES, mode)
    text = text_of(final)
    assert text.startswith(f"{said}\n\n(The rest of the model's sentence was set aside: {reason}. ")
    assert "farmers pick" not in text and "".join(d["delta"] for d in deltas) == text
    assert final["generated_by"]["answerer"] == "endpoint"
    assert final["generated_by"]["note"] == (
        f"partly extractive: the model stopped at an unsupported sentence ({reason})"
    )


def _first_delta_and_sent(
    world: World, mode: str, question: str = APPLES
) -> tuple[float, list[str], list[float]]:
    """A streamed turn at a slow token rate: when its first text delta arrived, and the tokens the model
    sent with when each was written."""
    world.chat.token_delay_s = 0.25
    world.script.mode = mode
    payload = {
        "knowledge_store_id": world.store_id,
        "input": [{"type": "message", "role": "user", "content": question}],
        "stream": True,
    }
    first_delta: float | None = None
    try:
        with world.client.stream("POST", "/responses", json=payload) as r:
            for line in r.iter_lines():
                if first_delta is None and '"response.output_text.delta"' in line:
                    first_delta = time.monotonic()
    finally:
        world.chat.token_delay_s = 0.02
    assert first_delta is not None
    return first_delta, world.script(world.chat.requests[-1]), world.chat.sent_at[-1]


def test_a_sentences_first_words_go_out_before_the_model_has_finished_it(world: World) -> None:
    first_delta, pieces, sent_at = _first_delta_and_sent(world, "grounded")
    marker_sent = sent_at[next(i for i, p in enumerate(pieces) if p.startswith("["))]
    # Causal, not a time budget: the first words reached the caller before the model wrote the
    # citation that ends the sentence ("Fresh apples cost two dollars per pound [..].").
    assert first_delta < marker_sent


@pytest.mark.parametrize(
    ("mode", "question", "said"),
    [
        ("refuse", "When were the fresh apples picked?", "do not answer this question"),
        ("unknown marker first", APPLES, "it cites [09:00-09:10], which is not one of the retrieved moments"),
    ],
)
def test_a_refusal_or_a_foreign_citation_is_answered_before_the_model_ends_its_sentence(
    world: World, mode: str, question: str, said: str
) -> None:
    # Either decides the sentence whatever follows, so the model is not heard out first.
    first_delta, pieces, sent_at = _first_delta_and_sent(world, mode, question)
    end = next(i for i, p in enumerate(pieces) if p.rstrip().endswith("."))
    # The model was stopped before it wrote the sentence's last word (or, if that was already on its way,
    # the answer had reached the caller before it was written).
    assert len(sent_at) < end or first_delta < sent_at[end - 1]
    final, _ = ask(world, question, mode)
    assert said in text_of(final)


def test_a_citation_before_the_fact_is_the_models_answer_too(world: World) -> None:
    final, _ = ask(world, APPLES, "marker first")
    assert final["generated_by"]["answerer"] == "endpoint" and final["generated_by"]["note"] is None
    assert text_of(final).endswith("] Fresh apples cost two dollars per pound.")
    assert annotations_of(final)[0]["start_index"] == 0


def test_an_unanswerable_question_is_refused_not_guessed(world: World) -> None:
    asked = len(world.chat.requests)
    # The apples are found, but nothing says when they were picked: the model says so, and so do we.
    final, _ = ask(world, "When were the fresh apples picked?", "refuse")
    text = text_of(final)
    assert "do not answer this question" in text and "picking date" not in text
    assert final["generated_by"]["answerer"] == "endpoint"
    assert final["generated_by"]["note"] == "the model found no answer in the evidence"
    assert len(world.chat.requests) == asked + 1
    # Nothing retrieved at all: the model is not even asked, and the answer says what cannot be judged.
    final, _ = ask(world, "What colour is the presenter's shirt?", "refuse")
    assert "cannot judge what the picture shows" in text_of(final)
    assert final["generated_by"] == {
        "answerer": "extractive",
        "model": None,
        "note": "nothing was retrieved, so the model was not asked",
    }
    assert len(world.chat.requests) == asked + 1


def test_a_follow_up_gives_the_model_the_previous_turns(world: World) -> None:
    first, _ = ask(world, APPLES, "grounded")
    follow, _ = ask(
        world, "Repeat the price you just told me.", "echo history", session_id=first["session_id"]
    )
    sent = world.chat.requests[-1]["messages"]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user"]
    assert sent[1]["content"] == APPLES and sent[2]["content"] == text_of(first)
    assert sent[3]["content"].endswith("Question: Repeat the price you just told me.")
    assert text_of(follow).startswith("As before: fresh apples cost two dollars")


def test_structured_output_is_decoded_under_the_schema_and_checked(world: World) -> None:
    schema = {
        "type": "object",
        "properties": {"fruit": {"type": "string"}, "price_dollars": {"type": "integer"}},
    }
    fmt = {"text": {"format": {"type": "json_schema", "name": "price", "schema": schema}}}
    final, _ = ask(world, APPLES, "json", **fmt)
    assert json.loads(text_of(final)) == {"fruit": "apples", "price_dollars": 2}
    assert final["generated_by"]["answerer"] == "endpoint"
    sent = world.chat.requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    # TwelveLabs' tightening applies to what the model is constrained by, too.
    assert sent["json_schema"]["schema"]["required"] == ["fruit", "price_dollars"]
    assert sent["json_schema"]["schema"]["additionalProperties"] is False

    final, _ = ask(world, APPLES, "json invented", **fmt)
    value = json.loads(text_of(final))
    assert set(value) == {"fruit", "price_dollars"} and value["price_dollars"] != 9
    assert final["generated_by"]["answerer"] == "extractive"
    assert "the number 9 is not in the evidence" in final["generated_by"]["note"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_endpoint_that_is_down_or_slow_gives_the_extractive_answer_and_says_so(
    tmp_path_factory: pytest.TempPathFactory, media: Media
) -> None:
    with serve(ChatServer(Scripted(), token_delay_s=1.5)) as slow:
        for url, reason in (
            (f"http://127.0.0.1:{_closed_port()}/v1", "is not reachable"),
            (slow.url, "(TL_MCP_SANDBOX_LLM_TIMEOUT_S)"),
        ):
            sb = EmbeddedSandbox.start_in_thread(
                tmp_path_factory.mktemp("down"), analyzers="none", llm_url=url, llm_timeout_s=1.0
            )
            try:
                with client_for(sb) as client:
                    store_id = _store(client, media)
                    started = time.monotonic()
                    r = client.post(
                        "/responses",
                        json={
                            "knowledge_store_id": store_id,
                            "input": [{"type": "message", "role": "user", "content": APPLES}],
                        },
                    )
                    assert r.status_code == 200, r.text
                    assert time.monotonic() - started < 10
                    body = r.json()
                    check_response_object(body)
                    text = text_of(body)
                    assert reason in text and "two dollars per pound" in text
                    assert body["generated_by"]["answerer"] == "extractive"
                    assert reason in body["generated_by"]["note"]
                    assert "127.0.0.1" in text and "/v1" not in body["generated_by"]["note"]
            finally:
                sb.stop()


# ---------------------------------------------------------------- extractive sessions and pacing


@pytest.fixture(scope="module")
def extractive(tmp_path_factory: pytest.TempPathFactory, media: Media) -> Iterator[tuple[httpx2.Client, str]]:
    sb = EmbeddedSandbox.start_in_thread(
        tmp_path_factory.mktemp("extractive"), analyzers="none", answerer="extractive", stream_delay_s=0.03
    )
    try:
        with client_for(sb) as client:
            yield client, _store(client, media)
    finally:
        sb.stop()


def turn(
    client: httpx2.Client, store_id: str, question: str, session_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "knowledge_store_id": store_id,
        "input": [{"type": "message", "role": "user", "content": question}],
    }
    if session_id:
        body["session_id"] = session_id
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    check_response_object(r.json())
    result: dict[str, Any] = r.json()
    return result


def cited(response: dict[str, Any]) -> list[tuple[float, float]]:
    return [(a["start_sec"], a["end_sec"]) for a in annotations_of(response)]


def test_extractive_follow_ups_resolve_against_the_previous_turns_moments(
    extractive: tuple[httpx2.Client, str], media: Media
) -> None:
    client, store_id = extractive
    sales, apples, ocean = media.video.subtitles[:3]
    first = turn(client, store_id, "Tell me about the fresh apples and the ocean chapter")
    assert first["generated_by"] == {"answerer": "extractive", "model": None, "note": None}
    session = first["session_id"]
    assert len(cited(first)) >= 2

    # "the price you told me" → only the cited moment that holds a price, not every moment again.
    again = turn(client, store_id, "Repeat the price you just told me.", session)
    text = text_of(again)
    assert text.startswith("Going back to what I cited in my previous answer")
    assert "two dollars per pound" in text and "ocean" not in text.split("\n", 1)[1].lower()

    # "just before that part" → the piece of the same video right before the cited apples moment.
    before = turn(client, store_id, "What was mentioned just before that part?", session)
    text = text_of(before)
    assert text.startswith("Just before the moment I cited in my previous answer")
    assert sales.text in text and apples.text not in text.split("\n", 1)[1]
    (start, end), *_ = cited(before)
    assert end <= apples.start + 0.3 and start < apples.start

    # ... and "right after that" from there comes back to the apples.
    after = turn(client, store_id, "And right after that?", session)
    assert apples.text in text_of(after) and ocean.text not in text_of(after)


def test_extractive_answers_stream_paced_so_deltas_arrive_one_by_one(
    extractive: tuple[httpx2.Client, str],
) -> None:
    client, store_id = extractive
    arrivals: list[float] = []
    text = ""
    payload = {
        "knowledge_store_id": store_id,
        "input": [{"type": "message", "role": "user", "content": APPLES}],
        "stream": True,
    }
    with client.stream("POST", "/responses", json=payload) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                if event["type"] == "response.output_text.delta":
                    arrivals.append(time.monotonic())
                    text += event["delta"]
                elif event["type"] == "response.completed":
                    assert text == text_of(event["response"])
    assert len(arrivals) > 5
    # Paced at the configured 30 ms, not flushed at once: the deltas span most of their budget.
    assert arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 1) * 0.8


def test_a_follow_up_past_the_first_or_last_moment_says_so_and_keeps_the_moment(
    extractive: tuple[httpx2.Client, str], media: Media
) -> None:
    client, store_id = extractive
    first, last = media.video.subtitles[0], media.video.subtitles[-1]
    for opener, side, moment in (
        (first.text, "before", first),
        (last.text, "after", last),
    ):
        start = turn(client, store_id, opener)
        assert cited(start)[0][0] == pytest.approx(moment.start, abs=1.0)
        session = start["session_id"]
        question = f"What was said just {side} that part?"
        edge = turn(client, store_id, question, session)
        text = text_of(edge)
        assert text.startswith(f"Nothing is said or shown in that video {side} the moment I cited")
        # Not the "found nothing, try other words" of a search: the caller asked about a moment it has.
        assert "I found nothing" not in text and moment.text in text
        assert cited(edge) and cited(edge)[0][0] == pytest.approx(moment.start, abs=1.0)
        # The moment is still what "that" points at on the next turn.
        again = turn(client, store_id, "Repeat what you just told me.", session)
        assert text_of(again).startswith("Going back to what I cited") and moment.text in text_of(again)
