"""`/analyze/tasks` and `/analyze/batches` over loopback HTTP: segments built from the video's evidence,
the Idempotency-Key, cancellation, batches whose items fail alone, and bad input that creates nothing.
Every response also passes the global OpenAPI guard (with the SDK 1.3.6 exceptions it lists)."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.sandbox.conftest import Library, Media, wait_for

DONE = ("ready", "failed", "canceled")


def _task(c: httpx2.Client, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = wait_for(
        lambda: c.get(f"/analyze/tasks/{task_id}").json(), lambda b: b["status"] in DONE
    )
    return body


def _count(c: httpx2.Client) -> int:
    total: int = c.get("/analyze/tasks").json()["page_info"]["total_results"]
    return total


def _segmenting(library: Library, *definitions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "video": {"type": "asset_id", "asset_id": library.asset_id},
        "analysis_mode": "time_based_metadata",
        "response_format": {
            "type": "segment_definitions",
            "segment_definitions": list(definitions),
            **extra.pop("fmt", {}),
        },
        **extra,
    }


def test_segments_follow_the_scenes_whose_text_matches(library: Library, media: Media) -> None:
    c = library.client
    ocean = {
        "id": "ocean",
        "description": "ocean waves",
        "fields": [
            {"name": "title", "type": "string", "description": "chapter title"},
            {"name": "at", "type": "timestamp", "format": "hh:mm:ss", "description": "ocean"},
            {"name": "kind", "type": "string", "description": "kind", "enum": ["nature", "finance"]},
            {"name": "words", "type": "array", "items": {"type": "string"}, "description": "topics"},
        ],
    }
    body = _segmenting(library, ocean, fmt={"segment_time_format": "hh:mm:ss.fff"}, max_tokens=2048)
    r = c.post("/analyze/tasks", json=body)
    assert r.status_code == 202, r.text
    task = _task(c, r.json()["task_id"])
    assert task["status"] == "ready", task
    (segment,) = json.loads(task["result"]["data"])["ocean"]
    scene = media.video.scenes[2]
    assert (
        (segment["start_time"], segment["end_time"])
        == ("00:00:12.000", "00:00:18.000")
        == (
            f"00:00:{scene.start:06.3f}",
            f"00:00:{scene.end:06.3f}",
        )
    )
    meta = segment["metadata"]
    assert meta["at"] == "00:00:13" and meta["kind"] == "nature" and isinstance(meta["words"], list)
    assert task["result"]["finish_reason"] == "stop" and "Offline sandbox" in task["error"]["message"]
    assert task["request_params"]["analysis_mode"] == "time_based_metadata"


def test_time_ranges_and_segment_durations_bound_the_segments(library: Library) -> None:
    c = library.client
    everything = {"id": "parts", "description": "chapters"}
    ranged = _segmenting(library, {**everything, "time_ranges": [{"start_time": 0, "end_time": 12}]})
    split = _segmenting(library, everything, max_segment_duration=3)
    joined = _segmenting(library, everything, min_segment_duration=10)
    spans = {}
    for name, body in (("ranged", ranged), ("split", split), ("joined", joined)):
        task = _task(c, c.post("/analyze/tasks", json=body).json()["task_id"])
        spans[name] = [(s["start_time"], s["end_time"]) for s in json.loads(task["result"]["data"])["parts"]]
    assert spans["ranged"] == [(0.0, 6.0), (6.0, 12.0)]
    assert spans["split"] == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (9.0, 12.0), (12.0, 15.0), (15.0, 18.0)]
    assert spans["joined"] == [(0.0, 12.0), (12.0, 18.0)]


def test_a_task_analyzes_only_its_window(library: Library) -> None:
    """The stored task once dropped start_time/end_time, so a task analyzed the whole video."""
    c = library.client
    body = {
        "video": {"type": "asset_id", "asset_id": library.asset_id},
        "prompt": "transcript",
        "start_time": 6,
        "end_time": 12,
    }
    task = _task(c, c.post("/analyze/tasks", json=body).json()["task_id"])
    assert "two dollars" in task["result"]["data"] and "revenue" not in task["result"]["data"]
    assert task["request_params"]["start_time"] == 6


def test_the_idempotency_key_returns_the_same_task_and_custom_id_does_not(library: Library) -> None:
    c = library.client
    body = {
        "video": {"type": "asset_id", "asset_id": library.asset_id},
        "prompt": "apples",
        "custom_id": "run-1",
    }
    before = _count(c)
    first = c.post("/analyze/tasks", json=body, headers={"Idempotency-Key": "key-1"})
    again = c.post("/analyze/tasks", json=body, headers={"Idempotency-Key": "key-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["task_id"] == again.json()["task_id"]
    other = c.post("/analyze/tasks", json={**body, "prompt": "ocean"}, headers={"Idempotency-Key": "key-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert _count(c) == before + 1
    # Like the cloud's, custom_id only correlates: the same one twice makes two tasks.
    twin = c.post("/analyze/tasks", json=body)
    assert twin.json()["task_id"] != first.json()["task_id"] and _count(c) == before + 2
    listed = c.get("/analyze/tasks", params={"asset_id": library.asset_id, "page_limit": 50}).json()["data"]
    assert sum(t["custom_id"] == "run-1" for t in listed) == 2


@pytest.fixture
def busy_asset(library: Library, media: Media) -> Iterator[tuple[str, threading.Event]]:
    """A URL asset whose video answers only once the event is set (or the test ends): while the worker
    fetches it, every task queued after it waits, so a test can cancel them before they run."""
    release = threading.Event()

    class Stalling(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(30)
            super().do_GET()

    handler = functools.partial(Stalling, directory=str(media.video.path.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{media.video.path.name}"
    try:
        r = library.client.post("/assets", data={"method": "url", "url": url, "filename": "busy.mp4"})
        assert r.status_code == 201, r.text
        yield r.json()["_id"], release
    finally:
        release.set()
        asset = f"/assets/{r.json()['_id']}"
        wait_for(lambda: library.client.get(asset).json(), lambda a: a["status"] != "processing")
        httpd.shutdown()
        httpd.server_close()


def test_cancel_is_repeat_safe_and_keeps_its_first_reason(
    library: Library, busy_asset: tuple[str, threading.Event]
) -> None:
    c = library.client
    asset_id, release = busy_asset
    # The worker is busy fetching the asset, so the task is still queued when it is cancelled.
    task_id = c.post(
        "/analyze/tasks", json={"video": {"type": "asset_id", "asset_id": asset_id}, "prompt": "x"}
    ).json()["task_id"]
    for _ in range(2):
        r = c.post(f"/analyze/tasks/{task_id}/cancel")
        assert r.status_code == 200 and r.json() == {"task_id": task_id, "status": "canceled"}
    canceled = c.get(f"/analyze/tasks/{task_id}").json()
    assert (
        canceled["error"]["code"] == "user_canceled" and canceled["completed_at"] and "result" not in canceled
    )
    release.set()
    wait_for(lambda: c.get(f"/assets/{asset_id}").json(), lambda a: a["status"] == "ready")
    assert library.sb.engine.jobs.wait_idle(30)
    assert c.get(f"/analyze/tasks/{task_id}").json()["status"] == "canceled"
    done = _task(
        c,
        c.post(
            "/analyze/tasks", json={"video": {"type": "asset_id", "asset_id": asset_id}, "prompt": "x"}
        ).json()["task_id"],
    )
    late = c.post(f"/analyze/tasks/{done['task_id']}/cancel")
    assert late.status_code == 409 and late.json()["error"]["code"] == "task_not_cancelable"
    assert c.post("/analyze/tasks/0123456789abcdef01234567/cancel").status_code == 404


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model_name": "pegasus1.2"}, "model_name"),
        ({"max_tokens": 100}, "512 to 98,304"),
        ({"max_tokens": "unlimited"}, "unlimited"),
        ({"custom_id": "has space"}, "custom_id"),
        ({"analysis_mode": "time_based_metadata"}, "segment_definitions"),
        ({"image": [{"name": "a", "url": "https://example.com/a.png"}]}, "pegasus1.6"),
        (
            {
                "video": None,
                "image": [{"name": "a", "url": "http://example.com/a.png"}],
                "model_name": "pegasus1.6",
            },
            "https",
        ),
        (
            {
                "video": None,
                "prompt": "<@a>",
                "image": [{"name": "a", "asset_id": "x"}, {"name": "b", "asset_id": "y"}],
                "model_name": "pegasus1.6",
            },
            "every image",
        ),
    ],
)
def test_bad_general_tasks_are_refused_and_create_nothing(
    library: Library, change: dict[str, Any], expected: str
) -> None:
    c = library.client
    body = {"video": {"type": "asset_id", "asset_id": library.asset_id}, "prompt": "x", **change}
    body = {k: v for k, v in body.items() if v is not None}
    before = _count(c)
    r = c.post("/analyze/tasks", json=body)
    assert r.status_code == 400 and expected in r.json()["error"]["message"], r.text
    assert _count(c) == before


TIME_ARRAY = {
    "name": "lines",
    "type": "time_array",
    "description": "lines",
    "items": {"type": "object", "fields": [{"name": "quote", "type": "string", "description": "q"}]},
}


@pytest.mark.parametrize(
    ("definition", "extra", "expected"),
    [
        ({"fields": [TIME_ARRAY]}, {}, "for pegasus1.5"),
        ({"fields": [{"name": "metadata", "type": "string", "description": "d"}]}, {}, "reserved"),
        ({"fields": [{"name": "t", "type": "timestamp", "description": "d"}]}, {}, "format"),
        (
            {"fields": [{"name": "n", "type": "number", "format": "seconds", "description": "d"}]},
            {},
            "format",
        ),
        (
            {"fields": [{"name": "a", "type": "array", "items": {"type": "object"}, "description": "d"}]},
            {},
            "items",
        ),
        (
            {
                "fields": [
                    {
                        **TIME_ARRAY,
                        "items": {
                            "type": "object",
                            "fields": [{"name": "start_time", "type": "number", "description": "d"}],
                        },
                    }
                ]
            },
            {"model_name": "pegasus1.6"},
            "reserved",
        ),
        (
            {"time_ranges": [{"start_time": 0, "end_time": 5}, {"start_time": 4, "end_time": 9}]},
            {},
            "overlap",
        ),
        ({"time_ranges": [{"start_time": 0, "end_time": 1}]}, {}, "2 s"),
        ({"time_ranges": [{"start_time": 0, "end_time": 6}]}, {"start_time": 1}, "exclude each other"),
        ({}, {"max_tokens": "unlimited"}, "pegasus1.6"),
        ({}, {"max_tokens": 1000}, "2,048 to 98,304"),
        ({}, {"min_segment_duration": 1}, "at least 2"),
        ({}, {"min_segment_duration": 6, "max_segment_duration": 3}, "at least `min_segment_duration`"),
        ({}, {"prompt": "x"}, "prompt"),
    ],
)
def test_bad_segment_definitions_are_refused_and_create_nothing(
    library: Library, definition: dict[str, Any], extra: dict[str, Any], expected: str
) -> None:
    c = library.client
    body = _segmenting(library, {"id": "d", "description": "d", **definition}, **extra)
    before = _count(c)
    r = c.post("/analyze/tasks", json=body)
    assert r.status_code == 400 and expected in r.json()["error"]["message"], r.text
    assert _count(c) == before


def test_a_batch_runs_every_item_and_an_item_failing_alone_does_not_fail_it(
    library: Library, media: Media
) -> None:
    c = library.client
    with media.images[0].open("rb") as f:
        image = c.post("/assets", data={"method": "direct"}, files={"file": ("scene.png", f)}).json()["_id"]
    missing = "0123456789abcdef01234567"
    body = {
        "model_name": "pegasus1.5",
        "analysis_mode": "general",
        "defaults": {"prompt": {"input_text": "apples price"}},
        "requests": [
            {"video": {"type": "asset_id", "asset_id": library.asset_id}, "custom_id": "clip"},
            {"video": {"type": "asset_id", "asset_id": missing}, "custom_id": "gone"},
            {
                "video": {"type": "asset_id", "asset_id": image},
                "custom_id": "still",
                "prompt": {"input_text": "ocean"},
            },
        ],
    }
    r = c.post("/analyze/batches", json=body, headers={"Idempotency-Key": "batch-1"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert [i["custom_id"] for i in created["items"]] == ["clip", "gone", "still"] and created[
        "total_items"
    ] == 3
    batch_id = created["batch_id"]
    replay = c.post("/analyze/batches", json=body, headers={"Idempotency-Key": "batch-1"}).json()
    assert replay["batch_id"] == batch_id and replay["items"] == created["items"]
    final = wait_for(
        lambda: c.get(f"/analyze/batches/{batch_id}").json(), lambda b: b["status"] == "completed"
    )
    assert (final["ready_items"], final["failed_items"], final["queued_items"]) == (1, 2, 0)
    results = c.get(f"/analyze/batches/{batch_id}/results")
    assert results.headers["content-type"].startswith("application/jsonl")
    lines = {line["custom_id"]: line for line in map(json.loads, results.text.splitlines())}
    assert lines["clip"]["status"] == "ready" and "two dollars" in lines["clip"]["data"]["data"]
    assert lines["gone"]["error"]["code"] == lines["still"]["error"]["code"] == "asset_unavailable"
    task = c.get(f"/analyze/tasks/{lines['clip']['task_id']}").json()
    assert task["batch_id"] == batch_id and task["custom_id"] == "clip"
    # A batch's task is cancelled through its batch; a finished batch cannot be.
    assert c.post(f"/analyze/tasks/{task['task_id']}/cancel").json()["error"]["code"] == "task_in_batch"
    assert c.post(f"/analyze/batches/{batch_id}/cancel").json()["error"]["code"] == "batch_completed"
    assert batch_id in [
        b["batch_id"] for b in c.get("/analyze/batches", params={"status": "completed"}).json()["data"]
    ]
    assert c.delete(f"/analyze/batches/{batch_id}").status_code == 200
    assert c.get(f"/analyze/batches/{batch_id}").status_code == 404
    assert c.get(f"/analyze/tasks/{task['task_id']}").status_code == 404


def test_cancelling_a_batch_cancels_its_queued_items(
    library: Library, busy_asset: tuple[str, threading.Event]
) -> None:
    c = library.client
    items = [
        {"video": {"type": "asset_id", "asset_id": busy_asset[0]}, "custom_id": f"i{n}"} for n in range(3)
    ]
    body = {
        "model_name": "pegasus1.5",
        "analysis_mode": "general",
        "defaults": {"prompt": {"input_text": "x"}},
        "requests": items,
    }
    batch_id = c.post("/analyze/batches", json=body).json()["batch_id"]
    first = c.post(f"/analyze/batches/{batch_id}/cancel")
    assert first.status_code == 202 and first.json()["status"] in ("canceling", "canceled")
    assert c.post(f"/analyze/batches/{batch_id}/cancel").status_code == 202
    final = wait_for(
        lambda: c.get(f"/analyze/batches/{batch_id}").json(), lambda b: b["status"] == "canceled"
    )
    assert final["canceled_items"] == 3 and final["canceled_at"]
    lines = [json.loads(line) for line in c.get(f"/analyze/batches/{batch_id}/results").text.splitlines()]
    assert {line["error"]["code"] for line in lines} == {"batch_canceled"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model_name": "pegasus1.6"}, "pegasus1.5` only"),
        ({"analysis_mode": None}, "analysis_mode"),
        ({"requests": []}, "1 to 1000"),
        ({"requests": [{"video": {"type": "url", "url": "https://x.test/v.mp4"}}]}, "requests[0].video"),
        ({"requests": [{"video": {"type": "asset_id", "asset_id": "a"}, "custom_id": "x"}] * 2}, "unique"),
        ({"requests": [{"video": {"type": "asset_id", "asset_id": "a"}, "max_tokens": 10}]}, "requests[0]"),
        ({"defaults": {}}, "prompt"),
    ],
)
def test_bad_batches_are_refused_whole_and_create_nothing(
    library: Library, change: dict[str, Any], expected: str
) -> None:
    c = library.client
    body = {
        "model_name": "pegasus1.5",
        "analysis_mode": "general",
        "defaults": {"prompt": {"input_text": "x"}},
        "requests": [{"video": {"type": "asset_id", "asset_id": library.asset_id}}],
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    before = (_count(c), c.get("/analyze/batches").json()["page_info"]["total_results"])
    r = c.post("/analyze/batches", json=body)
    assert r.status_code == 400 and expected in r.json()["error"]["message"], r.text
    assert (_count(c), c.get("/analyze/batches").json()["page_info"]["total_results"]) == before


def test_a_task_on_a_new_url_video_waits_for_its_asset_instead_of_blocking_the_worker(
    library: Library, media: Media
) -> None:
    """The worker that runs a task would also run the asset job of the task's new URL video, queued
    behind it: the task once waited for that asset on the worker itself, for an hour."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(media.video.path.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{media.video.path.name}"
    try:
        c = library.client
        body = {"video": {"type": "url", "url": url}, "prompt": "apples price"}
        task = _task(c, c.post("/analyze/tasks", json=body).json()["task_id"])
        assert task["status"] == "ready", task
        assert "two dollars" in task["result"]["data"] and task["video_source"] == {"type": "url", "url": url}
    finally:
        httpd.shutdown()
        httpd.server_close()
