"""An outside agent on the TypeScript MCP SDK with an audio-only file of its own (a spoken garden podcast,
no subtitles: tests/review_media.py) on the default embedded sandbox with speech-to-text: it asks Jockey,
follows the printed next steps, asks elliptical follow-ups and summarizes, counting progress."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from newcomer_support import ROOT, clean_env, npm_ci

from tests.newcomer.test_newcomer_ts_client import TS, TsSession, text
from tests.review_media import make_garden_podcast
from tl_mcp.samples import espeak_available

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.ml,
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm"
    ),
]
pytest.importorskip("faster_whisper", reason="needs the ml extra: pip install 'tl-mcp[ml]'")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[TsSession, Path]]:
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    npm_ci(TS)
    media = tmp_path / "media"
    media.mkdir()
    podcast = media / "garden.m4a"
    make_garden_podcast(podcast)
    # Speech only (the file has no picture), paced deltas as the demo's: what an agent sees live.
    env = clean_env({"TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox"), "TL_MCP_SANDBOX_ANALYZERS": "speech"})
    serve = ["-m", "tl_mcp.cli", "serve", "--allow-dir", str(media), "--sandbox-stream-delay", "0.02"]
    stdio = {"command": sys.executable, "args": serve, "env": env, "cwd": str(ROOT)}
    node = shutil.which("node")
    assert node is not None
    proc = subprocess.Popen(
        [node, "client.mjs", json.dumps({"stdio": stdio, "interactive": True})],
        cwd=TS,
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ts = TsSession(proc)
        ts.step({"op": "listTools"})
        yield ts, podcast
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_an_agent_asks_about_a_podcast_follows_up_and_follows_every_next_step(
    agent: tuple[TsSession, Path],
) -> None:
    ts, podcast = agent
    store = ts.call("create_knowledge_store", {"name": "podcasts"})["result"]["structuredContent"]["id"]
    uploaded = ts.call("upload_asset", {"path": str(podcast), "knowledge_store_id": store, "wait": True})
    asset = uploaded["result"]["structuredContent"]["asset_id"]
    assert uploaded["result"]["structuredContent"]["item_status"] == "ready"

    question = "What does a bag of compost cost?"
    asked = ts.call("create_response", {"knowledge_store_id": store, "input": question})
    answer = asked["result"]["structuredContent"]
    # The price is the third sentence (8.0-11.4 s); the answer streams as it is written.
    (moment,) = answer["citations"]
    assert 7.0 < moment["start_sec"] < 9.0 and 10.0 < moment["end_sec"] < 12.5, moment
    assert "7" in text(asked["result"]) and "Made by the sandbox extractively" in text(asked["result"])
    assert len(asked["progress"]) > 1
    session = answer["session_id"]

    # Every printed next step, as printed: analyze_video on the cited moment, continue_session.
    made = ts.follow(asked["result"], {"prompt": "What is said here?", "input": "And before?"})
    looked = text(made["analyze_video"]["result"])
    assert "compost" in looked.lower() and "garlic" not in looked.lower(), looked
    before = made["continue_session"]["result"]
    assert text(before).startswith("# Jockey answer\n\nJust before the moment I cited"), text(before)
    assert "october" in text(before).lower() and "compost" not in text(before).split("## Cited", 1)[0].lower()

    after = ts.call("continue_session", {"session_id": session, "input": "And after?"})
    assert "compost" in text(after["result"]).split("## Cited", 1)[0].lower(), text(after["result"])

    # A prompt asking for all that is said in a part is answered by that part's transcript: no "nothing
    # matches" in front of it.
    part = ts.call(
        "analyze_video", {"asset_id": asset, "prompt": "What is said here?", "start_time": 4, "end_time": 7.5}
    )
    said = text(part["result"])
    assert "october" in said.lower() and "matches the prompt" not in said, said

    summary = ts.call("summarize_video", {"asset_id": asset, "kind": "summary"})
    parsed = summary["result"]["structuredContent"]["parsed"]
    assert "october" in parsed["summary"].lower() and "compost" in parsed["summary"].lower(), parsed
    # Whisper writes these sentences without full stops; the summary still reads as sentences.
    assert "October." in parsed["summary"], parsed
