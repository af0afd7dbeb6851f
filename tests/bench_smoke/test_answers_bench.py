"""The answer-quality bench runs end to end on its quick question set with the extractive answerer
(models are scored by `python -m bench --only answers`, not by pytest; no timing is asserted here)."""

from __future__ import annotations

from bench import answers
from bench.__main__ import table


def test_answer_bench_scores_the_extractive_answerer() -> None:
    result = answers.run(quick=True, models=False)
    assert result["questions"] == 4 and list(result["answerers"]) == ["extractive"]
    ext = result["answerers"]["extractive"]
    # The quick set's three answerable questions are found and cited by retrieval alone.
    assert ext["correct"] == 1.0 and ext["citation_ok"] == 1.0
    # The extractive engine lists the closest moments instead of refusing, and the bench says so.
    assert ext["refused"] == 0.0
    assert ext["valid_json"] is True and ext["structured_by"]["answerer"] == "extractive"
    assert all(
        r["generated_by"] == {"answerer": "extractive", "model": None, "note": None} for r in ext["rows"]
    )
    assert "answers extractive: correct" in table({"answers": result})
