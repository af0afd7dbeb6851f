"""examples/stdio_client.py and examples/http_client.py run as a reader would run them, on the sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from newcomer_support import FAST_SANDBOX, ROOT, HttpServer, clean_env

from tl_mcp.samples import SampleInfo

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"


def test_stdio_example_follows_a_job_handle_and_searches(tmp_path: Path, sample: SampleInfo) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "stdio_client.py"),
            str(sample.path),
            "--sandbox-dir",
            str(tmp_path / "sandbox"),
        ],
        cwd=tmp_path,
        env=clean_env({"TL_MCP_BACKEND": "sandbox", "TL_MCP_LOG_LEVEL": "WARNING", **FAST_SANDBOX}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"^\d+ tools: .*upload_asset", out, re.M)
    assert "100.0%  Uploaded" in out, "byte progress reaches the progress callback"
    # wait_s=0: the call hands back a job handle at once, and wait_for_task relays everything.
    assert re.search(r"^job handle job_\S+?: still running", out, re.M), out
    assert re.search(r"indexed: ready", out)
    truth = next(s for s in sample.scenes if "APPLES" in s.title)
    hits = [(float(a), float(b)) for a, b in re.findall(r"at ([\d.]+)–([\d.]+) s in video", out)]
    assert any(a < truth.end and b > truth.start for a, b in hits), out


def test_http_example_streams_jockey_via_a_job_handle(http_server: HttpServer, sample: SampleInfo) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "http_client.py"),
            "--url",
            http_server.url,
            "--token",
            http_server.token,
            str(sample.path),
        ],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"item ksi_\S+: ready", out), out
    assert re.search(r"job handle job_\S+? \(in_progress\); streaming:", out), out
    answer = out.split("A: ", 1)[1].split("\nsession ", 1)[0]
    assert "apples" in answer.lower(), out
    assert re.search(r"\[\S+\] item ksi_\S+ 6\.0–12\.0 s", out), "the answer cites the apples scene"
    assert re.search(r"^session sess_\S+", out, re.M)
    assert http_server.token not in out + proc.stderr + http_server.log.read_text(errors="replace")


def test_http_server_refuses_a_missing_token(http_server: HttpServer) -> None:
    request = urllib.request.Request(
        http_server.url, data=b"{}", method="POST", headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
