"""A model endpoint that misbehaves (garbage chunks, a huge answer, JSON that is not JSON) against the
sandbox's Jockey: every answer still completes, falls back to the evidence when the model cannot be
trusted, says so, and stays bounded; a real loopback server sends the raw stream lines."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.chat_server import ChatServer
from tests.sandbox.conftest import Media, client_for, ready_asset, wait_for
from tests.sandbox.test_answerers import APPLES, _store, text_of
from tests.sandbox.test_knowledge_http import check_response_object, conform, sse
from tests.server.answers_support import FOUR_SCENES
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox

#: What the raw endpoint sends for one request: the stream's lines (without the blank line after each).
Lines = Callable[[dict[str, Any]], Iterator[str]]


class RawEndpoint:
    def __init__(self) -> None:
        self.lines: Lines = lambda body: iter(())
        self.url = ""


def _chunk(content: Any) -> str:
    return "data: " + json.dumps(
        {"object": "chat.completion.chunk", "choices": [{"delta": {"content": content}}]}
    )


@contextmanager
def raw_endpoint() -> Iterator[RawEndpoint]:
    endpoint = RawEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for line in endpoint.lines(body):
                    self.wfile.write(f"{line}\n\n".encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sandbox stopped reading

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, media: Media
) -> Iterator[tuple[RawEndpoint, httpx2.Client, str]]:
    with raw_endpoint() as endpoint:
        sb = EmbeddedSandbox.start_in_thread(
            tmp_path_factory.mktemp("hostile"), analyzers="none", llm_url=endpoint.url, llm_timeout_s=20.0
        )
        try:
            with client_for(sb) as client:
                yield endpoint, client, _store(client, media)
        finally:
            sb.stop()


def _ask(client: httpx2.Client, store_id: str, question: str, **body: Any) -> tuple[dict[str, Any], str]:
    payload = {
        "knowledge_store_id": store_id,
        "input": [{"type": "message", "role": "user", "content": question}],
        "stream": True,
        **body,
    }
    r = client.post("/responses", json=payload)
    assert r.status_code == 200, r.text
    events, done = sse(r.text)
    assert done
    conform(events)
    kinds = [e["type"] for e in events]
    assert "response.failed" not in kinds, "the turn failed instead of falling back"
    final = next(e["response"] for e in events if e["type"] == "response.completed")
    check_response_object(final)
    joined = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert joined == text_of(final)
    return final, joined


@pytest.mark.parametrize("content", [5, ["Fresh", " apples"], {"text": "apples"}, True])
def test_a_chunk_whose_content_is_not_text_falls_back_and_says_why(
    hostile: tuple[RawEndpoint, httpx2.Client, str], content: Any
) -> None:
    endpoint, client, store_id = hostile
    endpoint.lines = lambda body: iter([_chunk("Fresh apples "), _chunk(content), "data: [DONE]"])
    final, text = _ask(client, store_id, APPLES)
    assert final["generated_by"]["answerer"] == "extractive"
    assert "not an OpenAI chat chunk" in final["generated_by"]["note"]
    assert "two dollars per pound" in text


def _marker_of_apples(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    line = next(line for line in content.splitlines() if "apples" in line.lower())
    return line.split(" ", 1)[0]


@pytest.mark.parametrize("shape", ["many tokens", "one huge token"])
def test_a_huge_answer_that_ignores_max_tokens_is_cut_off_fast_and_said_so(
    hostile: tuple[RawEndpoint, httpx2.Client, str], shape: str
) -> None:
    endpoint, client, store_id = hostile
    # Grounded words, but no sentence end: ~2 MB of "one sentence" the server will not stop sending.
    said = "fresh apples cost two dollars per pound and "

    def lines(body: dict[str, Any]) -> Iterator[str]:
        yield _chunk(f"{_marker_of_apples(body)} Fresh apples cost two dollars per pound and ")
        if shape == "one huge token":
            yield _chunk(said * 50_000)
        else:
            for _ in range(50_000):
                yield _chunk(said)
        yield "data: [DONE]"

    endpoint.lines = lines
    started = time.monotonic()
    final, text = _ask(client, store_id, APPLES)
    assert time.monotonic() - started < 10
    assert len(text) < 5_000
    note = final["generated_by"]["note"]
    assert "longer than" in note and "max_tokens" in note
    # The grounded words went out as they came (each held by the apples moment) until the cut.
    assert final["generated_by"]["answerer"] == "endpoint" and note.startswith("partly extractive")
    sent, _ = text.split("\n\n(The rest of the model's sentence was set aside: it ran longer")
    assert sent.lower().endswith("fresh apples cost two dollars per pound") and len(sent) < 2_000
    assert "two dollars per pound" in text


SCHEMA = {
    "type": "object",
    "properties": {"fruit": {"type": "string"}, "price_dollars": {"type": "integer"}},
}
FORMAT = {"text": {"format": {"type": "json_schema", "name": "price", "schema": SCHEMA}}}


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (['{"fruit": "apples", "price_dollars": ', "2"], "its output is not JSON"),
        (['{"fruit": "apples", "price_dollars": 2}', " trailing words"], "its output is not JSON"),
        (['{"fruit": "apples", "note": "' + "apples " * 200_000 + '"}'], "max_tokens"),
        (['["apples", 2]'], "its JSON does not fit the schema"),
    ],
)
def test_constrained_output_that_is_not_the_schemas_json_falls_back_to_fitted_evidence(
    hostile: tuple[RawEndpoint, httpx2.Client, str], sent: list[str], reason: str
) -> None:
    endpoint, client, store_id = hostile
    endpoint.lines = lambda body: iter([*(_chunk(piece) for piece in sent), "data: [DONE]"])
    started = time.monotonic()
    final, text = _ask(client, store_id, APPLES, **FORMAT)
    assert time.monotonic() - started < 10
    value = json.loads(text)
    assert set(value) == {"fruit", "price_dollars"}
    assert final["generated_by"]["answerer"] == "extractive"
    assert reason in final["generated_by"]["note"]


@pytest.mark.parametrize(
    ("field", "broken"),
    [
        ({"type": "string", "pattern": "^[A-Z]{3}$"}, "does not match '^[A-Z]{3}$'"),
        ({"type": "string", "minLength": 500}, "is too short"),
        ({"type": "integer", "exclusiveMinimum": 3, "multipleOf": 7}, "is not a multiple of 7"),
        ({"type": "array", "uniqueItems": True, "minItems": 2, "items": {"type": "boolean"}}, "non-unique"),
    ],
)
def test_a_schema_whose_fields_cannot_be_left_unfilled_is_refused_up_front_with_what_to_change(
    hostile: tuple[RawEndpoint, httpx2.Client, str], field: dict[str, Any], broken: str
) -> None:
    endpoint, client, store_id = hostile
    asked: list[dict[str, Any]] = []

    def lines(body: dict[str, Any]) -> Iterator[str]:
        asked.append(body)
        yield "data: [DONE]"

    endpoint.lines = lines
    schema = {"type": "object", "properties": {"code": field}}
    payload = {
        "knowledge_store_id": store_id,
        "input": [{"type": "message", "role": "user", "content": "What is the code?"}],
        "text": {"format": {"type": "json_schema", "name": "code", "schema": schema}},
    }
    r = client.post("/responses", json=payload)
    # Before: a 200 whose turn failed with no reason, which tl-mcp reported as "cut off, call again".
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert "code: " in message and broken in message and "allow null for that field" in message
    assert asked == []  # no model asked, no session made
    # What the message says to do works: the field may be null, and it is, reported as unfilled.
    field["type"] = [field["type"], "null"]
    r = client.post("/responses", json=payload)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert json.loads(text_of(r.json())) == {"code": None}


def test_an_endpoint_that_hangs_mid_answer_keeps_the_checked_sentence_and_says_what_followed(
    tmp_path_factory: pytest.TempPathFactory, media: Media
) -> None:
    with raw_endpoint() as endpoint:
        release = threading.Event()

        def lines(body: dict[str, Any]) -> Iterator[str]:
            mark = _marker_of_apples(body)
            yield _chunk(f"Fresh apples cost two dollars per pound {mark}. ")
            yield _chunk("Then ")
            release.wait(10)  # hangs, as a stuck model server does, until the test ends
            yield "data: [DONE]"

        endpoint.lines = lines
        sb = EmbeddedSandbox.start_in_thread(
            tmp_path_factory.mktemp("hang"), analyzers="none", llm_url=endpoint.url, llm_timeout_s=1.0
        )
        try:
            with client_for(sb) as client:
                store_id = _store(client, media)
                started = time.monotonic()
                final, text = _ask(client, store_id, APPLES)
                assert time.monotonic() - started < 8
        finally:
            release.set()
            sb.stop()
    assert text.startswith("Fresh apples cost two dollars per pound [")
    assert "\n\n(The model stopped: " in text and "TL_MCP_SANDBOX_LLM_TIMEOUT_S" in text
    assert final["generated_by"]["answerer"] == "endpoint"
    # It went quiet: nothing it wrote was unsupported, and the note does not say so.
    assert final["generated_by"]["note"].startswith("partly extractive: the model stopped (")


def test_two_videos_moments_at_the_same_times_never_share_a_marker_the_model_cites(
    hostile: tuple[RawEndpoint, httpx2.Client, str], media: Media, tmp_path: Path
) -> None:
    endpoint, client, _ = hostile
    # Two videos with 6 s scenes: the apples (clip) and the pasta (second video) are both [00:06-00:12].
    store_id = _store(client, media)
    pasta = make_sample_video(tmp_path / "pasta.mp4", scenes=FOUR_SCENES, speech=False)
    asset_id = ready_asset(client, pasta.path)
    r = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id})
    assert r.status_code == 202, r.text
    pasta_item = r.json()["_id"]
    wait_for(
        lambda: client.get(f"/knowledge-stores/{store_id}/items/{pasta_item}").json(),
        lambda b: b["status"] == "ready",
        timeout=60,
    )
    seen: list[list[tuple[str, str, str]]] = []

    def lines(body: dict[str, Any]) -> Iterator[str]:
        evidence = ChatServer.evidence(body)
        seen.append(evidence)
        # The model quotes the last line, as a model reading top to bottom may, and cites its number.
        mark, _, said = evidence[-1]
        quote = said.split(" / ")[0].rstrip(".")
        yield _chunk(f"{quote} {mark}.")
        yield "data: [DONE]"

    endpoint.lines = lines
    final, text = _ask(client, store_id, "What do the fresh apples cost, and are we cooking pasta?")
    # Both videos' [00:06-00:12] moments were retrieved; only one of them is put to the model.
    assert sum(1 for _, _, said in seen[-1] if "apples" in said.lower() or "pasta" in said.lower()) == 1
    assert final["generated_by"] == {**final["generated_by"], "answerer": "endpoint", "note": None}, text
    (cite,) = [a for p in final["output"][-1]["content"] for a in p["annotations"]]
    # The citation is the video whose words the answer quotes, never the other one with the same times.
    quoted_pasta = "pasta" in text.lower()
    assert (cite["item_id"] == pasta_item) == quoted_pasta, (cite, text)
