"""Each MCP-layer benchmark runs end to end in --quick mode and writes a complete result (the real numbers
come from `python -m bench`, not from pytest; no timing is asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main

KEYS = {
    "mcp-overhead": ("mcp_overhead", "search_videos inproc p50"),
    "upload-memory": ("upload_memory", "server peak RSS"),
    "jockey-stream": ("jockey_stream", "jockey stdio: notifications"),
    "hosting": ("hosting", "HTTP 32 clients: calls/s"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bench", sorted(KEYS))
def test_mcp_bench_quick_run(bench: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "result.json"
    assert main(["--only", bench, "--quick", "--out", str(out)]) == 0
    key, row = KEYS[bench]
    result = json.loads(out.read_text())[key]
    assert isinstance(result["met"], bool) and result["load_average"]
    table = capfd.readouterr().out
    assert row in table
    if key == "mcp_overhead":
        for op in ("search_videos", "list_indexes"):
            assert {"baseline", "inproc", "stdio"} <= result[op].keys()
            assert result[op]["inproc"]["runs"] >= 15 and result[op]["baseline"]["p50_ms"] > 0
    elif key == "upload_memory":
        assert result["file_mib"] > 100 and result["rss_samples"] > 0
        assert result["mcp_mib_s"] > 0 and result["raw_mib_s"] > 0
    elif key == "hosting":
        assert result["startup"]["bare_s"] > 0 and result["startup"]["tl_mcp_s"] > 0
        for side in ("bare", "tl_mcp"):
            assert result["throughput"][side]["calls"] == 32 * 2 and result["throughput"][side]["p99_ms"] > 0
    else:
        for path in ("baseline", "inproc", "stdio"):
            assert result[path]["joined_equals_final"] is True
            assert result[path]["pieces_mean"] >= 1
