"""SSE / NDJSON decoding and assembly: the edge cases of jockey-responses-streaming.md §6, any chunking."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence

import anyio
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api.conftest import FakeAPI, Seen, make_client
from tl_mcp.api import (
    AnalyzeEnd,
    AnalyzeRequest,
    AnalyzeText,
    Keepalive,
    ResponseDone,
    ResponseRequest,
    ResponseStarted,
    StepUpdate,
    StreamError,
    TextDelta,
    TextDone,
    Timeouts,
    VideoSource,
)
from tl_mcp.api.streaming import NDJSONDecoder, SSEDecoder, SSEEvent

REQUEST = ResponseRequest(knowledge_store_id="ks_1", input="What happens?")  # type: ignore[arg-type]


def ev(kind: str, seq: int, **fields: object) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': seq, **fields})}\n\n"


def resp(status: str, text: str | None = None) -> dict[str, object]:
    output = []
    if text is not None:
        part = {"type": "output_text", "text": text, "annotations": []}
        output = [
            {"type": "message", "id": "msg_0", "status": status, "role": "assistant", "content": [part]}
        ]
    return {
        "id": "resp_1",
        "type": "response",
        "status": status,
        "session_id": "sess_1",
        "knowledge_store_id": "ks_1",
        "output": output,
        "created_at": "2026-07-11T03:13:57Z",
    }


ANSWER = "Le café — 東京 🎉 [1]."
FULL_STREAM = (
    ev("response.created", 0, response=resp("in_progress"))
    + ev("response.in_progress", 1, response=resp("in_progress"))
    + ev(
        "response.output_item.added",
        2,
        output_index=0,
        item={
            "type": "function_call",
            "id": "fc_1",
            "status": "in_progress",
            "name": "search",
            "call_id": "c1",
            "arguments": "",
        },
    )
    + ev("response.function_call_arguments.done", 3, item_id="fc_1", output_index=0, arguments='{"q":"dog"}')
    + ev(
        "response.output_item.done",
        4,
        output_index=0,
        item={
            "type": "function_call",
            "id": "fc_1",
            "status": "completed",
            "name": "search",
            "call_id": "c1",
            "arguments": '{"q":"dog"}',
        },
    )
    + ev(
        "response.output_item.added",
        5,
        output_index=1,
        item={
            "type": "message",
            "id": "msg_0",
            "phase": "final_answer",
            "status": "in_progress",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "", "annotations": []}],
        },
    )
    + ev(
        "response.content_part.added",
        6,
        item_id="msg_0",
        output_index=1,
        content_index=0,
        part={"type": "output_text", "text": "", "annotations": []},
    )
    + ev(
        "response.output_text.delta", 7, item_id="msg_0", output_index=1, content_index=0, delta="Le café — "
    )
    + ": a comment line\n\n"
    + ev("keepalive", 8)
    + ev("jockey:web_search.searching", 9, item_id="ws_1", output_index=2)
    + ev(
        "response.output_text.delta",
        10,
        item_id="msg_0",
        output_index=1,
        content_index=0,
        delta="東京 🎉 [1].",
    )
    + ev("response.output_text.done", 11, item_id="msg_0", output_index=1, content_index=0, text=ANSWER)
    + ev(
        "response.content_part.done",
        12,
        item_id="msg_0",
        output_index=1,
        content_index=0,
        part={
            "type": "output_text",
            "text": ANSWER,
            "annotations": [
                {
                    "type": "video_citation",
                    "start_index": 15,
                    "end_index": 17,
                    "item_id": "ksi_1",
                    "start_sec": 0.0,
                    "end_sec": 9.0,
                    "title": "Clip",
                    "thumbnail_url": None,
                    "hls_url": None,
                }
            ],
        },
    )
    + ev(
        "response.completed",
        13,
        response={
            **resp("completed", ANSWER),
            "output": [
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "status": "completed",
                    "name": "search",
                    "arguments": "{}",
                },
                {
                    "type": "message",
                    "id": "msg_0",
                    "status": "completed",
                    "role": "assistant",
                    "phase": "final_answer",
                    "content": [
                        {
                            "type": "output_text",
                            "text": ANSWER,
                            "annotations": [
                                {
                                    "type": "video_citation",
                                    "start_index": 15,
                                    "end_index": 17,
                                    "item_id": "ksi_1",
                                    "start_sec": 0.0,
                                    "end_sec": 9.0,
                                    "title": "Clip",
                                    "thumbnail_url": None,
                                    "hls_url": None,
                                }
                            ],
                        }
                    ],
                },
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
    )
    + "data: [DONE]\n\n"
).encode()


def chunked(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return [p for p in pieces if p]


class ChunkStream(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes], *, stall: float = 0.0) -> None:
        self.chunks = chunks
        self.stall = stall
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.stall:
            await anyio.sleep(self.stall)

    async def aclose(self) -> None:
        self.closed = True


def sse_api(chunks: list[bytes], content_type: str = "text/event-stream", **kw: float) -> FakeAPI:
    def handler(seen: Seen) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, stream=ChunkStream(chunks, **kw))

    return FakeAPI(handler)


async def collect(chunks: list[bytes], **kw: float) -> list[object]:
    async with make_client(sse_api(chunks, **kw), timeout=Timeouts(stream_idle=0.5)) as tl:
        return [u async for u in tl.responses.stream(REQUEST)]


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out = [e for c in chunks for e in decoder.feed(c)]
    return out + decoder.flush()


# ---------------------------------------------------------------- SSE decoder


def test_sse_line_endings_bom_comments_multiline_and_fields() -> None:
    raw = (
        '\ufeffevent: a\r\ndata: {"x":\r\ndata:1}\r\n\r\n: ping\n\n'
        "id: 7\nretry: 10\nfoo: bar\ndata: two\r\rdata:no-space\n\n"
    )
    assert decode_all([raw.encode()]) == [
        SSEEvent("a", '{"x":\n1}'),
        SSEEvent(None, "two"),
        SSEEvent(None, "no-space"),
    ]


def test_sse_event_name_does_not_leak_into_next_frame_and_eof_dispatches_pending() -> None:
    raw = b"event: first\ndata: 1\n\ndata: 2"
    assert decode_all([raw]) == [SSEEvent("first", "1"), SSEEvent(None, "2")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(FULL_STREAM)), max_size=40))
def test_sse_decoding_is_independent_of_chunk_boundaries(cuts: list[int]) -> None:
    assert decode_all(chunked(FULL_STREAM, cuts)) == decode_all([FULL_STREAM])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=20), st.sampled_from(["\n", "\r\n", "\r"]))
def test_sse_crlf_split_across_chunks(cuts: list[int], eol: str) -> None:
    raw = eol.join(["event: x", "data: é1", "", "data: 東2", "", ""]).encode()
    assert decode_all(chunked(raw, cuts)) == [SSEEvent("x", "é1"), SSEEvent(None, "東2")]


# ---------------------------------------------------------------- /responses assembly


@pytest.mark.anyio
async def test_full_stream_yields_typed_updates_in_order() -> None:
    updates = await collect([FULL_STREAM])
    assert isinstance(updates[0], ResponseStarted) and updates[0].session_id == "sess_1"
    steps = [u for u in updates if isinstance(u, StepUpdate)]
    assert len(steps) == 1 and steps[0].item.name == "search" and "dog" in steps[0].summary
    assert "".join(u.text for u in updates if isinstance(u, TextDelta)) == ANSWER
    assert [u.text for u in updates if isinstance(u, TextDone)] == [ANSWER]
    assert sum(isinstance(u, Keepalive) for u in updates) == 1
    done = updates[-1]
    assert isinstance(done, ResponseDone) and done.response.output_text == ANSWER
    (citation,) = done.response.annotations
    assert citation.marker == "[1]" and citation.annotation.item_id == "ksi_1"


@pytest.mark.anyio
@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(FULL_STREAM)), max_size=30))
async def test_assembled_text_is_the_same_under_any_chunking(cuts: list[int]) -> None:
    updates = await collect(chunked(FULL_STREAM, cuts))
    assert "".join(u.text for u in updates if isinstance(u, TextDelta)) == ANSWER
    assert isinstance(updates[-1], ResponseDone)


@pytest.mark.anyio
async def test_duplicate_full_text_events_replace_rather_than_append() -> None:
    body = (
        ev("response.created", 0, response=resp("in_progress"))
        + ev("response.output_text.delta", 1, output_index=0, content_index=0, delta="Hel")
        + ev("response.output_text.done", 2, output_index=0, content_index=0, text="Hello")
        + ev(
            "response.content_part.done",
            3,
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "Hello"},
        )
        + ev("response.output_text.done", 4, output_index=0, content_index=0, text="Hello")
    ).encode()
    with pytest.raises(StreamError) as info:
        await collect([body])
    assert info.value.partial_text == "Hello"  # not "HelHelloHelloHello"


@pytest.mark.anyio
@pytest.mark.parametrize("ending", [b"", b"data: [DONE]\n\n"])
async def test_early_end_raises_stream_error_with_partial_text_and_session(ending: bytes) -> None:
    body = (
        ev("response.created", 0, response=resp("in_progress"))
        + ev("response.output_text.delta", 1, output_index=0, content_index=0, delta="partial ")
        + ev("response.output_text.delta", 2, output_index=0, content_index=0, delta="answer")
    ).encode() + ending
    with pytest.raises(StreamError) as info:
        await collect([body])
    assert info.value.partial_text == "partial answer"
    assert info.value.session_id == "sess_1" and info.value.response_id == "resp_1"


@pytest.mark.anyio
async def test_plain_eof_after_completed_is_success_without_done_marker() -> None:
    body = (
        ev("response.created", 0, response=resp("in_progress"))
        + ev("response.completed", 1, response=resp("completed", "ok"))
    ).encode()
    updates = await collect([body])
    assert isinstance(updates[-1], ResponseDone) and updates[-1].response.output_text == "ok"


@pytest.mark.anyio
async def test_incomplete_status_is_delivered_as_done_with_its_status() -> None:
    body = ev("response.completed", 0, response=resp("incomplete", "cut sh")).encode()
    updates = await collect([body])
    assert isinstance(updates[-1], ResponseDone) and updates[-1].response.status == "incomplete"


@pytest.mark.anyio
async def test_failed_response_raises() -> None:
    body = (
        ev("response.created", 0, response=resp("in_progress"))
        + ev("response.output_text.delta", 1, output_index=0, content_index=0, delta="so far")
        + ev("response.failed", 2, response=resp("failed"))
    ).encode()
    with pytest.raises(StreamError, match="failed") as info:
        await collect([body])
    assert info.value.partial_text == "so far" and info.value.session_id == "sess_1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "payload",
    [
        {"type": "error", "error": {"code": "server_error", "message": "model crashed"}},
        {"type": "error", "code": "server_error", "message": "model crashed"},
    ],
)
async def test_error_events_in_both_shapes(payload: dict[str, object]) -> None:
    body = (
        ev("response.created", 0, response=resp("in_progress")) + f"data: {json.dumps(payload)}\n\n"
    ).encode()
    with pytest.raises(StreamError, match="model crashed") as info:
        await collect([body])
    assert info.value.code == "server_error" and info.value.session_id == "sess_1"


@pytest.mark.anyio
async def test_malformed_json_is_logged_and_skipped_and_type_beats_event_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = (
        "data: {not json\n\n"
        + "event: response.in_progress\n"
        + f"data: {json.dumps({'type': 'response.completed', 'response': resp('completed', 'fine')})}\n\n"
    ).encode()
    with caplog.at_level(logging.INFO, logger="tl_mcp.api"):
        updates = await collect([body])
    assert isinstance(updates[-1], ResponseDone) and updates[-1].response.output_text == "fine"
    assert "malformed" in caplog.text and "disagrees" in caplog.text


@pytest.mark.anyio
async def test_non_sse_json_success_body_is_accepted() -> None:
    body = json.dumps(resp("completed", "whole answer")).encode()
    async with make_client(sse_api([body], content_type="application/json")) as tl:
        updates = [u async for u in tl.responses.stream(REQUEST)]
    assert [type(u) for u in updates] == [ResponseStarted, TextDelta, ResponseDone]
    assert updates[1].text == "whole answer"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_commentary_messages_are_steps_not_answer_text() -> None:
    commentary = {
        "type": "message",
        "id": "m0",
        "phase": "commentary",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Searching…", "annotations": []}],
    }
    body = (
        ev("response.output_item.added", 0, output_index=0, item={**commentary, "status": "in_progress"})
        + ev("response.output_text.delta", 1, output_index=0, content_index=0, delta="Searching…")
        + ev("response.output_item.done", 2, output_index=0, item=commentary)
        + ev("response.completed", 3, response=resp("completed", "answer"))
    ).encode()
    updates = await collect([body])
    assert not [u for u in updates if isinstance(u, TextDelta)]
    assert [u.summary for u in updates if isinstance(u, StepUpdate)] == ["Searching…"]


@pytest.mark.anyio
async def test_idle_stream_times_out_into_stream_error_keeping_partial_text() -> None:
    body = (
        ev("response.created", 0, response=resp("in_progress"))
        + ev("response.output_text.delta", 1, output_index=0, content_index=0, delta="thinking")
    ).encode()
    with anyio.fail_after(5):
        with pytest.raises(StreamError, match=r"nothing for 0\.5 s") as info:
            await collect([body], stall=30.0)
    assert info.value.partial_text == "thinking" and info.value.session_id == "sess_1"


@pytest.mark.anyio
async def test_http_error_before_the_stream_maps_to_typed_error() -> None:
    api = FakeAPI(
        lambda s: httpx2.Response(400, json={"code": "parameter_invalid", "message": "session mismatch"})
    )
    from tl_mcp.api import BadRequestError

    async with make_client(api) as tl:
        with pytest.raises(BadRequestError, match="session mismatch"):
            async for _ in tl.responses.stream(REQUEST):
                pass


# ---------------------------------------------------------------- NDJSON (/analyze)

ANALYZE = (
    b'{"event_type":"stream_start","metadata":{"generation_id":"g1"}}\n'
    + '{"event_type":"text_generation","text":"Un café "}\n\n'.encode()
    + '{"event_type":"text_generation","text":"à 東京"}\n'.encode()
    + b"{broken\n"
    + b'{"event_type":"stream_end","finish_reason":"stop",'
    + b'"metadata":{"generation_id":"g1","usage":{"output_tokens":4}}}'
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(ANALYZE)), max_size=30))
def test_ndjson_lines_survive_any_chunking(cuts: list[int]) -> None:
    decoder = NDJSONDecoder()
    objs = [o for c in chunked(ANALYZE, cuts) for o in decoder.feed(c)] + decoder.flush()
    assert [o["event_type"] for o in objs] == [
        "stream_start",
        "text_generation",
        "text_generation",
        "stream_end",
    ]


def ndjson_api(chunks: list[bytes], **kw: float) -> FakeAPI:
    return FakeAPI(
        lambda s: httpx2.Response(
            200, headers={"content-type": "application/x-ndjson"}, stream=ChunkStream(chunks, **kw)
        )
    )


@pytest.mark.anyio
async def test_analyze_stream_events() -> None:
    async with make_client(ndjson_api(chunked(ANALYZE, [5, 70, 71, 130]))) as tl:
        events = [
            e
            async for e in tl.analyze.stream(
                AnalyzeRequest(video=VideoSource(asset_id="a1"), prompt="Describe")
            )
        ]
    assert "".join(e.text for e in events if isinstance(e, AnalyzeText)) == "Un café à 東京"
    end = events[-1]
    assert isinstance(end, AnalyzeEnd) and end.text == "Un café à 東京" and end.finish_reason == "stop"
    assert end.usage is not None and end.usage.output_tokens == 4


@pytest.mark.anyio
async def test_analyze_stream_without_stream_end_raises_with_partial_text() -> None:
    cut = ANALYZE[: ANALYZE.index(b"{broken")]
    async with make_client(ndjson_api([cut])) as tl:
        with pytest.raises(StreamError) as info:
            async for _ in tl.analyze.stream(
                AnalyzeRequest(video=VideoSource(asset_id="a1"), prompt="Describe")
            ):
                pass
    assert info.value.partial_text == "Un café à 東京"
