"""The ``embed`` job: clip (and whole-video) embeddings of a video for an embedding task.

What each option is offline: ``visual`` embeds the frame at each clip's middle, ``audio`` the spectral
fingerprint of the clip's sound, ``transcription`` the words spoken or subtitled during the clip (from the
asset's analysis, or the file's subtitle tracks), and ``fused`` joins a clip's vectors of the chosen
options into one. The offline embedders do not share a space, so a fused vector is their concatenation and
is longer than the separate ones; the task's notes say so, and name clips that had nothing to embed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.media import Frame, MediaError, TimedText, decode, open_media, read_subtitles
from tl_mcp.sandbox.perception.audio import audio_features
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.store import assets, embed_tasks, segments, texts
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.ids import new_id

#: The options a video task computes, in the order results list them.
OPTIONS = ("visual", "audio", "transcription")


def floats(vec: FloatArray) -> list[float]:
    return [round(float(x), 6) for x in vec]


def _unit(vec: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(vec))
    return (vec / norm).astype(np.float32) if norm > 0 else vec.astype(np.float32)


def clip_spans(
    duration: float, clip_length: float, start: float, end: float | None
) -> list[tuple[float, float]]:
    """The clips of ``start``–``end`` (or to the end), ``clip_length`` long; a start or end past the end of
    the video is a :class:`MediaError` naming both, as TwelveLabs refuses it."""
    if start >= duration:
        raise MediaError(
            "parameter_invalid",
            f"The start offset ({start:g} s) is at or past the end of the {duration:g} s video; "
            "use an offset below the duration.",
        )
    if end is not None and end > duration + 0.5:
        raise MediaError(
            "parameter_invalid",
            f"The end offset ({end:g} s) is past the end of the {duration:g} s video; use at most "
            f"{duration:g}, or leave it out to embed to the end.",
        )
    stop = min(duration, end) if end is not None else duration
    clips: list[tuple[float, float]] = []
    t = start
    while t < stop - 1e-6:
        clips.append((t, min(stop, t + clip_length)))
        t += clip_length
    if len(clips) > 1 and clips[-1][1] - clips[-1][0] < 2.0:
        clips.pop()  # TwelveLabs drops a trailing clip shorter than 2 s.
    return clips


def _visual(engine: Engine, path: Path, clips: Sequence[tuple[float, float]]) -> list[FloatArray | None]:
    """The image vector of the frame at each clip's middle, in one decoding pass."""
    targets = [(a + b) / 2 for a, b in clips]
    vectors: list[FloatArray | None] = [None] * len(clips)
    with open_media(path, engine.limits) as container:
        stream = container.streams.video[0]
        i = 0
        for frame in decode(container, stream, engine.limits):
            if i >= len(targets):
                break
            if frame.time is not None and frame.time + 1e-6 >= targets[i]:
                rgb: Frame = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                while i < len(targets) and frame.time + 1e-6 >= targets[i]:
                    vectors[i] = engine.analyzers.image.embed_image(rgb)
                    i += 1
    return vectors


def _audio(engine: Engine, path: Path, clips: Sequence[tuple[float, float]]) -> list[FloatArray | None]:
    out: list[FloatArray | None] = []
    for a, b in clips:
        try:
            out.append(audio_features(path, engine.limits, a, b))
        except MediaError:
            out.append(None)  # no audio stream, or too little sound in this clip
    return out


def _transcription(
    engine: Engine, cues: Sequence[TimedText], clips: Sequence[tuple[float, float]]
) -> list[FloatArray | None]:
    words = [" ".join(c.text for c in cues if c.start < b and c.end > a).strip() for a, b in clips]
    said = [w for w in words if w]
    vecs = iter(engine.analyzers.text.embed(said, "passage")) if said else iter(())
    return [next(vecs) if w else None for w in words]


