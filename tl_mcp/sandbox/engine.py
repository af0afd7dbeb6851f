"""The sandbox engine: storage, media folder, analyzers and the background worker that ingests media.

Work is durable: every background step is a row in ``jobs``. The worker thread takes queued jobs in order;
at startup, jobs left ``running`` by a crash are re-queued (and given up after ``MAX_ATTEMPTS``, marking
their asset / indexed asset / task failed), so a ``kill -9`` at any moment leaves a consistent state.
Analysis results are written in one transaction at the end of a job, so readers never see half an asset.

Other modules reach the engine from a request as ``request.app.state.engine``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tl_mcp.sandbox.analyzers import Analyzers, load_analyzers
from tl_mcp.sandbox.analyzers.base import FloatArray, Frame, TimedText
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.db import Database, dumps, loads, new_id, now_iso
from tl_mcp.sandbox.media import (
    MediaError,
    MediaLimits,
    Probe,
    audio_segments,
    jpeg_thumbnail,
    load_image_rgb,
    read_subtitles,
    scan_video,
)
from tl_mcp.sandbox.media import probe as probe_file

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3

JobHandler = Callable[["Engine", str, dict[str, Any]], None]
#: Job kinds other modules may add (name -> handler(engine, ref, payload)); a handler raising marks it failed.
JOB_HANDLERS: dict[str, JobHandler] = {}
#: Called with (engine, kind, ref, message) when a job is given up, so its owner can mark things failed.
FAILURE_HOOKS: list[Callable[[Engine, str, str, str], None]] = []


@dataclass(slots=True)
class AssetIndex:
    """An analysed asset, loaded for search: segments with vectors and the timed texts."""

    asset_id: str
    starts: np.ndarray[Any, np.dtype[np.float64]]
    ends: np.ndarray[Any, np.dtype[np.float64]]
    thumbnails: list[str | None]
    image_vecs: FloatArray | None
    texts: list[TimedText] = field(default_factory=list)
    text_vecs: FloatArray | None = None
    #: Search statistics derived from this object (owned by :mod:`.index_search`); a re-analysed asset gets
    #: a new AssetIndex, so these never go stale.
    search_parts: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


class Engine:
    def __init__(self, config: SandboxConfig, analyzers: Analyzers | None = None) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.media_dir = config.data_dir / "media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "tmp").mkdir(exist_ok=True)
        self.db = Database.open(config.data_dir / "sandbox.db")
        self.analyzers = analyzers or load_analyzers(config.analyzers)
        self.limits = MediaLimits(
            max_duration_s=config.max_duration_s,
            max_pixels=config.max_pixels,
            max_frames=config.max_frames,
            max_memory_bytes=config.max_decode_memory_bytes,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cache: OrderedDict[str, AssetIndex] = OrderedDict()
        self._cache_lock = threading.Lock()
        #: Stacked search corpora over sets of assets (owned by :mod:`.index_search`), keyed by asset ids.
        self.search_corpora: OrderedDict[Any, Any] = OrderedDict()
        self.search_lock = threading.Lock()
        self.started_at = time.time()

    # ----- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tl-mcp-sandbox-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("sandbox worker did not stop within %.0fs (a long analysis is running)", timeout)
            self._thread = None
        self.db.close()

    def recover(self) -> None:
        """Re-queue jobs a crash interrupted; give up on those interrupted too often."""
        rows = self.db.all("SELECT id, kind, ref, attempts FROM jobs WHERE status='running'")
        for row in rows:
            if row["attempts"] >= MAX_ATTEMPTS:
                message = f"processing was interrupted {row['attempts']} times (server restarts); giving up"
                self._give_up(row["id"], row["kind"], row["ref"], message)
            else:
                log.info("resuming interrupted %s job for %s", row["kind"], row["ref"])
                self.db.run(
                    "UPDATE jobs SET status='queued', updated_at=? WHERE id=?", (now_iso(), row["id"])
                )
        if rows:
            self._wake.set()

    # ----- jobs --------------------------------------------------------------------------------------------
    def enqueue(self, kind: str, ref: str, payload: dict[str, Any] | None = None) -> str:
        job_id = new_id()
        now = now_iso()
        self.db.run(
            "INSERT INTO jobs(id, kind, ref, status, payload, created_at, updated_at) VALUES(?,?,?,?,?,?,?)",
            (job_id, kind, ref, "queued", dumps(payload or {}), now, now),
        )
        self._wake.set()
        return job_id

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no job is queued or running; code driving the engine directly waits on this."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.db.one("SELECT 1 FROM jobs WHERE status IN ('queued','running') LIMIT 1"):
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            row = self.db.one("SELECT * FROM jobs WHERE status='queued' ORDER BY created_at, rowid LIMIT 1")
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            with self.db.tx() as conn:
                claimed = conn.execute(
                    "UPDATE jobs SET status='running', attempts=attempts+1, updated_at=? "
                    "WHERE id=? AND status='queued'",
                    (now_iso(), row["id"]),
                ).rowcount
            if not claimed:
                continue
            self._execute(row["id"], row["kind"], row["ref"], loads(row["payload"]) or {})

    def _execute(self, job_id: str, kind: str, ref: str, payload: dict[str, Any]) -> None:
        handler = JOB_HANDLERS.get(kind)
        try:
            if handler is None:
                raise RuntimeError(f"unknown job kind {kind!r}")
            handler(self, ref, payload)
        except Exception as exc:
            message = exc.message if isinstance(exc, MediaError) else str(exc) or type(exc).__name__
            if not isinstance(exc, MediaError):
                log.exception("%s job for %s failed", kind, ref)
            self._give_up(job_id, kind, ref, message)
            return
        self.db.run("UPDATE jobs SET status='done', updated_at=? WHERE id=?", (now_iso(), job_id))

    def _give_up(self, job_id: str, kind: str, ref: str, message: str) -> None:
        self.db.run(
            "UPDATE jobs SET status='failed', error=?, updated_at=? WHERE id=?", (message, now_iso(), job_id)
        )
        for hook in FAILURE_HOOKS:
            try:
                hook(self, kind, ref, message)
            except Exception:
                log.exception("failure hook for %s %s raised", kind, ref)

    # ----- files ------------------------------------------------------------------------------------------
    def asset_dir(self, asset_id: str) -> Path:
        path = self.media_dir / asset_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def tmp_path(self, suffix: str = "") -> Path:
        return self.data_dir / "tmp" / f"{new_id()}{suffix}"

    def remove_asset_files(self, asset_id: str) -> None:
        shutil.rmtree(self.media_dir / asset_id, ignore_errors=True)
        self.forget(asset_id)

    # ----- analysis ----------------------------------------------------------------------------------------
    def analyze_asset(self, asset_id: str, path: Path, info: Probe) -> None:
        """Decode the media once and store segments, thumbnails, timed texts and vectors for ``asset_id``."""
        # A probe stored by an older version (or before a limit was lowered) must not size anything here.
        self.limits.check(info)
        analyzers = self.analyzers
        texts: list[TimedText] = []
        thumbs_dir = self.asset_dir(asset_id) / "thumbs"
        thumbs_dir.mkdir(exist_ok=True)
        rows: list[tuple[float, float, str | None, bytes | None]] = []
        # Speech-to-text reads the audio on its own thread while this one decodes frames and runs OCR:
        # CTranslate2 releases the GIL, so the two overlap on separate cores.
        has_audio = info.kind in ("video", "audio") and info.audio_streams
        speech = _SpeechJob(analyzers, path, self.limits) if has_audio else None

        if info.kind == "video":
            ocr_texts: list[TimedText] = []
            key_vecs: dict[float, bytes] = {}

            def on_key_frame(at: float, frame: Frame) -> None:
                # Use each key frame while it is decoded and let it go: nothing piles up on long videos.
                key_vecs[round(at, 3)] = analyzers.image.embed_image(frame).astype(np.float32).tobytes()
                if analyzers.ocr is not None:
                    ocr_texts.extend(analyzers.ocr.read(frame, at))

            # If this raises, the speech thread finishes in the background and its result is dropped.
            scan = scan_video(
                path,
                info.duration or 0.0,
                self.limits,
                max_segment_s=self.config.max_segment_s,
                on_key_frame=on_key_frame,
                keep_key_frames=False,
            )
            texts.extend(scan.subtitles)
            for i, seg in enumerate(scan.segments):
                thumb = None
                if seg.thumbnail_jpeg is not None:
                    thumb = f"{i}.jpg"
                    (thumbs_dir / thumb).write_bytes(seg.thumbnail_jpeg)
                rows.append((seg.start, seg.end, thumb, key_vecs.get(seg.key_time)))
            texts.extend(ocr_texts)
            # Stretch each on-screen text over its segment: OCR ran on the key frame only.
            texts = [_stretch(t, rows) if t.source == "ocr" else t for t in texts]
        elif info.kind == "audio":
            rows = [(s.start, s.end, None, None) for s in audio_segments(info.duration or 0.0)]
            texts.extend(read_subtitles(path, self.limits))
        else:  # image
            picture = load_image_rgb(path, self.limits, code="video_file_broken")
            (thumbs_dir / "0.jpg").write_bytes(jpeg_thumbnail(picture))
            rows = [(0.0, 0.0, "0.jpg", analyzers.image.embed_image(picture).astype(np.float32).tobytes())]
            if analyzers.ocr is not None:
                texts.extend(analyzers.ocr.read(picture, 0.0))
        # Embed what is already known while speech-to-text may still be running.
        passages = _PassageVectors(analyzers)
        passages.add([t.text for t in texts])
        if speech is not None:
            wait_s = SPEECH_TIMEOUT_MIN_S + SPEECH_TIMEOUT_PER_S * (info.duration or 0.0)
            texts.extend(speech.result(timeout=wait_s))
        texts.sort(key=lambda t: (t.start, t.source))
        seg_texts = [_join(t.text for t in texts if _overlaps(t, s, e)) for s, e, _, _ in rows]
        passages.add([t.text for t in texts] + [s for s in seg_texts if s])
        text_vecs = [passages.vec(t.text) for t in texts]
        with self.db.tx() as conn:
            conn.execute("DELETE FROM segments WHERE asset_id=?", (asset_id,))
            conn.execute("DELETE FROM texts WHERE asset_id=?", (asset_id,))
            for i, (start, end, thumb, vec) in enumerate(rows):
                tv = passages.vec(seg_texts[i]) if seg_texts[i] else None
                conn.execute(
                    "INSERT INTO segments(asset_id, idx, start, end, thumbnail, image_vec, text, text_vec) "
                    "VALUES(?,?,?,?,?,?,?,?)",
                    (asset_id, i, start, end, thumb, vec, seg_texts[i], tv),
                )
            for i, t in enumerate(texts):
                conn.execute(
                    "INSERT INTO texts(asset_id, idx, start, end, text, source, confidence, vec) "
                    "VALUES(?,?,?,?,?,?,?,?)",
                    (asset_id, i, t.start, t.end, t.text, t.source, t.confidence, text_vecs[i]),
                )
            conn.execute(
                "UPDATE assets SET analyzed=1, analyzers=?, updated_at=? WHERE id=?",
                (dumps(analyzers.describe()), now_iso(), asset_id),
            )
        self.forget(asset_id)

    def probe(self, path: Path) -> Probe:
        return probe_file(path, self.limits)

    # ----- loaded indexes ---------------------------------------------------------------------------------
    def forget(self, asset_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(asset_id, None)
        with self.search_lock:
            # Corpora over this asset are stale now; drop them at once so their matrices are freed.
            for key in [k for k in self.search_corpora if asset_id in k[0]]:
                del self.search_corpora[key]

    def asset_index(self, asset_id: str) -> AssetIndex | None:
        with self._cache_lock:
            hit = self._cache.get(asset_id)
            if hit is not None:
                self._cache.move_to_end(asset_id)
                return hit
        row = self.db.one("SELECT analyzed FROM assets WHERE id=?", (asset_id,))
        if row is None or not row["analyzed"]:
            return None
        segs = self.db.all("SELECT * FROM segments WHERE asset_id=? ORDER BY idx", (asset_id,))
        texts = self.db.all("SELECT * FROM texts WHERE asset_id=? ORDER BY idx", (asset_id,))
        image_vecs = None
        if segs and all(s["image_vec"] is not None for s in segs):
            image_vecs = np.stack([np.frombuffer(s["image_vec"], dtype=np.float32) for s in segs])
        text_vecs = None
        if texts and all(t["vec"] is not None for t in texts):
            text_vecs = np.stack([np.frombuffer(t["vec"], dtype=np.float32) for t in texts])
        index = AssetIndex(
            asset_id=asset_id,
            starts=np.array([s["start"] for s in segs], dtype=np.float64),
            ends=np.array([s["end"] for s in segs], dtype=np.float64),
            thumbnails=[s["thumbnail"] for s in segs],
            image_vecs=image_vecs,
            texts=[TimedText(t["start"], t["end"], t["text"], t["source"], t["confidence"]) for t in texts],
            text_vecs=text_vecs,
        )
        with self._cache_lock:
            self._cache[asset_id] = index
            while len(self._cache) > 256:
                self._cache.popitem(last=False)
        return index


#: Bound on waiting for speech-to-text (it runs at many times real time; this only catches a wedged model).
SPEECH_TIMEOUT_MIN_S = 300.0
SPEECH_TIMEOUT_PER_S = 2.0


class _PassageVectors:
    """Passage vectors by text: each distinct string is embedded once (repeated on-screen lines, a segment
    whose text is a single line), in batches as texts become known."""

    def __init__(self, analyzers: Analyzers) -> None:
        self._embedder = analyzers.text
        self._vecs: dict[str, bytes] = {}

    def add(self, texts: list[str]) -> None:
        new = list(dict.fromkeys(t for t in texts if t not in self._vecs))
        if new:
            vecs = self._embedder.embed(new, "passage")
            self._vecs.update((t, v.astype(np.float32).tobytes()) for t, v in zip(new, vecs, strict=True))

    def vec(self, text: str) -> bytes:
        return self._vecs[text]


class _SpeechJob:
    """``analyzers.speech.transcribe(path)`` on a daemon thread; :meth:`result` re-raises its error."""

    def __init__(self, analyzers: Analyzers, path: Path, limits: MediaLimits) -> None:
        self._speech = analyzers.speech
        self._out: list[TimedText] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if self._speech is not None:
            self._thread = threading.Thread(
                target=self._run, args=(path, limits), name="tl-mcp-speech", daemon=True
            )
            self._thread.start()

    def _run(self, path: Path, limits: MediaLimits) -> None:
        assert self._speech is not None
        try:
            self._out = self._speech.transcribe(path, limits)
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float) -> list[TimedText]:
        if self._thread is None:
            return []
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(
                f"speech-to-text did not finish within {timeout:.0f} s; the analysis was abandoned. "
                "Retry, or turn speech off (TL_MCP_SANDBOX_ANALYZERS without 'speech') if it keeps happening"
            )
        if self._error is not None:
            raise self._error
        return self._out


def _overlaps(t: TimedText, start: float, end: float) -> bool:
    if end <= start:  # images: a single zero-length segment holds everything
        return True
    return t.start < end and t.end > start


def _stretch(t: TimedText, rows: list[tuple[float, float, str | None, bytes | None]]) -> TimedText:
    for start, end, _, _ in rows:
        if start <= t.start < end or (t.start == start):
            return TimedText(start, end, t.text, t.source, t.confidence)
    return t


def _join(parts: Any) -> str:
    seen: list[str] = []
    for p in parts:
        if p not in seen:
            seen.append(p)
    return " ".join(seen)
