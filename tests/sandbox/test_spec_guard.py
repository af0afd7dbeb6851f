"""The global OpenAPI guard itself: it must catch what it claims to catch, and excuse only its listed
exceptions (a guard that passes everything would make every other sandbox test's conformance moot)."""

from __future__ import annotations

import json
from typing import Any

from tests.sandbox.conformance import Exchange, Recorder
from tl_mcp.sandbox.config import FaultRule


def _exchange(
    method: str, path: str, status: int, body: Any, content_type: str = "application/json"
) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(method, "/v1.3" + path, status, content_type, bytearray(raw), complete=True)


def _verdict(exchange: Exchange, faults: tuple[Any, ...] = ()) -> list[str]:
    recorder = Recorder()
    recorder.check(exchange, faults)
    return recorder.drain()


def test_a_wrong_field_type_names_route_status_and_field() -> None:
    found = _verdict(_exchange("GET", "/indexes/abc", 200, {"_id": 5, "index_name": "x"}))
    assert len(found) == 1
    assert found[0].startswith("GET /indexes/{index-id} -> 200 (GET /v1.3/indexes/abc)")
    assert "_id: 5 is not of type 'string'" in found[0]


def test_undeclared_success_status_and_missing_error_fields_are_violations() -> None:
    no_content = _verdict(_exchange("DELETE", "/assets/a1", 204, b""))
    assert "204 is not a status the spec declares" in no_content[0]
    no_code = _verdict(_exchange("GET", "/assets/a1", 404, {"message": "x"}))
    assert "'code' is a required property" in no_code[0]
    assert "not JSON" in _verdict(_exchange("GET", "/assets", 200, b"{oops"))[0]
    missing = {"code": "resource_not_exist", "message": "no"}
    assert _verdict(_exchange("GET", "/assets/a1", 404, missing)) == []


def test_streams_are_checked_frame_by_frame() -> None:
    good = b'{"event_type":"stream_start"}\n{"event_type":"text_generation","text":"hi"}\n'
    ndjson = "application/x-ndjson"
    assert _verdict(_exchange("POST", "/analyze", 200, good, ndjson)) == []
    broken = good + b'{"event_type":"text_generation","text":7}\n{"event_'
    found = _verdict(_exchange("POST", "/analyze", 200, broken, ndjson))[0]
    assert "line 2 " in found and "line 3: not JSON" in found
    sse = "text/event-stream"
    no_done = b'event: keepalive\ndata: {"type":"keepalive","sequence_number":0}\n\n'
    assert "`data: [DONE]` terminator" in _verdict(_exchange("POST", "/responses", 200, no_done, sse))[0]
    unknown = b'data: {"type":"nope","sequence_number":0}\n\ndata: [DONE]\n\n'
    assert (
        "'nope' is not a ResponseStreamEvent type"
        in _verdict(_exchange("POST", "/responses", 200, unknown, sse))[0]
    )


def test_deliberate_faults_are_not_judged_but_injected_errors_are() -> None:
    cut = _exchange("GET", "/assets", 200, b'{"data": [')
    assert _verdict(cut, (FaultRule(kind="malformed_json"),)) == []
    assert _verdict(cut) != []
    rate_limited = _exchange("GET", "/assets", 429, {"code": "too_many_requests"})
    assert "'message' is a required property" in _verdict(rate_limited, (FaultRule(kind="rate_limit"),))[0]


def test_exceptions_excuse_only_what_they_name() -> None:
    store = {"_id": "ks_1", "name": "n", "metadata": {"year": 2026}, "created_at": "2026-01-01T00:00:00Z"}
    assert _verdict(_exchange("GET", "/knowledge-stores/ks_1", 200, store)) == []
    store["name"] = 3
    found = _verdict(_exchange("GET", "/knowledge-stores/ks_1", 200, store))
    assert len(found) == 1 and "name: 3 is not of type 'string'" in found[0]
    assert "metadata/year" not in found[0]
    store["name"], store["metadata"] = "n", {"nested": {"no": "objects"}}
    assert "metadata/nested" in _verdict(_exchange("GET", "/knowledge-stores/ks_1", 200, store))[0]


def test_operations_outside_the_snapshot_are_counted_not_judged() -> None:
    recorder = Recorder()
    recorder.check(_exchange("GET", "/assets/a1/transcription", 200, {"anything": True}), ())
    recorder.check(_exchange("GET", "/media/a1/file", 200, b"bytes", "video/mp4"), ())
    assert recorder.drain() == []
    assert recorder.outside_spec[("GET", "/assets/{asset_id}/transcription")] == 1


def test_batch_results_are_json_lines_checked_line_by_line() -> None:
    ready = {"task_id": "t1", "custom_id": "a", "status": "ready"}
    good = (json.dumps(ready) + "\n" + json.dumps({**ready, "status": "failed"}) + "\n").encode()
    path = "/analyze/batches/b1/results"
    assert _verdict(_exchange("GET", path, 200, good, "application/jsonl")) == []
    bad = good + json.dumps({**ready, "status": "sleeping"}).encode() + b"\n"
    assert (
        "line 2 status: 'sleeping' is not one of"
        in _verdict(_exchange("GET", path, 200, bad, "application/jsonl"))[0]
    )
    assert "not application/jsonl" in _verdict(_exchange("GET", path, 200, good, "application/json"))[0]


def test_the_canceled_task_exception_excuses_only_that_status() -> None:
    task = {"task_id": "t1", "custom_id": None, "status": "canceled", "created_at": "2026-01-01T00:00:00Z"}
    assert _verdict(_exchange("GET", "/analyze/tasks/t1", 200, task)) == []
    assert (
        "'stopped' is not one of"
        in _verdict(_exchange("GET", "/analyze/tasks/t1", 200, {**task, "status": "stopped"}))[0]
    )
    unlimited = {**task, "request_params": {"max_tokens": "unlimited"}}
    assert _verdict(_exchange("GET", "/analyze/tasks/t1", 200, unlimited)) == []
    assert _verdict(
        _exchange("GET", "/analyze/tasks/t1", 200, {**task, "request_params": {"max_tokens": "many"}})
    )
