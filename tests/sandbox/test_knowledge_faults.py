"""`/responses` under injected faults (truncated stream, malformed frame, a stall that keepalives must fill),
and a knowledge-store item whose asset fails ingest. One store is prepared once; each test then serves the
same data folder with its own fault rules, so the rules never have to share a request counter."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from twelvelabs import TwelveLabs
from twelvelabs.types import ResponseInputItem

from tests.openapi_spec import validate_response
from tests.sandbox.conftest import Media, client_for, ready_asset, wait_for
from tests.sandbox.test_knowledge_http import conform, sse
from tl_mcp.sandbox.config import FaultConfig, FaultRule
from tl_mcp.sandbox.embedded import EmbeddedSandbox

KEY = "tlk_sandbox_fault_tests_0123456789"


@dataclass
class Prepared:
    data_dir: Path
    store_id: str
    item_id: str
    phrase: str

    def body(self, **extra: Any) -> dict[str, Any]:
        ask = [{"type": "message", "role": "user", "content": self.phrase}]
        return {"knowledge_store_id": self.store_id, "input": ask, "stream": True, **extra}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, media: Media) -> Prepared:
    data_dir = tmp_path_factory.mktemp("ks-faults")
    sb = EmbeddedSandbox.start_in_thread(data_dir, api_key=KEY, analyzers="none")
    try:
        with client_for(sb) as c:
            asset_id = ready_asset(c, media.video.path)
            store_id = c.post("/knowledge-stores", json={"name": "faults"}).json()["_id"]
            item_id = c.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id}).json()["_id"]
            item = wait_for(
                lambda: c.get(f"/knowledge-stores/{store_id}/items/{item_id}").json(),
                lambda b: b["status"] in ("ready", "failed"),
                timeout=60,
            )
            assert item["status"] == "ready", item
    finally:
        sb.stop()
    return Prepared(data_dir, store_id, item_id, media.video.subtitles[1].text)


@contextmanager
def serving(
    prepared: Prepared, *rules: FaultRule, allow_private_urls: bool = False
) -> Iterator[EmbeddedSandbox]:
    sb = EmbeddedSandbox.start_in_thread(
        prepared.data_dir,
        api_key=KEY,
        analyzers="none",
        keepalive_interval_s=0.1,
        faults=FaultConfig(rules=rules) if rules else None,
        allow_private_urls=allow_private_urls,
    )
    try:
        yield sb
    finally:
        sb.stop()


def _frames(raw: str) -> list[str]:
    return [block for block in raw.split("\n\n") if block]


def test_truncated_stream_stops_before_the_terminal_event(prepared: Prepared) -> None:
    rule = FaultRule(kind="truncate_stream", path="^/responses$", after_chunks=4, max_times=1)
    with serving(prepared, rule) as sb, client_for(sb) as c:
        cut = c.post("/responses", json=prepared.body())
        assert cut.status_code == 200
        events, done = sse(cut.text)
        assert len(events) == 4 and not done
        assert all(e["type"] not in ("response.completed", "response.failed") for e in events)
        conform(events)  # what did arrive is well formed
        whole, done = sse(c.post("/responses", json=prepared.body()).text)
        assert done and whole[-1]["type"] == "response.completed"


def test_malformed_frame_keeps_its_framing_and_the_rest_of_the_stream(prepared: Prepared) -> None:
    rule = FaultRule(kind="malformed_json", path="^/responses$", after_chunks=2)
    with serving(prepared, rule) as sb, client_for(sb) as c:
        raw = c.post("/responses", json=prepared.body()).text
        frames = _frames(raw)
        event_line, data_line = frames[2].split("\n")
        assert event_line == "event: response.output_item.added" and data_line.startswith("data: {")
        with pytest.raises(ValueError):
            sse(raw)
        healed = raw.replace(frames[2] + "\n\n", "")
        events, done = sse(healed)
        assert done and events[-1]["type"] == "response.completed"
        numbers = [e["sequence_number"] for e in events]
        assert 2 not in numbers and numbers == [0, 1, *range(3, len(events) + 1)]

        # The official SDK skips the frame it cannot parse, so a client sees a gap in the numbering.
        sdk = TwelveLabs(api_key=KEY, base_url=sb.base_url)
        seen = list(
            sdk.responses.create_stream(
                knowledge_store_id=prepared.store_id,
                input=[ResponseInputItem(type="message", role="user", content=prepared.phrase)],
            )
        )
        assert [e.sequence_number for e in seen][:3] == [0, 1, 3] and seen[-1].type == "response.completed"


def test_stall_is_filled_with_keepalives(prepared: Prepared) -> None:
    rule = FaultRule(kind="stall", path="^/responses$", latency_s=0.6)
    with serving(prepared, rule) as sb, client_for(sb) as c:
        events, done = sse(c.post("/responses", json=prepared.body()).text)
        assert done
        conform(events)
        types = [e["type"] for e in events]
        assert types[:2] == ["response.created", "response.in_progress"]
        stalled = types[2 : types.index("response.output_item.added")]
        assert len(stalled) >= 3 and set(stalled) == {"keepalive"}, types
        assert "keepalive" not in types[types.index("response.output_item.added") :]

        sdk = TwelveLabs(api_key=KEY, base_url=sb.base_url)
        seen = list(
            sdk.responses.create_stream(
                knowledge_store_id=prepared.store_id,
                input=[ResponseInputItem(type="message", role="user", content=prepared.phrase)],
            )
        )
        assert [e.sequence_number for e in seen] == list(range(len(seen)))
        assert "keepalive" in {e.type for e in seen} and seen[-1].type == "response.completed"

        plain = c.post("/responses", json=prepared.body(stream=False))
        assert plain.status_code == 200 and plain.json()["status"] == "completed"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def file_server(directory: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_item_fails_with_a_reason_when_its_asset_fails_ingest(prepared: Prepared, media: Media) -> None:
    # The origin is a loopback test server, which the sandbox refuses unless told otherwise.
    with (
        serving(prepared, allow_private_urls=True) as sb,
        client_for(sb) as c,
        file_server(media.broken.parent) as origin,
    ):
        # A URL upload is accepted at once and fails later, when the fetched bytes turn out not to be media.
        r = c.post("/assets", data={"method": "url", "url": f"{origin}/{media.broken.name}"})
        assert r.status_code == 201, r.text
        asset_id = r.json()["_id"]
        store_id = c.post("/knowledge-stores", json={"name": "doomed"}).json()["_id"]
        added = c.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id})
        assert added.status_code == 202, added.text
        item = wait_for(
            lambda: c.get(f"/knowledge-stores/{store_id}/items/{added.json()['_id']}").json(),
            lambda b: b["status"] in ("ready", "failed"),
            timeout=60,
        )
        assert item["status"] == "failed", item
        validate_response("get", "/knowledge-stores/{knowledge_store_id}/items/{item_id}", 200, item)
        assert asset_id in item["error"]["message"] and "failed" in item["error"]["message"]
        assert c.get(f"/assets/{asset_id}").json()["status"] == "failed"
        failed = c.get(f"/knowledge-stores/{store_id}/items", params={"status": "failed"}).json()
        assert [i["_id"] for i in failed["data"]] == [item["_id"]]

        # Jockey says plainly that nothing is ready instead of inventing an answer.
        answer = c.post(
            "/responses",
            json={
                "knowledge_store_id": store_id,
                "input": [{"type": "message", "role": "user", "content": "hi"}],
            },
        ).json()
        message = answer["output"][-1]["content"][0]
        assert "ready" in message["text"] and message["annotations"] == []
        hits = c.post(
            f"/knowledge-stores/{store_id}/search",
            json={"query": {"text": prepared.phrase}, "search_options": {"video": {"modalities": ["audio"]}}},
        )
        assert hits.status_code == 200 and hits.json()["data"] == []


def test_api_key_never_leaks_into_stream_or_errors(prepared: Prepared) -> None:
    with serving(prepared) as sb, client_for(sb) as c:
        raw = c.post("/responses", json=prepared.body()).text
        bad = c.post("/responses", json={"knowledge_store_id": "ks_nope", "input": []})
        wrong = httpx2.post(
            f"{sb.base_url}/responses", json=prepared.body(), headers={"x-api-key": "tlk_guess"}
        )
        assert wrong.status_code == 401 and "tlk_guess" not in wrong.text
        for text in (raw, bad.text, wrong.text, repr(sb)):
            assert KEY not in text