def embed_video(
    engine: Engine,
    path: Path,
    clip_length: float,
    start: float,
    end: float | None,
    scopes: Sequence[str],
    options: Sequence[str] = ("visual",),
    *,
    fused: bool = False,
    cues: Sequence[TimedText] | None = None,
) -> dict[str, Any]:
    """Per-clip vectors of each of ``options`` (and ``fused``), for the ``clip`` scope, and their mean over
    the span for the ``video`` scope; ``cues`` are the timed texts for ``transcription`` (the file's
    subtitles when not given)."""
    info = engine.probe(path)
    if info.kind != "video":
        raise MediaError("video_file_broken", "The file has no video stream.")
    duration = info.duration or 0.0
    clips = clip_spans(duration, clip_length, start, end)
    per_option: dict[str, list[FloatArray | None]] = {}
    notes: list[str] = []
    for option in (o for o in OPTIONS if o in options):
        if option == "visual":
            per_option[option] = _visual(engine, path, clips)
        elif option == "audio":
            per_option[option] = _audio(engine, path, clips) if info.audio_streams else [None] * len(clips)
        else:
            per_option[option] = _transcription(
                engine, read_subtitles(path, engine.limits) if cues is None else cues, clips
            )
        missing = sum(v is None for v in per_option[option])
        if missing:
            what = {"audio": "sound", "transcription": "words", "visual": "frame"}[option]
            notes.append(f"{missing} of {len(clips)} clips had no {what} to embed, so no {option} vector.")
    if fused:
        # Only a clip with every chosen option has a fused vector: all fused vectors have one length.
        per_option["fused"] = [
            None
            if any(v is None for v in parts)
            else _unit(np.concatenate([_unit(v) for v in parts if v is not None]))
            for parts in zip(*per_option.values(), strict=True)
        ]
        joined = ", ".join(o for o in OPTIONS if o in per_option)
        notes.append(
            f"Fused vectors concatenate the offline embedders' vectors of {joined}: they do not share one "
            "space as Marengo's do, so a fused vector is longer than the separate ones."
        )
    stop = clips[-1][1] if clips else start
    segments: list[dict[str, Any]] = []
    for option, vectors in per_option.items():
        kept = [(c, v) for c, v in zip(clips, vectors, strict=True) if v is not None]
        if "clip" in scopes:
            segments.extend(_segment(v, a, b, option, "clip") for (a, b), v in kept)
        if "video" in scopes and kept:
            mean = _unit(np.mean(np.stack([v for _, v in kept]), axis=0))
            segments.append(_segment(mean, start, stop, option, "video"))
    return {"segments": segments, "duration": duration, "notes": notes}


def indexed_embeddings(engine: Engine, asset_id: str, options: Sequence[str]) -> list[dict[str, Any]]:
    """The embeddings of an indexed asset's segments for ``GET …/indexed-assets/{id}?embedding_option=…``:
    ``visual`` (or ``visual-text``) is the key-frame vector its indexing stored, ``audio`` the fingerprint of
    each segment's sound and ``transcription`` the words of each segment (segments without any have none).
    Blocking: audio decodes the file."""
    scenes = segments.of_asset(engine.db, asset_id)
    spans = [(s.start, s.end) for s in scenes]
    asset = assets.get(engine.db, asset_id)
    path = Path(asset["path"]) if asset is not None and asset["path"] else None
    out: list[dict[str, Any]] = []
    for option in dict.fromkeys(options):
        vectors: list[FloatArray | None]
        if option in ("visual", "visual-text"):
            vectors = [
                None if s.image_vec is None else np.frombuffer(s.image_vec, np.float32) for s in scenes
            ]
        elif option == "audio":
            vectors = _audio(engine, path, spans) if path is not None else [None] * len(spans)
        else:
            vectors = _transcription(engine, texts.transcript(engine.db, asset_id), spans)
        out.extend(
            _segment(v, a, b, option, "clip")
            for (a, b), v in zip(spans, vectors, strict=True)
            if v is not None
        )
    return out


def _segment(vec: FloatArray, start: float, end: float, option: str, scope: str) -> dict[str, Any]:
    return {
        "float": floats(vec),
        "start_offset_sec": round(start, 3),
        "end_offset_sec": round(end, 3),
        "embedding_option": option,
        "embedding_scope": scope,
    }


def run(engine: Engine, task_id: str, payload: dict[str, Any]) -> None:
    row = embed_tasks.get(engine.db, task_id)
    if row is None or row["status"] != "processing":
        return
    req = loads(row["request"])
    path = Path(req["path"]) if req.get("path") else None
    cues: list[TimedText] | None = None
    if path is None and req.get("asset_id"):
        asset = assets.get(engine.db, req["asset_id"])
        path = Path(asset["path"]) if asset and asset["path"] else None
        if asset is not None and asset["analyzed"]:
            # The asset's analysis has the speech recognised as well as the subtitles.
            cues = texts.transcript(engine.db, asset["id"])
    if path is None and req.get("video_url"):
        from tl_mcp.sandbox.work.asset import fetch_url

        # Downloads land in the task's own folder; no asset row exists for it, so none is updated.
        path = fetch_url(engine, f"embed-{task_id}", req["video_url"], "video")
    if path is None:
        raise MediaError("video_file_broken", "The video for this task is missing.")
    result = embed_video(
        engine,
        path,
        req["clip_length"],
        req["start"],
        req["end"],
        req["scopes"],
        # Tasks stored before options existed embedded the visual option only.
        req.get("options", ["visual"]),
        fused=bool(req.get("fused")),
        cues=cues,
    )
    embed_tasks.set_ready(engine.db, task_id, result)


def failed(engine: Engine, ref: str, message: str) -> None:
    embed_tasks.set_failed(engine.db, ref, message)


def start_task(
    engine: Engine, version: str, model: str, request: dict[str, Any], *, task_id: str | None = None
) -> str:
    """A new embedding task of API ``version`` and its queued ``embed`` job; the task's id (``task_id`` when
    one was chosen earlier: a v1 upload is saved in its task's folder first)."""
    task_id = task_id or new_id()
    with engine.db.tx() as conn:
        embed_tasks.insert(conn, task_id, version, model, request)
        engine.jobs.add(conn, "embed", task_id)
    engine.jobs.wake()
    return task_id
