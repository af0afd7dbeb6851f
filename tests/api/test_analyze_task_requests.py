"""The analysis-task and batch requests the client builds, checked against the OpenAPI snapshot; where SDK
1.3.6 changed the contract (`pegasus1.6`, `image`, `time_array`, `max_tokens: "unlimited"`, an optional
`video`), against the snapshot patched with exactly those changes, because the delta wins
(/work/shared/reference/twelvelabs-sdk-1.3.6-delta.md §8). Also: the derived custom_id and
Idempotency-Key that keep a retried call from paying twice, and the parsing of every answer."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.api.conftest import FakeAPI, Seen, json_response, make_client
from tests.openapi_spec import load_spec
from tl_mcp.api import (
    AnalyzeBatchRequest,
    AnalyzeRequest,
    BatchItem,
    ImageInput,
    SegmentDefinition,
    SegmentField,
    SegmentFormat,
    VideoSource,
)

pytestmark = pytest.mark.anyio

URN = "urn:twelvelabs-openapi-1.3.6"


@cache
def delta_task_validator() -> Draft202012Validator:
    """`CreateAsyncAnalyzeRequest` with SDK 1.3.6's changes to it, and nothing else (delta §8.2)."""
    spec = copy.deepcopy(load_spec())
    schemas = spec["components"]["schemas"]
    schemas["CreateAsyncAnalyzeRequestModelName"]["enum"] = ["pegasus1.6", "pegasus1.5"]
    schemas["SegmentFieldType"]["enum"].append("time_array")
    items = schemas["SegmentFieldItems"]
    items["properties"]["type"] = {
        "type": "string",
        "enum": ["string", "number", "boolean", "integer", "object"],
    }
    items["properties"]["fields"] = {
        "type": "array",
        "minItems": 1,
        "items": {"type": "object", "required": ["name", "type", "description"]},
    }
    request = schemas["CreateAsyncAnalyzeRequest"]
    request["properties"]["max_tokens"] = {"oneOf": [{"type": "integer"}, {"const": "unlimited"}]}
    request["properties"]["image"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 20,
        "items": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {k: {"type": "string"} for k in ("name", "url", "asset_id", "base64_string")},
        },
    }
    request["required"] = []
    registry = Registry().with_resource(URN, Resource.from_contents(spec, default_specification=DRAFT202012))
    return Draft202012Validator(
        {"$ref": f"{URN}#/components/schemas/CreateAsyncAnalyzeRequest"}, registry=registry
    )


TASK = {"task_id": "t1", "custom_id": None, "status": "queued", "created_at": "2026-01-01T00:00:00Z"}
SEGMENTS = json.dumps(
    {
        "scenes": [
            {"start_time": "00:00:06.000", "end_time": "00:00:12.500", "metadata": {"title": "Apples"}},
            {"start_time": "00:00:00.000", "end_time": "00:00:06.000", "metadata": {"title": "Sales"}},
        ]
    }
)


def answer(listing: list[dict[str, Any]]) -> Any:
    def handle(seen: Seen) -> httpx2.Response:
        if seen.method == "GET" and seen.path == "/analyze/tasks":
            return json_response(200, {"data": listing, "page_info": {"page": 1, "total_page": 1}})
        if seen.method == "POST" and seen.path == "/analyze/tasks":
            return json_response(202, {"task_id": "t-new", "status": "queued"})
        if seen.path == "/analyze/tasks/t1/cancel":
            return json_response(200, {"task_id": "t1", "status": "canceled"})
        if seen.path == "/analyze/tasks/t1":
            done = {**TASK, "status": "ready", "request_params": {"analysis_mode": "time_based_metadata"}}
            usage = {"output_tokens": 9}
            return json_response(
                200,
                {
                    **done,
                    "result": {
                        "generation_id": "g",
                        "data": SEGMENTS,
                        "finish_reason": "stop",
                        "usage": usage,
                    },
                },
            )
        raise AssertionError(f"unexpected {seen.method} {seen.path}")

    return handle


