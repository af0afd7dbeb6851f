"""Streaming frame sampling that keeps only frames where the picture changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tl_mcp.sandbox.media import Frame, MediaLimits, decode, open_media

#: Mean absolute difference (0-255 grey levels) between 1/8-scale grey frames above which the
#: picture counts as changed. A cut or a new slide scores tens; a moving cursor or progress bar,
#: compression noise or a slow pan over a static shot stays below it.
DEFAULT_DIFF_THRESHOLD = 8.0


def sample_scene_frames(
    media_path: Path,
    limits: MediaLimits,
    *,
    fps: float = 1.0,
    diff_threshold: float = DEFAULT_DIFF_THRESHOLD,
    max_side: int = 1280,
) -> Iterator[tuple[float, Frame]]:
    """Yield (seconds, RGB frame) at most ``fps`` times a second, only when the picture changed
    since the last yielded frame; the first frame is always yielded.

    Frames are decoded one at a time and dropped unless yielded, so memory does not grow with the
    video's length. The change test runs on a 1/8-scale grey copy made by the decoder's scaler;
    only yielded frames are converted to full RGB (downscaled so the longer side is at most
    ``max_side``, which keeps OCR input bounded for 4K sources). The file is opened and decoded within
    ``limits`` (see :func:`tl_mcp.sandbox.media.open_media`).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if diff_threshold < 0:
        raise ValueError(f"diff_threshold must be >= 0, got {diff_threshold}")
    step = 1.0 / fps
    with open_media(media_path, limits) as container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_t = 0.0
        previous: npt.NDArray[np.float32] | None = None
        for frame in decode(container, stream, limits):
            t = frame.time
            if t is None:
                continue
            if t + 1e-6 < next_t:
                continue
            next_t = (int(t / step) + 1) * step
            small_w, small_h = max(1, frame.width // 8), max(1, frame.height // 8)
            grey = frame.reformat(width=small_w, height=small_h, format="gray").to_ndarray()
            small = grey.astype(np.float32)
            if previous is not None and float(np.abs(small - previous).mean()) <= diff_threshold:
                continue
            previous = small
            scale = min(1.0, max_side / max(frame.width, frame.height))
            width = max(2, int(frame.width * scale) // 2 * 2)
            height = max(2, int(frame.height * scale) // 2 * 2)
            rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
            yield max(0.0, float(t)), np.ascontiguousarray(rgb, dtype=np.uint8)
