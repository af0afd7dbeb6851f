"""Multipart upload sessions expire after ``SandboxConfig.multipart_session_ttl_s``: an expired session
reports ``status: expired``, leaves the list of incomplete sessions and refuses chunks, reports and part URLs
with a 403 that says to start over."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from pydantic import ValidationError

from tests.sandbox.conftest import client_for
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.embedded import EmbeddedSandbox

TTL = 3.0


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_an_expired_session_refuses_everything_and_says_to_start_over(tmp_path: Path) -> None:
    sb = EmbeddedSandbox.start_in_thread(
        tmp_path, analyzers="none", multipart_session_ttl_s=TTL, multipart_chunk_size=1024
    )
    try:
        with client_for(sb) as c:
            r = c.post(
                "/assets/multipart-uploads", json={"filename": "a.mp4", "type": "video", "total_size": 3000}
            )
            assert r.status_code == 201, r.text
            session = r.json()
            expires = _parse(session["expires_at"])
            left = (expires - datetime.now(UTC)).total_seconds()
            assert 0 < left <= TTL
            # A part URL never outlives its session.
            assert all(_parse(u["expires_at"]) <= expires for u in session["upload_urls"])
            path = f"/assets/multipart-uploads/{session['upload_id']}"
            first = session["upload_urls"][0]
            put = httpx2.put(first["url"], content=b"x" * 1024)
            assert put.status_code == 200, put.text
            assert [s["upload_id"] for s in c.get("/assets/multipart-uploads").json()["data"]] == [
                session["upload_id"]
            ]

            time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)

            status = c.get(path)
            assert status.status_code == 200 and status.json()["status"] == "expired", status.text
            assert status.json()["uploaded_size"] == 1024
            assert c.get("/assets/multipart-uploads").json()["data"] == []
            etag = put.headers["etag"]
            report = {"chunk_index": 1, "proof": etag, "proof_type": "etag", "chunk_size": 1024}
            refusals = {
                "put": httpx2.put(session["upload_urls"][1]["url"], content=b"y" * 1024),
                "report": c.post(path, json={"completed_chunks": [report]}),
                "urls": c.post(path + "/presigned-urls", json={"start": 1, "count": 3}),
            }
            for what, resp in refusals.items():
                assert resp.status_code == 403, (what, resp.text)
                body = resp.json()
                assert body["code"] == "upload_expired", (what, body)
                assert "expired" in body["message"] and "POST /assets/multipart-uploads" in body["message"]
            # Nothing was assembled: the asset never appeared.
            assert c.get(f"/assets/{session['asset_id']}").status_code == 404
    finally:
        sb.stop()


def test_ttl_is_configurable_and_validated(tmp_path: Path) -> None:
    assert SandboxConfig(data_dir=tmp_path).multipart_session_ttl_s == 24 * 3600
    assert SandboxConfig(data_dir=tmp_path, multipart_session_ttl_s=60).multipart_session_ttl_s == 60
    with pytest.raises(ValidationError):
        SandboxConfig(data_dir=tmp_path, multipart_session_ttl_s=0)
