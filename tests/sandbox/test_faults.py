"""Fault injection is deterministic with every_nth and does what each kind promises."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx2
import pytest

from tests.sandbox.conftest import MARENGO, Media, client_for, indexed, ready_asset
from tl_mcp.sandbox.config import FaultConfig, FaultRule
from tl_mcp.sandbox.embedded import EmbeddedSandbox


def _sandbox(tmp_path: Path, *rules: FaultRule) -> EmbeddedSandbox:
    return EmbeddedSandbox.start_in_thread(tmp_path, analyzers="none", faults=FaultConfig(rules=rules))


def test_rate_limit_every_second_request(tmp_path: Path) -> None:
    sb = _sandbox(tmp_path, FaultRule(kind="rate_limit", path="^/indexes$", every_nth=2, retry_after_s=3))
    try:
        with client_for(sb) as c:
            codes = [c.get("/indexes").status_code for _ in range(4)]
            assert codes == [200, 429, 200, 429]
            r = c.get("/indexes")
            assert r.status_code == 200
            r = c.get("/indexes")
            assert r.headers["retry-after"] == "3" and r.json()["code"] == "too_many_requests"
            assert c.get("/assets").status_code == 200  # other paths untouched
    finally:
        sb.stop()


def test_server_error_latency_and_max_times(tmp_path: Path) -> None:
    sb = _sandbox(
        tmp_path,
        FaultRule(kind="server_error", path="^/assets$", status=503, max_times=1),
        FaultRule(kind="latency", path="^/indexes$", latency_s=0.3),
    )
    try:
        with client_for(sb) as c:
            assert c.get("/assets").status_code == 503
            assert c.get("/assets").status_code == 200
            began = time.monotonic()
            assert c.get("/indexes").status_code == 200
            assert time.monotonic() - began >= 0.3
    finally:
        sb.stop()


def test_drop_and_malformed_json(tmp_path: Path) -> None:
    sb = _sandbox(
        tmp_path,
        FaultRule(kind="drop", path="^/indexes$", methods=("GET",), max_times=1),
        FaultRule(kind="malformed_json", path="^/assets$", methods=("GET",), max_times=1),
    )
    try:
        with client_for(sb) as c:
            with pytest.raises(httpx2.TransportError):
                c.get("/indexes")
            assert c.get("/indexes").status_code == 200
            r = c.get("/assets")
            assert r.status_code == 200
            with pytest.raises(json.JSONDecodeError):
                json.loads(r.text)
            assert c.get("/assets").json()["data"] == []
    finally:
        sb.stop()


def test_truncated_stream(tmp_path: Path, media: Media) -> None:
    sb = _sandbox(tmp_path, FaultRule(kind="truncate_stream", path="^/analyze$", after_chunks=2))
    try:
        with client_for(sb) as c:
            index_id = c.post("/indexes", json={"index_name": "f", "models": MARENGO}).json()["_id"]
            asset_id = ready_asset(c, media.video.path)
            indexed(c, index_id, asset_id)
            body = {"video": {"asset_id": asset_id}, "prompt": "apples"}
            with c.stream("POST", "/analyze", json=body) as resp:
                events = [json.loads(line) for line in resp.iter_lines() if line.strip()]
            assert len(events) == 2 and events[0]["event_type"] == "stream_start"
            assert all(e["event_type"] != "stream_end" for e in events)
    finally:
        sb.stop()


def test_malformed_json_breaks_exactly_one_ndjson_line(tmp_path: Path, media: Media) -> None:
    sb = _sandbox(tmp_path, FaultRule(kind="malformed_json", path="^/analyze$", after_chunks=1, max_times=1))
    try:
        with client_for(sb) as c:
            asset_id = ready_asset(c, media.video.path)
            body = {"video": {"asset_id": asset_id}, "prompt": "apples"}

            def lines() -> list[str]:
                with c.stream("POST", "/analyze", json=body) as resp:
                    assert resp.status_code == 200
                    assert resp.headers["content-type"].startswith("application/x-ndjson")
                    return [line for line in resp.iter_lines() if line.strip()]

            broken, intact = lines(), lines()
            # Framing survives: same number of lines; only line 1 is cut, the stream still ends properly.
            assert len(broken) == len(intact) >= 3
            with pytest.raises(json.JSONDecodeError):
                json.loads(broken[1])
            assert intact[1].startswith(broken[1]) and len(broken[1]) < len(intact[1])
            parsed = [json.loads(line) for i, line in enumerate(broken) if i != 1]
            assert parsed[0]["event_type"] == "stream_start" and parsed[-1]["event_type"] == "stream_end"
            assert json.loads(intact[1])["event_type"] == "text_generation"
    finally:
        sb.stop()


def test_bad_fault_config_is_explained() -> None:
    with pytest.raises(ValueError, match="TL_MCP_SANDBOX_FAULTS"):
        FaultConfig.from_json('{"rules": [{"kind": "earthquake"}]}')
