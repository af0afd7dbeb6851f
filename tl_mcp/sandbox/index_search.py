"""Ranking of analysed segments: BM25 over the text found in each segment, semantic similarity when the text
embedder is semantic, and key-frame similarity for image queries.

For other sandbox modules (knowledge stores / Jockey) the entry point is :func:`retrieve`::

    from tl_mcp.sandbox.index_search import retrieve, Moment
    moments: list[Moment] = retrieve(engine, asset_ids, "fresh apples", limit=5)

``engine`` is ``request.app.state.engine``. Moments come best first with real scores in [0, 1].
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tl_mcp.sandbox.analyzers.base import FloatArray
from tl_mcp.sandbox.engine import AssetIndex, Engine

_WORD = re.compile(r"[\w$%+]+", re.UNICODE)
_K1, _B = 1.2, 0.75
#: multilingual-e5 cosines sit in ~0.8-0.92 for any pair; map that band onto 0-1.
_E5_FLOOR, _E5_SPAN = 0.80, 0.12
TRANSCRIPT_SOURCES = ("subtitle", "speech")
VISUAL_SOURCES = ("ocr",)


@dataclass(frozen=True, slots=True)
class Moment:
    asset_id: str
    start: float
    end: float
    text: str
    score: float
    #: Evidence source: "subtitle", "speech", "ocr" (on-screen text) or "frame" (image similarity).
    modality: str
    #: Relative path under /v1.3 (e.g. "/media/<asset>/thumbs/0.jpg"), or None without a picture.
    thumbnail_path: str | None
    segment: int = 0

    @property
    def confidence(self) -> str:
        return confidence(self.score)


def confidence(score: float) -> str:
    if score >= 0.6:
        return "high"
    if score >= 0.3:
        return "medium"
    return "low"


def tokens(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def sources_for(options: Iterable[str]) -> tuple[str, ...]:
    """Map TwelveLabs search options onto text sources. `audio` and `transcription` both read the spoken
    words (subtitles, speech-to-text): no offline model understands non-speech sound."""
    wanted: list[str] = []
    for opt in options:
        if opt in ("audio", "transcription"):
            wanted.extend(TRANSCRIPT_SOURCES)
        elif opt == "visual":
            wanted.extend(VISUAL_SOURCES)
    return tuple(dict.fromkeys(wanted))


@dataclass(slots=True)
class _Doc:
    index: AssetIndex
    seg: int
    words: list[str]
    best_text: str
    best_source: str
    text_ids: list[int]


def _segment_docs(indexes: Sequence[AssetIndex], sources: Sequence[str]) -> list[_Doc]:
    docs: list[_Doc] = []
    for ai in indexes:
        for seg in range(len(ai.starts)):
            start, end = float(ai.starts[seg]), float(ai.ends[seg])
            ids = [
                i
                for i, t in enumerate(ai.texts)
                if t.source in sources and (end <= start or (t.start < end and t.end > start))
            ]
            words = [w for i in ids for w in tokens(ai.texts[i].text)]
            docs.append(_Doc(ai, seg, words, "", "", ids))
    return docs


def rank_text(
    engine: Engine, indexes: Sequence[AssetIndex], query: str, sources: Sequence[str], operator: str = "or"
) -> list[Moment]:
    """Score every segment of ``indexes`` against ``query`` using the texts of ``sources``."""
    docs = _segment_docs(indexes, sources)
    q_terms = list(dict.fromkeys(tokens(query)))
    if not docs or not q_terms:
        return []
    n = len(docs)
    avg_len = sum(len(d.words) for d in docs) / n or 1.0
    df = Counter(w for d in docs for w in set(d.words))
    idf = {q: math.log(1 + (n - df.get(q, 0) + 0.5) / (df.get(q, 0) + 0.5)) for q in q_terms}
    best_possible = sum(idf[q] * (_K1 + 1) / (1 + _K1) for q in q_terms) or 1.0

    embedder = engine.analyzers.text
    q_vec: FloatArray | None = embedder.embed([query], "query")[0] if embedder.semantic else None

    moments: list[Moment] = []
    for d in docs:
        tf = Counter(d.words)
        norm = _K1 * (1 - _B + _B * len(d.words) / avg_len)
        bm25 = sum(idf[q] * tf[q] * (_K1 + 1) / (tf[q] + norm) for q in q_terms if tf[q])
        lexical = min(1.0, bm25 / best_possible)
        if operator == "and" and any(tf[q] == 0 for q in q_terms):
            lexical = 0.0
        semantic = 0.0
        best_i = -1
        ai = d.index
        if q_vec is not None and ai.text_vecs is not None and d.text_ids:
            sims = ai.text_vecs[d.text_ids] @ q_vec
            k = int(np.argmax(sims))
            best_i = d.text_ids[k]
            semantic = max(0.0, min(1.0, (float(sims[k]) - _E5_FLOOR) / _E5_SPAN))
        score = 0.5 * lexical + 0.5 * semantic if q_vec is not None else lexical
        if operator == "and" and lexical == 0.0:
            score = 0.0
        if score <= 0.05:
            continue
        if best_i < 0:
            best_i = max(d.text_ids, key=lambda i: sum(1 for w in tokens(ai.texts[i].text) if w in idf))
        best = ai.texts[best_i]
        moments.append(_moment(ai, d.seg, best.text, score, best.source))
    moments.sort(key=lambda m: (-m.score, m.asset_id, m.start))
    return moments


def rank_image(indexes: Sequence[AssetIndex], vectors: Sequence[FloatArray]) -> list[Moment]:
    """Segments by cosine similarity of their key frame to any of the query images (best one counts)."""
    moments: list[Moment] = []
    for ai in indexes:
        if ai.image_vecs is None:
            continue
        sims = np.max(np.stack([ai.image_vecs @ v for v in vectors]), axis=0)
        for seg, sim in enumerate(sims):
            score = max(0.0, min(1.0, float(sim)))
            if score > 0.05:
                moments.append(_moment(ai, seg, "", score, "frame"))
    moments.sort(key=lambda m: (-m.score, m.asset_id, m.start))
    return moments


def _moment(ai: AssetIndex, seg: int, text: str, score: float, modality: str) -> Moment:
    thumb = ai.thumbnails[seg]
    return Moment(
        asset_id=ai.asset_id,
        start=float(ai.starts[seg]),
        end=float(ai.ends[seg]),
        text=text,
        score=round(score, 4),
        modality=modality,
        thumbnail_path=f"/media/{ai.asset_id}/thumbs/{thumb}" if thumb else None,
        segment=seg,
    )


def load_indexes(engine: Engine, asset_ids: Iterable[str]) -> list[AssetIndex]:
    out = []
    for asset_id in asset_ids:
        ai = engine.asset_index(asset_id)
        if ai is not None:
            out.append(ai)
    return out


def retrieve(
    engine: Engine,
    asset_ids: Sequence[str],
    query: str,
    limit: int = 10,
    *,
    sources: Sequence[str] = ("subtitle", "speech", "ocr"),
) -> list[Moment]:
    """Best moments for ``query`` among analysed ``asset_ids`` (assets not yet analysed are skipped)."""
    return rank_text(engine, load_indexes(engine, asset_ids), query, sources)[: max(0, limit)]
