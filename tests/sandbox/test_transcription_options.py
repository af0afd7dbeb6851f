"""`transcription_options` on search: `lexical` ranks transcript texts by BM25 alone, `semantic` by embedding
similarity alone, both (the default) averages the two."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.sandbox.conftest import Library, Media
from tests.sandbox.test_search_index import _random_indexes, _SemanticHashing
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.perception import Analyzers, FrameFeatureEmbedder, HashingTextEmbedder, TimedText
from tl_mcp.sandbox.retrieval import _E5_FLOOR, _E5_SPAN, rank_text

SOURCES = ("speech", "subtitle", "ocr")


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """(semantic, word-only) engines over the same hashing vectors."""
    semantic = Engine(
        SandboxConfig(data_dir=tmp_path / "s"),
        Analyzers(text=_SemanticHashing(), image=FrameFeatureEmbedder()),
    )
    plain = Engine(
        SandboxConfig(data_dir=tmp_path / "p"),
        Analyzers(text=HashingTextEmbedder(), image=FrameFeatureEmbedder()),
    )
    try:
        yield semantic, plain
    finally:
        semantic.db.close()
        plain.db.close()


def _one_asset(texts: list[str]) -> AssetIndex:
    timed = [TimedText(2.0 * i + 0.1, 2.0 * i + 1.9, t, "subtitle", 0.9) for i, t in enumerate(texts)]
    return AssetIndex(
        asset_id="asset000001",
        starts=np.arange(len(texts)) * 2.0,
        ends=np.arange(len(texts)) * 2.0 + 2.0,
        thumbnails=[None] * len(texts),
        image_vecs=None,
        texts=timed,
        text_vecs=_SemanticHashing().embed(texts),
    )


def test_each_mode_keeps_its_own_half_of_the_score(engines: tuple[Engine, Engine]) -> None:
    semantic_engine, _ = engines
    index = _one_asset(["apple orchard price", "apple ocean whale bike", "summer team"])
    query = "apple orchard price"

    def segments(mode: str) -> list[int]:
        found = rank_text(semantic_engine, [index], query, SOURCES, mode=mode)  # type: ignore[arg-type]
        return [m.segment for m in found]

    assert segments("lexical") == [0, 1]  # a shared word is enough
    assert segments("semantic") == [0]  # only a close meaning counts
    assert segments("fused") == [0, 1]

    def scores(mode: str) -> dict[int, float]:
        found = rank_text(semantic_engine, [index], query, SOURCES, mode=mode)  # type: ignore[arg-type]
        return {m.segment: m.score for m in found}

    fused, lexical, semantic = scores("fused"), scores("lexical"), scores("semantic")
    assert fused[0] == pytest.approx(0.5 * lexical[0] + 0.5 * semantic[0], abs=1e-4)
    assert fused[1] == pytest.approx(0.5 * lexical[1], abs=1e-4)


def test_lexical_mode_is_bm25_alone_on_random_corpora(engines: tuple[Engine, Engine]) -> None:
    semantic_engine, plain_engine = engines
    rng = np.random.default_rng(11)
    for trial in range(8):
        indexes = _random_indexes(rng, HashingTextEmbedder(), int(rng.integers(1, 6)))
        for query, operator in (("apple price", "or"), ("battery trail", "and"), ("summer", "or")):
            # With a word-only embedder the default ranking is BM25 alone: lexical mode must equal it.
            want = rank_text(plain_engine, indexes, query, SOURCES, operator)
            got = rank_text(semantic_engine, indexes, query, SOURCES, operator, mode="lexical")
            assert got == want, (trial, query, operator)


def test_semantic_mode_is_similarity_alone_on_random_corpora(engines: tuple[Engine, Engine]) -> None:
    semantic_engine, plain_engine = engines
    emb = _SemanticHashing()
    rng = np.random.default_rng(5)
    hits = 0
    for trial in range(8):
        indexes = _random_indexes(rng, emb, int(rng.integers(1, 6)))
        for query in ("apple price orchard", "battery trail", "summer team line", "ocean", "bike"):
            q = emb.embed([query], "query")[0]
            want: dict[tuple[str, int], float] = {}
            for ai in indexes:
                if ai.text_vecs is None:
                    continue
                for seg in range(len(ai.starts)):
                    s, e = float(ai.starts[seg]), float(ai.ends[seg])
                    sims = [
                        float(ai.text_vecs[i] @ q)
                        for i, t in enumerate(ai.texts)
                        if e <= s or (t.start < e and t.end > s)
                    ]
                    score = min(1.0, max(0.0, (max(sims, default=-1.0) - _E5_FLOOR) / _E5_SPAN))
                    if score > 0.05:
                        want[(ai.asset_id, seg)] = score
            for operator in ("or", "and"):  # `and` is about words; meaning-only matching ignores it
                got = rank_text(semantic_engine, indexes, query, SOURCES, operator, mode="semantic")
                assert {(m.asset_id, m.segment) for m in got} == set(want), (trial, query)
                hits += len(got)
                for m in got:
                    assert m.score == pytest.approx(want[(m.asset_id, m.segment)], abs=1e-4)
            # No semantic embedder: semantic matching has nothing to go on.
            assert rank_text(plain_engine, indexes, query, SOURCES, mode="semantic") == []
    assert hits >= 20  # the corpora do exercise semantic matches


def _search(library: Library, text: str, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "index_id": library.index_id,
        "search_options": "transcription",
        "query_text": text,
        **extra,
    }
    r = library.client.post("/search", data=data)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_search_route_honours_transcription_options(library: Library, media: Media) -> None:
    cue = media.video.subtitles[0].text
    default = _search(library, cue)
    assert default["data"], default
    both = _search(library, cue, transcription_options=["lexical", "semantic"])
    lexical = _search(library, cue, transcription_options="lexical")
    # This sandbox's text embedder is word-only, so the default ranking already is the lexical one.
    assert lexical["data"] == both["data"] == default["data"]
    semantic = _search(library, cue, transcription_options="semantic")
    assert semantic["data"] == []
    notes = semantic["search_metadata"]["notes"]  # type: ignore[index]
    assert any("transcription_options=semantic" in n for n in notes), notes


@pytest.mark.parametrize("value", ["fuzzy", "LEXICAL", ""])
def test_unknown_transcription_options_are_a_400(library: Library, value: str) -> None:
    r = library.client.post(
        "/search",
        data={
            "index_id": library.index_id,
            "search_options": "transcription",
            "query_text": "x",
            "transcription_options": value,
        },
    )
    if value == "":
        assert r.status_code == 200, r.text  # an empty field is the same as not sending it
        return
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "parameter_invalid" and "lexical" in body["message"] and value in body["message"]