def segment_request(**change: Any) -> AnalyzeRequest:
    lines = SegmentField.model_validate(
        {
            "name": "lines",
            "type": "time_array",
            "description": "each line",
            "items": {"type": "object", "fields": [{"name": "quote", "type": "string", "description": "q"}]},
        }
    )
    fields = [lines, SegmentField(name="at", type="timestamp", format="seconds", description="when")]
    args: dict[str, Any] = {
        "video": VideoSource(asset_id="a1"),
        "model_name": "pegasus1.6",
        "analysis_mode": "time_based_metadata",
        "max_tokens": "unlimited",
        "response_format": SegmentFormat(
            segment_definitions=[SegmentDefinition(id="scenes", description="each scene", fields=fields)]
        ),
    }
    return AnalyzeRequest(**(args | change))


async def test_a_segment_task_validates_against_the_136_contract_and_carries_its_idempotency_key() -> None:
    api = FakeAPI(answer([]), check_spec=False)
    request = segment_request()
    async with make_client(api) as tl:
        created = await tl.analyze.create_task(request)
        task = await tl.analyze.get_task("t1")
        # Cancelling twice is safe: the API answers `canceled` both times, so the client may retry it.
        for _ in range(2):
            assert (await tl.analyze.cancel_task("t1")).status == "canceled"
    listing, post, *_ = api.seen
    assert listing.params.get("asset_id") == "a1" and listing.params.get("page_limit") == "50"
    body = post.json()
    errors = [e.message for e in delta_task_validator().iter_errors(body)]
    assert not errors, errors
    # The snapshot alone rejects exactly the SDK 1.3.6 additions, so the patch above is what lets it pass.
    from tests.openapi_spec import request_validator

    snapshot_errors = {e.json_path for e in request_validator("post", "/analyze/tasks").iter_errors(body)}
    assert snapshot_errors == {
        "$.model_name",
        "$.max_tokens",
        "$.response_format.segment_definitions[0].fields[0].type",
        "$.response_format.segment_definitions[0].fields[0].items.type",
    }
    assert body["custom_id"] == request.derived_custom_id() == post.headers["idempotency-key"]
    assert created.task_id == "t-new" and created.reused is False
    assert task.analysis_mode == "time_based_metadata"
    assert task.result is not None
    from tl_mcp.api.models.analyze_tasks import parse_segments

    assert [(s.start, s.end, s.fields["title"]) for s in parse_segments(task.result.data)] == [
        (0.0, 6.0, "Sales"),
        (6.0, 12.5, "Apples"),
    ]


async def test_a_repeated_request_finds_its_live_task_and_pays_nothing() -> None:
    request = segment_request()
    live = {**TASK, "custom_id": request.derived_custom_id(), "status": "processing"}
    api = FakeAPI(answer([live]))
    async with make_client(api) as tl:
        created = await tl.analyze.create_task(request)
    assert created.task_id == "t1" and created.reused is True
    assert [s.method for s in api.seen] == ["GET"]
    # A failed or canceled one is not what was paid for: the call starts the task again.
    for spent in ("failed", "canceled"):
        api = FakeAPI(answer([{**live, "status": spent}]), check_spec=False)
        async with make_client(api) as tl:
            assert (await tl.analyze.create_task(request)).task_id == "t-new"
    # Another request derives another key.
    assert segment_request(start_time=1.0).derived_custom_id() != request.derived_custom_id()


