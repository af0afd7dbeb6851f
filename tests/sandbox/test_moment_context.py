"""What an answer quotes beside a matched moment: the other text of that moment, from the real database."""

from __future__ import annotations

from pathlib import Path

from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.knowledge.ingest import moment_context
from tl_mcp.sandbox.perception.base import Analyzers
from tl_mcp.sandbox.perception.default import FrameFeatureEmbedder, HashingTextEmbedder

TEXTS = [
    (0, 0.0, 6.0, "QUARTERLY SALES", "ocr"),
    (1, 0.5, 5.5, "Quarterly sales rose twenty percent.", "subtitle"),
    (2, 12.0, 18.0, "THE OCEAN", "ocr"),
    (3, 12.5, 17.5, "Chapter three takes us deep beneath the ocean waves.", "subtitle"),
    (4, 12.6, 17.4, "chapter three takes us deep beneath the ocean waves", "speech"),
    (5, 13.0, 14.0, "Whales sing far below.", "speech"),
]


def _engine(tmp_path: Path) -> Engine:
    engine = Engine(
        SandboxConfig(data_dir=tmp_path), Analyzers(text=HashingTextEmbedder(), image=FrameFeatureEmbedder())
    )
    for idx, start, end, text, source in TEXTS:
        engine.db.run(
            "INSERT INTO texts (asset_id, idx, start, end, text, source, confidence) VALUES (?,?,?,?,?,?,1)",
            ("a1", idx, start, end, text, source),
        )
    return engine


def test_on_screen_match_brings_what_is_said_in_the_same_moment(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        context = moment_context(engine, "a1", 12.0, 18.0, exclude="THE OCEAN")
    finally:
        engine.db.close()
    # The subtitle is quoted; the speech that repeats it adds nothing, so the other speech line stands in.
    assert context == (
        ("subtitle", "Chapter three takes us deep beneath the ocean waves."),
        ("speech", "Whales sing far below."),
    )


def test_context_stays_inside_the_moment_and_skips_repeats_of_the_match(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        context = moment_context(engine, "a1", 0.0, 6.0, exclude="Quarterly sales rose twenty percent.")
        nothing = moment_context(engine, "a1", 30.0, 36.0, exclude="anything")
    finally:
        engine.db.close()
    assert context == ()  # the on-screen "QUARTERLY SALES" only repeats words of the match
    assert nothing == ()
