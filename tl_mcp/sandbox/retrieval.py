"""Ranking of analysed segments: BM25 over the text found in each segment, semantic similarity when the text
embedder is semantic, and key-frame similarity for image queries.

For other sandbox modules (knowledge stores / Jockey) the entry point is :func:`retrieve`::

    moments: list[Moment] = retrieve(engine, asset_ids, "fresh apples", limit=5)

``engine`` is ``request.app.state.engine``. Moments come best first with real scores in [0, 1], one per
stretch of the same text (:func:`held_once`).

Queries run over a cached corpus per set of assets (``engine.search_corpora``): per-asset BM25 postings and
one stacked text-vector matrix, so a query costs its embedding plus a few numpy passes. A corpus is valid
only for the exact AssetIndex objects it was built from; analysing or deleting an asset makes the engine
forget that asset, so the next query rebuilds from the per-asset parts that are still current.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.store.texts import TRANSCRIPT_SOURCES

_WORD = re.compile(r"[\w$%+]+", re.UNICODE)
_K1, _B = 1.2, 0.75
#: multilingual-e5 cosines sit in ~0.8-0.92 for any pair; map that band onto 0-1.
_E5_FLOOR, _E5_SPAN = 0.80, 0.12
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


#: How a text query meets the texts: both halves averaged, or one of them alone.
MatchMode = Literal["fused", "lexical", "semantic"]


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
class _AssetPart:
    """One asset's segments as BM25 documents over the texts of one set of sources. Built once per
    (AssetIndex, sources) and reused by every query and every corpus that includes the asset."""

    #: (segment, text) pairs where the text is of a wanted source and overlaps the segment, sorted by
    #: segment then text: a segment's document is the concatenation of its pairs' texts.
    pair_seg: npt.NDArray[np.int64]
    pair_text: npt.NDArray[np.int64]
    #: Pairs of segment ``s`` are ``pair_*[bounds[s] : bounds[s + 1]]``.
    bounds: npt.NDArray[np.int64]
    #: Words per segment document.
    seg_len: npt.NDArray[np.float64]
    #: term -> (segments containing it, ascending; its count in each).
    postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]
    #: Tokens of each text (all of the asset's texts, by index), for picking a moment's quote.
    text_tokens: list[list[str]]


def _asset_part(ai: AssetIndex, sources: tuple[str, ...]) -> _AssetPart:
    part = ai.search_parts.get(sources)
    if isinstance(part, _AssetPart):
        return part
    n_seg = len(ai.starts)
    text_tokens = [tokens(t.text) for t in ai.texts]
    wanted = np.array([t.source in sources for t in ai.texts], dtype=bool)
    t_start = np.array([t.start for t in ai.texts], dtype=np.float64)
    t_end = np.array([t.end for t in ai.texts], dtype=np.float64)
    starts, ends = ai.starts[:, None], ai.ends[:, None]
    # A zero-length segment (a still image) holds every text.
    hit = ((ends <= starts) | ((t_start[None, :] < ends) & (t_end[None, :] > starts))) & wanted[None, :]
    # Row-major order: pairs come sorted by segment, then text.
    pair_seg, pair_text = (idx.astype(np.int64) for idx in np.nonzero(hit))
    bounds = np.searchsorted(pair_seg, np.arange(n_seg + 1)).astype(np.int64)
    seg_len = np.zeros(n_seg, dtype=np.float64)
    counts: dict[str, tuple[list[int], list[int]]] = {}
    for seg in range(n_seg):
        tf: Counter[str] = Counter()
        for i in pair_text[bounds[seg] : bounds[seg + 1]].tolist():
            tf.update(text_tokens[i])
        seg_len[seg] = sum(tf.values())
        for term, count in tf.items():
            segs, tfs = counts.setdefault(term, ([], []))
            segs.append(seg)
            tfs.append(count)
    postings = {
        term: (np.array(segs, dtype=np.int64), np.array(tfs, dtype=np.float64))
        for term, (segs, tfs) in counts.items()
    }
    part = _AssetPart(pair_seg, pair_text, bounds, seg_len, postings, text_tokens)
    ai.search_parts[sources] = part
    return part


class _Corpus:
    """Segments of a list of assets stacked into flat arrays: document lengths, the (segment, text) pairs
    and one float32 matrix of all text vectors, so a query is a few numpy operations whatever the size.
    Query-term postings are merged from the per-asset parts on first use and kept."""

    def __init__(self, indexes: Sequence[AssetIndex], sources: tuple[str, ...], dim: int | None) -> None:
        self.indexes = list(indexes)
        self.parts = [_asset_part(ai, sources) for ai in self.indexes]
        sizes = [len(ai.starts) for ai in self.indexes]
        self.seg_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n = int(self.seg_offset[-1])
        self.seg_len = np.concatenate([p.seg_len for p in self.parts]) if self.parts else np.zeros(0)
        self.starts = np.concatenate([ai.starts for ai in self.indexes]) if self.indexes else np.zeros(0)
        self.seg_asset = np.repeat(np.arange(len(self.indexes), dtype=np.int64), sizes)
        # Rank of each asset's id, so numpy can order moments by (score, asset_id, start).
        order = sorted(range(len(self.indexes)), key=lambda i: self.indexes[i].asset_id)
        id_rank = np.empty(len(self.indexes), dtype=np.int64)
        id_rank[order] = np.arange(len(self.indexes))
        self.seg_id_rank = id_rank[self.seg_asset]
        self.seg_local = np.arange(self.n, dtype=np.int64) - self.seg_offset[self.seg_asset]
        self._postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        self._build_semantic(dim)

    def _build_semantic(self, dim: int | None) -> None:
        """One float32 row per (segment, text) pair whose asset has text vectors of the query embedder's
        size, in pair order, so a query's similarities need no gather; segments are contiguous runs of
        rows (``run_starts`` / ``run_segs``)."""
        blocks: list[FloatArray] = []
        segs: list[npt.NDArray[np.int64]] = []
        texts: list[npt.NDArray[np.int64]] = []
        for a, (ai, part) in enumerate(zip(self.indexes, self.parts, strict=True)):
            vecs = ai.text_vecs
            if dim is None or vecs is None or vecs.ndim != 2 or vecs.shape[1] != dim:
                continue
            if part.pair_seg.size:
                blocks.append(vecs[part.pair_text])
                segs.append(part.pair_seg + self.seg_offset[a])
                texts.append(part.pair_text)
        self.matrix: FloatArray | None = (
            np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32) if blocks else None
        )
        self.pair_seg = np.concatenate(segs) if segs else np.zeros(0, dtype=np.int64)
        #: The asset-local text index of each row.
        self.pair_text = np.concatenate(texts) if texts else np.zeros(0, dtype=np.int64)
        self.run_starts = np.flatnonzero(np.diff(self.pair_seg, prepend=-1))
        self.run_segs = self.pair_seg[self.run_starts]
        self.run_len = np.diff(np.append(self.run_starts, self.pair_seg.size))

    def postings(self, term: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        hit = self._postings.get(term)
        if hit is None:
            segs: list[npt.NDArray[np.int64]] = []
            tfs: list[npt.NDArray[np.float64]] = []
            for a, part in enumerate(self.parts):
                found = part.postings.get(term)
                if found is not None:
                    segs.append(found[0] + self.seg_offset[a])
                    tfs.append(found[1])
            hit = (
                (np.concatenate(segs), np.concatenate(tfs))
                if segs
                else (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
            )
            self._postings[term] = hit
        return hit


_MAX_CORPORA = 8


def _corpus(engine: Engine, indexes: Sequence[AssetIndex], sources: tuple[str, ...]) -> _Corpus:
    dim = engine.analyzers.text.dim if engine.analyzers.text.semantic else None
    key = (tuple(ai.asset_id for ai in indexes), sources, dim)
    cache = engine.search_corpora
    with engine.search_lock:
        hit = cache.get(key)
        # A re-analysed asset is a new AssetIndex object: identity says whether the corpus is current.
        if isinstance(hit, _Corpus) and all(a is b for a, b in zip(hit.indexes, indexes, strict=True)):
            cache.move_to_end(key)
            return hit
    corpus = _Corpus(indexes, sources, dim)
    with engine.search_lock:
        cache[key] = corpus
        cache.move_to_end(key)
        while len(cache) > _MAX_CORPORA:
            cache.popitem(last=False)
    return corpus


def rank_text(
    engine: Engine,
    indexes: Sequence[AssetIndex],
    query: str,
    sources: Sequence[str],
    operator: str = "or",
    *,
    limit: int | None = None,
    mode: MatchMode = "fused",
) -> list[Moment]:
    """Score every segment of ``indexes`` against ``query`` using the texts of ``sources``: BM25 over each
    segment's words, averaged with the best semantic similarity of its texts when the embedder is semantic.
    ``mode`` keeps one half only (the search API's ``transcription_options``): ``lexical`` = BM25 alone,
    ``semantic`` = embedding similarity alone (nothing when the embedder is not semantic; ``operator`` is
    about words, so it does not apply). Moments come best first (ties by asset id, then time); ``limit``
    keeps only the best ones."""
    q_terms = list(dict.fromkeys(tokens(query)))
    if not indexes or not q_terms:
        return []
    embedder = engine.analyzers.text
    semantic_on = embedder.semantic and mode != "lexical"
    if mode == "semantic" and not semantic_on:
        return []
    corpus = _corpus(engine, indexes, tuple(dict.fromkeys(sources)))
    n = corpus.n
    if n == 0:
        return []
    avg_len = float(corpus.seg_len.sum()) / n or 1.0
    norm = _K1 * (1 - _B + _B * corpus.seg_len / avg_len)
    bm25 = np.zeros(n, dtype=np.float64)
    matched = np.zeros(n, dtype=np.int64)
    idf: dict[str, float] = {}
    for q in q_terms:
        segs, tf = corpus.postings(q)
        df = int(segs.size)
        idf[q] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        if df:
            bm25[segs] += idf[q] * tf * (_K1 + 1) / (tf + norm[segs])
            matched[segs] += 1
    best_possible = sum(idf[q] * (_K1 + 1) / (1 + _K1) for q in q_terms) or 1.0
    lexical = np.minimum(1.0, bm25 / best_possible)
    if operator == "and":
        lexical[matched < len(q_terms)] = 0.0

    best_pair = np.full(n, -1, dtype=np.int64)
    if semantic_on:
        semantic = np.zeros(n, dtype=np.float64)
        if corpus.matrix is not None:
            q_vec = embedder.embed([query], "query")[0]
            # einsum, not BLAS: OpenBLAS threads keep spinning after a call and starve the next query's
            # embedding on a small machine, while one matrix-vector pass is memory-bound anyway.
            sims = np.einsum("ij,j->i", corpus.matrix, q_vec.astype(np.float32, copy=False))
            seg_max = np.maximum.reduceat(sims, corpus.run_starts)
            # First row reaching its segment's maximum, as argmax would pick.
            at_max = np.where(sims == np.repeat(seg_max, corpus.run_len), np.arange(sims.size), sims.size)
            best_pair[corpus.run_segs] = np.minimum.reduceat(at_max, corpus.run_starts)
            semantic[corpus.run_segs] = np.clip((seg_max.astype(np.float64) - _E5_FLOOR) / _E5_SPAN, 0.0, 1.0)
        if mode == "semantic":
            score = semantic
        else:
            score = 0.5 * lexical + 0.5 * semantic
            if operator == "and":
                score[lexical == 0.0] = 0.0
    else:
        score = lexical

    found = np.flatnonzero(score > 0.05)
    if not found.size or (limit is not None and limit <= 0):
        return []
    rounded = np.round(score[found], 4)
    order = np.lexsort((corpus.starts[found], corpus.seg_id_rank[found], -rounded))
    found, rounded = found[order], rounded[order]
    if limit is not None and limit < found.size:
        # numpy and Python may round a boundary score differently: keep the near-ties too and let the
        # exact sort below decide.
        keep = int(np.count_nonzero(rounded >= rounded[limit - 1] - 2e-4))
        found = found[: max(limit, keep)]
    q_set = set(q_terms)
    moments: list[Moment] = []
    for g in found.tolist():
        a = int(corpus.seg_asset[g])
        ai = corpus.indexes[a]
        seg = int(corpus.seg_local[g])
        pair = int(best_pair[g])
        if pair >= 0:
            best_i = int(corpus.pair_text[pair])
        else:
            part = corpus.parts[a]
            ids = part.pair_text[part.bounds[seg] : part.bounds[seg + 1]].tolist()
            best_i = max(ids, key=lambda i: sum(1 for w in part.text_tokens[i] if w in q_set))
        best = ai.texts[best_i]
        # A spoken sentence is timed by its own words: the moment is that sentence, not its whole scene.
        span = (best.start, best.end) if best.source == "speech" else None
        moments.append(_moment(ai, seg, best.text, float(score[g]), best.source, span))
    moments.sort(key=lambda m: (-m.score, m.asset_id, m.start))
    return moments if limit is None else moments[:limit]


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


def _moment(
    ai: AssetIndex, seg: int, text: str, score: float, modality: str, span: tuple[float, float] | None = None
) -> Moment:
    """The moment of segment ``seg``, narrowed to ``span`` (clipped to the segment) when one is given."""
    thumb = ai.thumbnails[seg]
    start, end = float(ai.starts[seg]), float(ai.ends[seg])
    if span is not None:
        start = min(max(start, span[0]), end)
        end = max(start, min(end, span[1]))
    return Moment(
        asset_id=ai.asset_id,
        start=start,
        end=end,
        text=text,
        score=round(score, 4),
        modality=modality,
        thumbnail_path=f"/media/{ai.asset_id}/thumbs/{thumb}" if thumb else None,
        segment=seg,
    )


def held_once(moments: Sequence[Moment]) -> list[Moment]:
    """Moments of one asset with the same text end to end (a picture held past one of the sandbox's
    segments, a sentence said across a scene cut) as one moment from the start of the first to the end of
    the last, where the best-ranked of them was and with its score: otherwise a search returns the same
    words twice and an answer quotes them twice. Moments without text (image likeness) stay one per
    segment: two neighbouring scenes that both look like the query are two scenes."""
    runs: list[list[int]] = []
    latest: dict[tuple[str, str, str], list[int]] = {}
    for i in sorted(range(len(moments)), key=lambda i: moments[i].start):
        m = moments[i]
        key = (m.asset_id, m.modality, m.text)
        run = latest.get(key)
        if run is not None and abs(moments[run[-1]].end - m.start) < 1e-3:
            run.append(i)
            continue
        runs.append([i])
        if m.text:
            latest[key] = runs[-1]
    joined: dict[int, Moment] = {}
    for run in runs:
        if len(run) == 1:
            joined[run[0]] = moments[run[0]]
            continue
        first, last, best = moments[run[0]], moments[run[-1]], min(run)
        joined[best] = dataclasses.replace(
            moments[best], start=first.start, end=last.end, score=max(moments[i].score for i in run)
        )
    return [joined[i] for i in sorted(joined)]


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
    """Best moments for ``query`` among analysed ``asset_ids`` (assets not yet analysed are skipped), at
    most ``limit`` of them: fewer when some of the best are parts of one stretch of the same text."""
    return held_once(rank_text(engine, load_indexes(engine, asset_ids), query, sources, limit=max(0, limit)))
