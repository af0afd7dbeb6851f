"""Pure logic of the sandbox's Jockey: request shapes, cited composition, JSON-schema output, SSE framing."""

from __future__ import annotations

import json
from typing import Any

import anyio
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.openapi_spec import load_spec, resolve
from tl_mcp.sandbox.errors import ApiError
from tl_mcp.sandbox.jockey.compose import (
    OFFLINE_VISUAL_NOTE,
    chunk_text,
    compose_answer,
    is_followup,
    retrieval_query,
)
from tl_mcp.sandbox.jockey.request import parse_request
from tl_mcp.sandbox.jockey.sse import DONE_FRAME, frame, sequence
from tl_mcp.sandbox.jockey.structured import fill
from tl_mcp.sandbox.knowledge.models import Evidence

MSG = [{"type": "message", "role": "user", "content": "What is said about apples?"}]


def _moment(i: int, text: str, start: float, end: float) -> Evidence:
    return Evidence(f"ksi_{i}", f"asset{i}", f"clip{i}.mp4", start, end, text, "subtitle", 0.9 - i / 10)


MOMENTS = [
    _moment(0, "Fresh apples cost two dollars a pound", 6.2, 11.7),
    _moment(1, "The ocean, chapter three", 12, 18),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _error(body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_request(body)
    return info.value


def test_accepts_the_three_documented_request_shapes() -> None:
    a = parse_request(
        {"model": "jockey1.0", "knowledge_store_id": "ks_1", "input": MSG, "metadata": {"k": "v"}}
    )
    b = parse_request(
        {"knowledge_store_id": "ks_1", "input": MSG, "selections": [{"kind": "item", "id": "ksi_9"}]}
    )
    c = parse_request(
        {
            "model": "jockey1.0",
            "tools": [{"type": "knowledge_store", "knowledge_store_id": "ks_1"}],
            "input": MSG,
        }
    )
    assert a.knowledge_store_id == b.knowledge_store_id == c.knowledge_store_id == "ks_1"
    assert b.selections == [{"kind": "item", "id": "ksi_9"}]


@pytest.mark.parametrize(
    ("body", "status", "code", "needle"),
    [
        ({"input": MSG}, 400, "parameter_not_provided", "knowledge_store_id"),
        ({"knowledge_store_id": "ks_1"}, 400, "parameter_not_provided", "input"),
        ({"knowledge_store_id": "ks_1", "input": "hello"}, 400, "parameter_invalid", "input"),
        (
            {"knowledge_store_id": "ks_1", "input": MSG, "instructions": "x" * 2001},
            400,
            "parameter_invalid",
            "2000",
        ),
        (
            {"knowledge_store_id": "ks_1", "input": MSG, "model": "gpt-5"},
            400,
            "parameter_invalid",
            "jockey1.0",
        ),
        (
            {"knowledge_store_id": "ks_1", "input": MSG, "include": ["reasoning"]},
            400,
            "parameter_invalid",
            "include",
        ),
        ({"knowledge_store_id": "ks_1", "input": MSG, "stream": "yes"}, 400, "parameter_invalid", "stream"),
        (
            {"knowledge_store_id": "ks_1", "input": [{"type": "message", "role": "system", "content": "x"}]},
            400,
            "parameter_invalid",
            "role",
        ),
        (
            {"knowledge_store_id": "ks_1", "input": [{"type": "message", "role": "user"}]},
            400,
            "parameter_not_provided",
            "content",
        ),
        (
            {
                "knowledge_store_id": "ks_1",
                "tools": [{"type": "knowledge_store", "knowledge_store_id": "ks_2"}],
                "input": MSG,
            },
            400,
            "parameter_invalid",
            "different",
        ),
        (
            {"knowledge_store_id": "ks_1", "input": MSG, "selections": [{"kind": "item", "id": "ksic_1"}]},
            400,
            "parameter_invalid",
            "ksi_",
        ),
        (
            {
                "knowledge_store_id": "ks_1",
                "input": MSG,
                "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "nope"}}},
            },
            400,
            "parameter_invalid",
            "schema",
        ),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], status: int, code: str, needle: str) -> None:
    err = _error(body)
    assert (err.status, err.code) == (status, code)
    assert needle in err.message


def test_instructions_at_the_limit_are_accepted() -> None:
    assert parse_request(
        {"knowledge_store_id": "ks_1", "input": MSG, "instructions": "x" * 2000}
    ).instructions


def test_answer_markers_and_annotations_agree() -> None:
    answer = compose_answer("apples?", MOMENTS, ready_items=2, pending_items=0)
    assert len(answer.annotations) == 2
    for ann, moment in zip(answer.annotations, MOMENTS, strict=True):
        mark = answer.text[ann["start_index"] : ann["end_index"] + 1]
        assert mark.startswith("[") and mark.endswith("]")
        assert ann["type"] == "video_citation" and ann["item_id"] == moment.item_id
        assert (ann["start_sec"], ann["end_sec"]) == (moment.start, moment.end)
        assert ann["title"] == moment.title and "thumbnail_url" in ann and "hls_url" in ann
    assert "[00:06-00:12]" in answer.text and "Fresh apples cost two dollars" in answer.text


def test_a_moment_matched_on_screen_also_quotes_what_is_said_then() -> None:
    ocean = Evidence(
        "ksi_1", "asset1", "clip.mp4", 12, 18, "THE OCEAN", "ocr", 0.8,
        context=(("subtitle", "Chapter three takes us deep beneath the ocean waves."),),
    )  # fmt: skip
    answer = compose_answer("what is the ocean chapter about?", [ocean], ready_items=1, pending_items=0)
    line = next(row for row in answer.text.splitlines() if "[00:12-00:18]" in row)
    assert 'the screen shows: "THE OCEAN"' in line
    assert 'the subtitles read: "Chapter three takes us deep beneath the ocean waves."' in line
    assert len(answer.annotations) == 1


def test_says_plainly_when_nothing_is_ready_or_nothing_matches() -> None:
    none_ready = compose_answer("apples?", [], ready_items=0, pending_items=1)
    assert "ready" in none_ready.text and not none_ready.annotations
    no_match = compose_answer("what colour is the car?", [], ready_items=2, pending_items=0)
    assert "found nothing" in no_match.text and OFFLINE_VISUAL_NOTE in no_match.text


def test_followups_borrow_the_previous_question_terms() -> None:
    assert is_followup("and what does it cost?")
    assert not is_followup("Which scene talks about quarterly revenue growth in detail?")
    assert "apples" in retrieval_query("how much do they cost?", ["Tell me about the fresh apples"])
    assert retrieval_query("quarterly revenue", ["apples"]) == "quarterly revenue"
    assert is_followup("what about the price?")
    # An opener with a topic of its own is a new question, not a follow-up.
    assert not is_followup("And what is the ocean chapter about?")
    assert retrieval_query("And what is the ocean chapter about?", ["fresh apples?"]).count("apples") == 0


@given(st.text(max_size=300))
def test_deltas_concatenate_back_to_the_text(text: str) -> None:
    assert "".join(chunk_text(text)) == text


def test_json_schema_output_is_filled_from_evidence_and_validates() -> None:
    schema = {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "count": {"type": "integer"},
            "found": {"type": "boolean"},
            "moments": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "video_title": {"type": "string"},
                        "start_sec": {"type": "number"},
                        "end_sec": {"type": "number"},
                        "quote": {"type": "string"},
                        "kind": {"type": "string", "enum": ["ocean", "apples"]},
                    },
                },
            },
        },
    }
    value, problems = fill(schema, question="apples?", summary="Two moments.", moments=MOMENTS)
    assert problems == []
    assert value["count"] == 2 and value["found"] is True
    first = value["moments"][0]
    assert first == {
        "video_title": "clip0.mp4",
        "start_sec": 6.2,
        "end_sec": 11.7,
        "quote": "Fresh apples cost two dollars a pound",
        "kind": "apples",
    }


@pytest.mark.anyio
async def test_sequence_numbers_start_at_zero_and_keepalives_fill_silences() -> None:
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](4)

    async def produce() -> None:
        async with send:
            await send.send({"type": "response.created"})
            await anyio.sleep(0.35)
            await send.send({"type": "response.completed"})

    seen: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        async for event in sequence(receive, keepalive_interval=0.1):
            seen.append(event)
    types = [e["type"] for e in seen]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("keepalive") >= 2
    assert [e["sequence_number"] for e in seen] == list(range(len(seen)))


def test_frames_are_event_plus_single_line_data() -> None:
    raw = frame({"type": "response.output_text.delta", "sequence_number": 4, "delta": "a\nb"}).decode()
    event_line, data_line, blank, end = raw.split("\n")
    assert event_line == "event: response.output_text.delta" and blank == end == ""
    assert json.loads(data_line.removeprefix("data: "))["delta"] == "a\nb"
    assert DONE_FRAME == b"data: [DONE]\n\n"


def test_stream_event_variants_exist_in_the_spec() -> None:
    schema = resolve(load_spec()["components"]["schemas"]["ResponseStreamEvent"])
    assert len(schema["oneOf"]) >= 11
    jsonschema.Draft202012Validator.check_schema(schema)
