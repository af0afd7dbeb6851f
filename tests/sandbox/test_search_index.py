"""The stacked search index: same ranking as a plain per-segment BM25 + semantic scan, and current after
assets are analysed, re-analysed or deleted."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tl_mcp.samples import SceneSpec, make_sample_video
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.perception import Analyzers, FrameFeatureEmbedder, HashingTextEmbedder, TimedText
from tl_mcp.sandbox.retrieval import Moment, rank_text, retrieve, tokens
from tl_mcp.sandbox.store.db import now_iso
from tl_mcp.sandbox.work.asset import analyze_asset

WORDS = [
    "apple",
    "orchard",
    "price",
    "revenue",
    "ocean",
    "bike",
    "battery",
    "trail",
    "factory",
    "line",
    "team",
    "summer",
]


class _SemanticHashing(HashingTextEmbedder):
    """Hashing vectors flagged semantic, so the semantic half of the score is exercised offline."""

    semantic = True


def _oracle(
    engine: Engine, indexes: Sequence[AssetIndex], query: str, sources: Sequence[str], operator: str
) -> list[Moment]:
    """Segment-by-segment reference: each segment's document is its overlapping texts of ``sources``."""
    from tl_mcp.sandbox.retrieval import _B, _E5_FLOOR, _E5_SPAN, _K1, _moment

    docs = []
    for ai in indexes:
        for seg in range(len(ai.starts)):
            s, e = float(ai.starts[seg]), float(ai.ends[seg])
            ids = [
                i
                for i, t in enumerate(ai.texts)
                if t.source in sources and (e <= s or (t.start < e and t.end > s))
            ]
            docs.append((ai, seg, [w for i in ids for w in tokens(ai.texts[i].text)], ids))
    q_terms = list(dict.fromkeys(tokens(query)))
    if not docs or not q_terms:
        return []
    n = len(docs)
    avg = sum(len(d[2]) for d in docs) / n or 1.0
    df = Counter(w for d in docs for w in set(d[2]))
    idf = {q: math.log(1 + (n - df.get(q, 0) + 0.5) / (df.get(q, 0) + 0.5)) for q in q_terms}
    best_possible = sum(idf[q] * (_K1 + 1) / (1 + _K1) for q in q_terms) or 1.0
    emb = engine.analyzers.text
    q_vec = emb.embed([query], "query")[0] if emb.semantic else None
    out = []
    for ai, seg, words, ids in docs:
        tf = Counter(words)
        norm = _K1 * (1 - _B + _B * len(words) / avg)
        bm25 = sum(idf[q] * tf[q] * (_K1 + 1) / (tf[q] + norm) for q in q_terms if tf[q])
        lexical = min(1.0, bm25 / best_possible)
        if operator == "and" and any(tf[q] == 0 for q in q_terms):
            lexical = 0.0
        semantic, best_i = 0.0, -1
        if q_vec is not None and ai.text_vecs is not None and ids:
            sims = ai.text_vecs[ids] @ q_vec
            k = int(np.argmax(sims))
            best_i = ids[k]
            semantic = max(0.0, min(1.0, (float(sims[k]) - _E5_FLOOR) / _E5_SPAN))
        score = 0.5 * lexical + 0.5 * semantic if q_vec is not None else lexical
        if operator == "and" and lexical == 0.0:
            score = 0.0
        if score <= 0.05:
            continue
        if best_i < 0:
            best_i = max(ids, key=lambda i: sum(1 for w in tokens(ai.texts[i].text) if w in idf))
        best = ai.texts[best_i]
        span = (best.start, best.end) if best.source == "speech" else None  # speech: the sentence's own times
        out.append(_moment(ai, seg, best.text, score, best.source, span))
    out.sort(key=lambda m: (-m.score, m.asset_id, m.start))
    return out


def _random_indexes(rng: np.random.Generator, emb: HashingTextEmbedder, n_assets: int) -> list[AssetIndex]:
    out = []
    for a in range(n_assets):
        n_seg = int(rng.integers(1, 12))
        bounds = np.cumsum(rng.uniform(0.5, 8.0, size=n_seg + 1))
        starts, ends = bounds[:-1].copy(), bounds[1:].copy()
        if a == 0:  # a still image: one zero-length segment holding every text
            starts, ends = np.zeros(1), np.zeros(1)
        texts = []
        for _ in range(int(rng.integers(0, 25))):
            t0 = float(rng.uniform(0, float(ends[-1]) + 1))
            words = rng.choice(WORDS, size=int(rng.integers(1, 6)))
            source = str(rng.choice(["speech", "ocr", "subtitle"]))
            texts.append(TimedText(t0, t0 + float(rng.uniform(0, 6)), " ".join(words), source, 0.9))  # type: ignore[arg-type]
        texts.sort(key=lambda t: (t.start, t.source))
        vecs = emb.embed([t.text for t in texts]) if texts and a % 3 != 1 else None
        out.append(
            AssetIndex(
                asset_id=f"asset{int(rng.integers(0, 10**6)):06d}",
                starts=starts,
                ends=ends,
                thumbnails=[None] * len(starts),
                image_vecs=None,
                texts=texts,
                text_vecs=vecs,
            )
        )
    return out