async def test_general_tasks_and_images_validate_and_ranges_are_checked_before_sending() -> None:
    api = FakeAPI(answer([]))
    async with make_client(api) as tl:
        await tl.analyze.create_task(
            AnalyzeRequest(
                video=VideoSource(url="https://example.com/v.mp4"), prompt="Chapters", max_tokens=512
            )
        )
        with pytest.raises(ValueError, match="512-98,304"):
            await tl.analyze.create_task(
                AnalyzeRequest(video=VideoSource(asset_id="a1"), prompt="x", max_tokens=100)
            )
    assert [s.method for s in api.seen] == ["GET", "POST"]
    images = [
        ImageInput(name="before", asset_id="i1"),
        ImageInput(name="after", url="https://example.com/a.png"),
    ]
    request = AnalyzeRequest(image=images, prompt="Compare <@before> and <@after>", model_name="pegasus1.6")
    api = FakeAPI(answer([]), check_spec=False)
    async with make_client(api) as tl:
        await tl.analyze.create_task(request)
    body = api.seen[-1].json()
    assert not list(delta_task_validator().iter_errors(body)) and "video" not in body
    assert body["image"] == [
        {"name": "before", "asset_id": "i1"},
        {"name": "after", "url": "https://example.com/a.png"},
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: AnalyzeRequest(image=[ImageInput(name="a", asset_id="i")], prompt="x"), "pegasus1.6"),
        (lambda: ImageInput(name="a", url="http://example.com/a.png"), "https"),
        (lambda: ImageInput(name="a b", asset_id="i"), "letters"),
        (lambda: segment_request(model_name="pegasus1.5", max_tokens=None), "time_array"),
        (lambda: segment_request(max_tokens="unlimited", model_name="pegasus1.5"), "pegasus1.6"),
        (lambda: SegmentField(name="end_time", type="number", description="d"), "reserved"),
        (lambda: SegmentField(name="t", type="timestamp", description="d"), "format"),
        (
            lambda: AnalyzeRequest(video=VideoSource(asset_id="a"), prompt="x", custom_id="no spaces"),
            "custom_id",
        ),
        (
            lambda: AnalyzeBatchRequest(items=[BatchItem(asset_id="a", custom_id="x")] * 2, prompt="p"),
            "unique",
        ),
    ],
)
def test_bad_requests_fail_before_the_network(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


async def test_cancel_list_and_batches_follow_the_contract() -> None:
    created = {
        "batch_id": "b1",
        "status": "pending",
        "total_items": 2,
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-02T00:00:00Z",
        "items": [{"task_id": "t1", "custom_id": "item-0"}, {"task_id": "t2", "custom_id": "item-1"}],
    }
    counts = {f"{k}_items": 0 for k in ("queued", "processing", "ready", "failed", "canceled")}
    status = {
        **created,
        "analysis_mode": "general",
        "model_name": "pegasus1.5",
        **counts,
        "status": "completed",
    }
    lines = [
        {
            "task_id": "t1",
            "custom_id": "item-0",
            "status": "ready",
            "data": {
                "generation_id": "g",
                "data": "hi",
                "finish_reason": "stop",
                "usage": {"output_tokens": 1},
            },
        },
        {
            "task_id": "t2",
            "custom_id": "item-1",
            "status": "failed",
            "error": {"code": "video_duration_too_long", "message": "over 2 h"},
        },
    ]

    def handle(seen: Seen) -> httpx2.Response:
        if seen.path == "/analyze/batches" and seen.method == "POST":
            return json_response(201, created)
        if seen.path.endswith("/results"):
            return httpx2.Response(
                200,
                content="\n".join(map(json.dumps, lines)) + "\n",
                headers={"content-type": "application/jsonl"},
            )
        if seen.path == "/analyze/batches/b1/cancel":
            return json_response(202, status)
        if seen.path == "/analyze/batches":
            return json_response(200, {"data": [status], "page_info": {"page": 1, "total_page": 1}})
        if seen.path == "/analyze/tasks":
            return json_response(200, {"data": [], "page_info": {"page": 1, "total_page": 1}})
        return json_response(200, status)

    api = FakeAPI(handle)
    batch = AnalyzeBatchRequest(
        items=[BatchItem(asset_id="a1", custom_id="item-0"), BatchItem(asset_id="a2", custom_id="item-1")],
        prompt="Summarize",
        max_tokens=1024,
    )
    async with make_client(api) as tl:
        made = await tl.analyze.create_batch(batch)
        got = await tl.analyze.get_batch("b1")
        results = await tl.analyze.batch_results("b1")
        await tl.analyze.cancel_batch("b1")
        await tl.analyze.list_batches(status=["completed"])
        await tl.analyze.list_tasks(status=["ready", "failed"], analysis_mode="general")
    assert made.batch_id == "b1" and got.done and [r.status for r in results] == ["ready", "failed"]
    assert results[1].error is not None and results[1].error.code == "video_duration_too_long"
    post = api.seen[0]
    assert post.json() == {
        "model_name": "pegasus1.5",
        "analysis_mode": "general",
        "defaults": {"max_tokens": 1024, "prompt": {"input_text": "Summarize"}},
        "requests": [
            {"video": {"type": "asset_id", "asset_id": "a1"}, "custom_id": "item-0"},
            {"video": {"type": "asset_id", "asset_id": "a2"}, "custom_id": "item-1"},
        ],
    }
    assert post.headers["idempotency-key"].startswith("tlmcp-")
    assert api.seen[-1].params.get_list("status") == ["ready", "failed"]
