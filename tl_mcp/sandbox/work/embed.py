"""The ``embed`` job: clip (and whole-video) embeddings of a video for an embedding task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.media import Frame, MediaError, decode, open_media
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.store import assets
from tl_mcp.sandbox.store.db import dumps, loads, now_iso


def floats(vec: FloatArray) -> list[float]:
    return [round(float(x), 6) for x in vec]


def embed_video(
    engine: Engine, path: Path, clip_length: float, start: float, end: float | None, scopes: list[str]
) -> dict[str, Any]:
    """Clip embeddings (key frame at each clip's middle) and an optional whole-video mean (streaming)."""
    info = engine.probe(path)
    if info.kind != "video":
        raise MediaError("video_file_broken", "The file has no video stream.")
    duration = info.duration or 0.0
    stop = min(duration, end) if end is not None else duration
    clips: list[tuple[float, float]] = []
    t = start
    while t < stop - 1e-6:
        clips.append((t, min(stop, t + clip_length)))
        t += clip_length
    if len(clips) > 1 and clips[-1][1] - clips[-1][0] < 2.0:
        clips.pop()  # TwelveLabs drops a trailing clip shorter than 2 s.
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
    segments: list[dict[str, Any]] = []
    kept = [(c, v) for c, v in zip(clips, vectors, strict=True) if v is not None]
    if "clip" in scopes:
        for (a, b), v in kept:
            segments.append(
                {
                    "float": floats(v),
                    "start_offset_sec": round(a, 3),
                    "end_offset_sec": round(b, 3),
                    "embedding_option": "visual-text",
                    "embedding_scope": "clip",
                }
            )
    if "video" in scopes and kept:
        mean = np.mean(np.stack([v for _, v in kept]), axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        segments.append(
            {
                "float": floats(mean.astype(np.float32)),
                "start_offset_sec": round(start, 3),
                "end_offset_sec": round(stop, 3),
                "embedding_option": "visual-text",
                "embedding_scope": "video",
            }
        )
    return {"segments": segments, "duration": duration}


def run(engine: Engine, task_id: str, payload: dict[str, Any]) -> None:
    row = engine.db.one("SELECT * FROM embed_tasks WHERE id=?", (task_id,))
    if row is None or row["status"] != "processing":
        return
    req = loads(row["request"])
    path = Path(req["path"]) if req.get("path") else None
    if path is None and req.get("asset_id"):
        asset = assets.get(engine.db, req["asset_id"])
        path = Path(asset["path"]) if asset and asset["path"] else None
    if path is None and req.get("video_url"):
        from tl_mcp.sandbox.work.asset import fetch_url

        # Downloads land in the task's own folder; no asset row exists for it, so none is updated.
        path = fetch_url(engine, f"embed-{task_id}", req["video_url"], "video")
    if path is None:
        raise MediaError("video_file_broken", "The video for this task is missing.")
    result = embed_video(engine, path, req["clip_length"], req["start"], req["end"], req["scopes"])
    engine.db.run(
        "UPDATE embed_tasks SET status='ready', result=?, updated_at=? WHERE id=?",
        (dumps(result), now_iso(), task_id),
    )


def failed(engine: Engine, ref: str, message: str) -> None:
    engine.db.run(
        "UPDATE embed_tasks SET status='failed', error=?, updated_at=? WHERE id=?",
        (message, now_iso(), ref),
    )