@pytest.mark.parametrize("semantic", [False, True])
def test_ranking_matches_the_per_segment_reference(tmp_path: Path, semantic: bool) -> None:
    text = _SemanticHashing() if semantic else HashingTextEmbedder()
    engine = Engine(SandboxConfig(data_dir=tmp_path), Analyzers(text=text, image=FrameFeatureEmbedder()))
    try:
        rng = np.random.default_rng(7)
        for trial in range(12):
            indexes = _random_indexes(rng, text, int(rng.integers(1, 7)))
            for query, sources, operator in (
                ("apple price", ("speech", "ocr", "subtitle"), "or"),
                ("ocean bike", ("ocr",), "or"),
                ("battery trail", ("speech", "subtitle"), "and"),
                ("summer", ("speech", "ocr", "subtitle"), "or"),
                ("nothing matches", ("speech",), "or"),
            ):
                want = _oracle(engine, indexes, query, sources, operator)
                got = rank_text(engine, indexes, query, sources, operator)
                assert got == want, (trial, query, sources, operator)
                # A second run uses the cached corpus; a limit keeps exactly the best ones.
                assert rank_text(engine, indexes, query, sources, operator, limit=3) == want[:3]
    finally:
        engine.db.close()


def _add_asset(engine: Engine, asset_id: str, path: Path) -> None:
    now = now_iso()
    engine.db.run(
        "INSERT INTO assets(id, created_at, updated_at, status, method, filename, kind, path) "
        "VALUES(?,?,?,?,?,?,?,?)",
        (asset_id, now, now, "ready", "direct", path.name, "video", str(path)),
    )
    analyze_asset(engine, asset_id, path, engine.probe(path))


def _delete_asset(engine: Engine, asset_id: str) -> None:
    with engine.db.tx() as conn:
        for table, column in (("segments", "asset_id"), ("texts", "asset_id"), ("assets", "id")):
            conn.execute(f"DELETE FROM {table} WHERE {column}=?", (asset_id,))
    engine.remove_asset_files(asset_id)


def test_index_follows_added_reanalysed_and_deleted_assets(tmp_path: Path) -> None:
    apples = SceneSpec("APPLES", "Fresh apples from the orchard cost two dollars.", (40, 140, 60), 440.0)
    ocean = SceneSpec("OCEAN", "Whales sing deep beneath the ocean waves.", (20, 40, 150), 550.0)
    first = make_sample_video(tmp_path / "a.mp4", scenes=[apples], with_audio=False, speech=False)
    second = make_sample_video(tmp_path / "b.mp4", scenes=[ocean], with_audio=False, speech=False)
    engine = Engine(
        SandboxConfig(data_dir=tmp_path / "data"),
        Analyzers(text=HashingTextEmbedder(), image=FrameFeatureEmbedder()),
    )
    try:
        _add_asset(engine, "asset-a", first.path)
        assert [m.asset_id for m in retrieve(engine, ["asset-a", "asset-b"], "orchard apples")] == ["asset-a"]
        assert retrieve(engine, ["asset-a", "asset-b"], "whales ocean") == []

        # Adding an asset makes it searchable next to the one already cached.
        _add_asset(engine, "asset-b", second.path)
        hits = retrieve(engine, ["asset-a", "asset-b"], "whales ocean")
        assert hits and hits[0].asset_id == "asset-b" and "Whales" in hits[0].text
        assert retrieve(engine, ["asset-a", "asset-b"], "orchard apples")[0].asset_id == "asset-a"
        # Queries over the same assets share one cached corpus.
        (corpus,) = [c for k, c in engine.search_corpora.items() if k[0] == ("asset-a", "asset-b")]
        retrieve(engine, ["asset-a", "asset-b"], "whales")
        assert [c for k, c in engine.search_corpora.items() if k[0] == ("asset-a", "asset-b")] == [corpus]

        # Re-analysing an asset with other media replaces what it answers to.
        analyze_asset(engine, "asset-a", second.path, engine.probe(second.path))
        both = retrieve(engine, ["asset-a", "asset-b"], "whales")
        assert {m.asset_id for m in both} == {"asset-a", "asset-b"}
        assert retrieve(engine, ["asset-a", "asset-b"], "orchard apples") == []

        # Deleting an asset removes it from results and from the cached corpora.
        _delete_asset(engine, "asset-b")
        assert [m.asset_id for m in retrieve(engine, ["asset-a", "asset-b"], "whales")] == ["asset-a"]
        assert not any("asset-b" in key[0] for key in engine.search_corpora)
    finally:
        engine.db.close()
