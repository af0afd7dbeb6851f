"""State survives restarts; a kill -9 mid-processing leaves a database that recovers consistently."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.e2e.processes import free_port
from tests.sandbox.conftest import MARENGO, Media, client_for, indexed, ready_asset, upload, wait_for
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.app import WORKERS
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.store.db import now_iso
from tl_mcp.sandbox.store.jobs import MAX_ATTEMPTS

REPO = Path(__file__).resolve().parents[2]


def test_restart_keeps_everything(tmp_path: Path, media: Media) -> None:
    sb = EmbeddedSandbox.start_in_thread(tmp_path, analyzers="none", api_key="tlk_same")
    with client_for(sb) as c:
        index_id = c.post("/indexes", json={"index_name": "keep", "models": MARENGO}).json()["_id"]
        asset_id = ready_asset(c, media.video.path)
        video_id = indexed(c, index_id, asset_id)
    sb.stop()

    sb = EmbeddedSandbox.start_in_thread(tmp_path, analyzers="none", api_key="tlk_same")
    try:
        with client_for(sb) as c:
            assert c.get(f"/indexes/{index_id}").json()["video_count"] == 1
            r = c.post(
                "/search",
                data={"index_id": index_id, "search_options": "audio", "query_text": "orchard apples"},
            )
            assert r.json()["data"][0]["video_id"] == video_id
            thumb = r.json()["data"][0]["thumbnail_url"]
            assert httpx2.get(thumb).status_code == 200  # the URL secret persisted too
    finally:
        sb.stop()


def test_interrupted_jobs_resume_or_fail(tmp_path: Path, media: Media) -> None:
    config = SandboxConfig(data_dir=tmp_path, analyzers="none")
    engine = Engine(config, workers=WORKERS)
    db = engine.db
    now = now_iso()
    for asset_id, attempts in (("a" * 24, 1), ("b" * 24, MAX_ATTEMPTS)):
        db.run(
            "INSERT INTO assets(id, created_at, updated_at, status, method, filename, path) "
            "VALUES(?,?,?,?,?,?,?)",
            (asset_id, now, now, "processing", "direct", "clip.mp4", str(media.video.path)),
        )
        db.run(
            "INSERT INTO jobs(id, kind, ref, status, attempts, payload, created_at, updated_at) "
            "VALUES(?,?,?,?,?,?,?,?)",
            (asset_id, "asset", asset_id, "running", attempts, "{}", now, now),
        )
    engine.start()
    try:
        assert engine.jobs.wait_idle(30)
        statuses = dict(db.all("SELECT id, status FROM assets"))
        assert statuses == {"a" * 24: "ready", "b" * 24: "failed"}
        error = db.one("SELECT error FROM assets WHERE id=?", ("b" * 24,))
        assert error is not None and "interrupted" in error["error"]
    finally:
        engine.stop()


def _spawn(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TL_MCP_SANDBOX_API_KEYS": "tlk_crash", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tl_mcp.sandbox",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--analyzers",
            "none",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _client(port: int) -> httpx2.Client:
    base = f"http://127.0.0.1:{port}/v1.3"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx2.get(f"{base}/health", timeout=2.0)
            break
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return httpx2.Client(base_url=base, headers={"x-api-key": "tlk_crash"}, timeout=30.0)


@pytest.mark.timeout(120)
def test_kill_9_mid_processing_recovers(tmp_path: Path) -> None:
    clip = make_sample_video(tmp_path / "long.mp4", scene_seconds=10.0, speech=False)
    data_dir = tmp_path / "data"
    port = free_port()
    proc = _spawn(data_dir, port)
    try:
        with _client(port) as c:
            index_id = c.post("/indexes", json={"index_name": "crash", "models": MARENGO}).json()["_id"]
            ids = []
            for _ in range(4):
                r = upload(c, clip.path)
                assert r.status_code == 201, r.text
                ids.append(r.json()["_id"])
            r = c.post(
                "/tasks", data={"index_id": index_id}, files={"video_file": ("t.mp4", clip.path.read_bytes())}
            )
            task_id = r.json()["_id"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    with sqlite3.connect(data_dir / "sandbox.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        pending = db.execute("SELECT COUNT(*) FROM assets WHERE status='processing'").fetchone()[0]
    assert pending > 0, "the kill came too late to interrupt processing"

    proc = _spawn(data_dir, port)
    try:
        with _client(port) as c:
            for asset_id in ids:
                body = wait_for(
                    lambda a=asset_id: c.get(f"/assets/{a}").json(), lambda b: b["status"] != "processing"
                )
                assert body["status"] == "ready", body
            task = wait_for(
                lambda: c.get(f"/tasks/{task_id}").json(), lambda b: b["status"] in ("ready", "failed")
            )
            assert task["status"] == "ready"
            assert c.get(f"/indexes/{index_id}").json()["video_count"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    with sqlite3.connect(data_dir / "sandbox.db") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued','running')").fetchone()[0] == 0
