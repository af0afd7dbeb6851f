"""The ``asset`` job: fetch an asset's media (for ``method=url``), probe it and analyse it — decode once, run
the perception analyzers, store segments, thumbnails, timed texts and vectors.

Analysis results are written in one transaction at the end, so readers never see half an asset.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.media import (
    Frame,
    MediaError,
    MediaLimits,
    Probe,
    TimedText,
    audio_segments,
    jpeg_thumbnail,
    load_image_rgb,
    read_subtitles,
    scan_video,
)
from tl_mcp.sandbox.perception import Analyzers
from tl_mcp.sandbox.store import assets, indexed_assets, segments
from tl_mcp.sandbox.store import texts as store_texts
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.segments import Segment
from tl_mcp.sandbox.store.texts import StoredText

log = logging.getLogger(__name__)


def run(engine: Engine, asset_id: str, payload: dict[str, Any]) -> None:
    row = assets.get(engine.db, asset_id)
    if row is None or row["status"] != "processing":
        return
    path = Path(row["path"]) if row["path"] else None
    if row["method"] == "url" and (path is None or not path.exists()):
        path = fetch_url(engine, asset_id, row["source_url"], row["filename"])
    if path is None or not path.exists():
        raise MediaError("video_file_broken", "The uploaded file is missing from the sandbox's media folder.")
    info = Probe.from_dict(loads(row["probe"])) if row["probe"] else engine.probe(path)
    assets.set_media(engine.db, asset_id, path, info)
    analyze_asset(engine, asset_id, path, info)
    assets.set_ready(engine.db, asset_id)


def fetch_url(engine: Engine, asset_id: str, url: str, filename: str) -> Path:
    import httpx2

    from tl_mcp.sandbox import urls

    cap = engine.config.max_url_bytes
    dest = engine.asset_dir(asset_id) / f"source{Path(filename).suffix[:10]}"
    partial = dest.with_suffix(dest.suffix + ".part")
    written = 0
    try:
        with (
            urls.client(
                allow_private=engine.config.allow_private_urls,
                timeout=engine.config.url_timeout_s,
                resolver=engine.config.resolver,
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code >= 400:
                raise MediaError("video_file_broken", f"Fetching the URL returned HTTP {resp.status_code}.")
            with partial.open("wb") as out:
                for chunk in resp.iter_bytes():
                    written += len(chunk)
                    if written > cap:
                        raise MediaError(
                            "video_filesize_too_large", f"The file at the URL is larger than {cap} bytes."
                        )
                    out.write(chunk)
    except urls.UrlRefused as exc:
        # Re-checked at fetch time: a redirect (or a changed DNS answer) may lead somewhere refused.
        partial.unlink(missing_ok=True)
        raise MediaError("parameter_invalid", exc.message) from exc
    except httpx2.TooManyRedirects as exc:
        partial.unlink(missing_ok=True)
        raise MediaError(
            "video_file_broken",
            f"The URL redirected more than {urls.MAX_REDIRECTS} times; give the final URL instead.",
        ) from exc
    except httpx2.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise MediaError(
            "video_file_broken", f"The URL could not be fetched ({type(exc).__name__})."
        ) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(dest)
    info = engine.probe(dest)
    assets.set_downloaded(engine.db, asset_id, dest, info)
    return dest


def failed(engine: Engine, ref: str, message: str) -> None:
    assets.set_failed(engine.db, ref, message)
    # Indexing waiting on this asset cannot succeed either.
    indexed_assets.fail_unfinished_of_asset(engine.db, ref, message)


def analyze_asset(engine: Engine, asset_id: str, path: Path, info: Probe) -> None:
    """Decode the media once and store segments, thumbnails, timed texts and vectors for ``asset_id``."""
    # A probe stored by an older version (or before a limit was lowered) must not size anything here.
    engine.limits.check(info)
    analyzers = engine.analyzers
    texts: list[TimedText] = []
    thumbs_dir = engine.asset_dir(asset_id) / "thumbs"
    thumbs_dir.mkdir(exist_ok=True)
    rows: list[tuple[float, float, str | None, bytes | None]] = []
    # Speech-to-text reads the audio on its own thread while this one decodes frames and runs OCR:
    # CTranslate2 releases the GIL, so the two overlap on separate cores.
    has_audio = info.kind in ("video", "audio") and info.audio_streams
    speech = _SpeechJob(analyzers, path, engine.limits) if has_audio else None

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
            engine.limits,
            max_segment_s=engine.config.max_segment_s,
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
        texts = _run_on(texts)
    elif info.kind == "audio":
        rows = [(s.start, s.end, None, None) for s in audio_segments(info.duration or 0.0)]
        texts.extend(read_subtitles(path, engine.limits))
    else:  # image
        picture = load_image_rgb(path, engine.limits, code="video_file_broken")
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
    scenes = [
        Segment(start, end, thumb, vec, seg_texts[i], passages.vec(seg_texts[i]) if seg_texts[i] else None)
        for i, (start, end, thumb, vec) in enumerate(rows)
    ]
    with engine.db.tx() as conn:
        segments.replace(conn, asset_id, scenes)
        store_texts.replace(conn, asset_id, [StoredText(t, v) for t, v in zip(texts, text_vecs, strict=True)])
        assets.set_analyzed(conn, asset_id, analyzers.describe())
    engine.forget(asset_id)


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


def _run_on(texts: list[TimedText]) -> list[TimedText]:
    """One on-screen text per stretch of screen showing it: a picture held longer than a segment (or
    still there after a cut) is read again in the next segment, and would otherwise be quoted once per
    segment ("RECALL NOTICE; Kettle KX-40 RECALL NOTICE; Kettle KX-40", two chapters of one picture)."""
    out: list[TimedText] = []
    showing: dict[str, int] = {}
    for t in sorted(texts, key=lambda x: x.start):
        if t.source != "ocr":
            out.append(t)
            continue
        i = showing.get(t.text)
        if i is not None and abs(out[i].end - t.start) < 1e-3:
            held = out[i]
            out[i] = TimedText(held.start, t.end, t.text, "ocr", max(held.confidence, t.confidence))
        else:
            showing[t.text] = len(out)
            out.append(t)
    return out


def _join(parts: Any) -> str:
    seen: list[str] = []
    for p in parts:
        if p not in seen:
            seen.append(p)
    return " ".join(seen)


def insert_asset(
    engine: Engine,
    asset_id: str,
    *,
    method: str,
    filename: str,
    path: Path | None,
    info: Probe | None,
    source_url: str | None = None,
    user_metadata: dict[str, Any] | None = None,
    enable_hls: bool = False,
    enable_thumbnail: bool = True,
) -> None:
    """Register an asset and queue its ``asset`` job in one transaction."""
    with engine.db.tx() as conn:
        assets.insert(
            conn,
            asset_id,
            method=method,
            filename=filename,
            path=path,
            info=info,
            source_url=source_url,
            user_metadata=user_metadata,
            enable_hls=enable_hls,
            enable_thumbnail=enable_thumbnail,
        )
        engine.jobs.add(conn, "asset", asset_id)
    engine.jobs.wake()
