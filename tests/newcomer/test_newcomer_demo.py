"""`tl-mcp demo` end to end, as `make demo` runs it, plus its failure path and its console."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from newcomer_support import ROOT, clean_env
from PIL import Image

from tl_mcp.demo_console import Console

pytestmark = pytest.mark.e2e

#: The demo must ignore whatever key and endpoint the caller's shell has: it is offline by design.
DECOY_KEY = "tlk_DECOY_must_never_be_used_0123456789"


def _run_demo(out_dir: Path, *extra: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = clean_env({"TWELVELABS_API_KEY": DECOY_KEY, "TWELVELABS_BASE_URL": "http://127.0.0.1:9/v1.3"})
    return subprocess.run(
        [sys.executable, "-m", "tl_mcp.cli", "demo", "--output-dir", str(out_dir), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_runs_the_whole_session_offline(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo-output"
    proc = _run_demo(out_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout

    for n in range(1, 11):
        assert f"[{n}/10] " in out
    assert "Demo finished" in out
    # Upload progress: a bar that reaches 100 %, with the byte count.
    assert re.search(r"\] 100%\s+Uploaded [\d,]+ of [\d,]+ bytes", out), out
    # Search found the apples scene the sample's ground truth puts at 6–12 s.
    assert "the top hit overlaps it" in out
    # Jockey's answer streamed live (the │ lines) and matched the final text character for character.
    answer_lines = [line for line in out.splitlines() if line.startswith("  │ ")]
    assert any("apples" in line.lower() for line in answer_lines), out
    streamed = re.findall(r"streamed:\s+(\d+) characters live, (\d+) in the result", out)
    assert len(streamed) == 2 and all(a == b and int(a) > 0 for a, b in streamed), streamed
    sessions = re.findall(r"session:\s+(\S+)", out)
    assert len(sessions) == 2 and sessions[0] == sessions[1], "the follow-up must reuse the session"
    # The vector line names the model and, on the sandbox, the local embedder that really made it.
    assert re.search(r"vector:\s+\S+ \(made offline by [^)]+\): \d+ dims", out)

    thumb = out_dir / "search-thumbnail.jpg"
    with Image.open(thumb) as img:
        assert img.format == "JPEG" and img.width > 0
    transcript = (out_dir / "jockey-session.md").read_text("utf-8")
    assert "apples" in transcript.lower()
    assert (out_dir / "media" / "sample.mp4").stat().st_size > 0
    log = (out_dir / "server.log").read_text("utf-8")
    assert "embedded sandbox" in log
    for text in (out, proc.stderr, log):
        assert DECOY_KEY not in text


def test_demo_failure_is_explained_and_nonzero(tmp_path: Path) -> None:
    proc = _run_demo(tmp_path / "out", "--timeout", "1", timeout=60)
    assert proc.returncode == 1
    assert "Demo failed: the demo did not finish within 1 s (raise it with --timeout)" in proc.stdout


def test_console_without_a_terminal_prints_bars_at_quarters_only() -> None:
    buf = io.StringIO()
    console = Console(buf, live=False)
    for done in range(0, 101, 5):
        console.bar(done, 100, "bytes")
    lines = buf.getvalue().splitlines()
    assert [line.split("]")[1].split()[0] for line in lines] == ["0%", "25%", "50%", "75%", "100%"]
    console.activity("indexing: pending", changed=True)
    console.activity("indexing: pending", changed=False)
    console.stream("Hello\nworld")
    console.end_line()
    assert buf.getvalue().endswith("indexing: pending\n  │ Hello\n  │ world\n")
