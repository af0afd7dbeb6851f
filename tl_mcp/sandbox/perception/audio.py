"""Streaming audio decode: a media file's first audio track as 16 kHz mono float32, in bounded chunks, and
the sound signature built on it for audio ``/embed``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from tl_mcp.sandbox.media import MediaError, MediaLimits, decode, open_media

SAMPLE_RATE = 16_000

AudioArray = npt.NDArray[np.float32]


def iter_audio_chunks(
    media_path: Path, limits: MediaLimits, *, chunk_seconds: float = 30.0, sample_rate: int = SAMPLE_RATE
) -> Iterator[tuple[float, AudioArray]]:
    """Yield (offset_seconds, samples) with at most ``chunk_seconds`` of audio per chunk.

    Memory stays at about one chunk however long the file is. A file without an audio track yields
    nothing. Offsets count from the first decoded sample, which is what speech timestamps need. The file is
    opened and decoded within ``limits`` (see :func:`tl_mcp.sandbox.media.open_media`).
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    limit = int(chunk_seconds * sample_rate)
    with open_media(media_path, limits) as container:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        pending: list[AudioArray] = []
        pending_len = 0
        emitted = 0

        def drain(final: bool) -> Iterator[tuple[float, AudioArray]]:
            nonlocal pending, pending_len, emitted
            while pending_len >= limit or (final and pending_len):
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                take = min(limit, pending_len)
                yield emitted / sample_rate, np.ascontiguousarray(joined[:take])
                emitted += take
                rest = joined[take:]
                pending = [rest] if rest.size else []
                pending_len = int(rest.size)

        for frame in decode(container, stream, limits):
            for out in resampler.resample(frame):
                pending.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
                pending_len += out.samples
            yield from drain(final=False)
        for out in resampler.resample(None):
            pending.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            pending_len += out.samples
        yield from drain(final=True)


def audio_features(
    path: Path, limits: MediaLimits, start: float = 0.0, end: float | None = None, dim: int = 128
) -> npt.NDArray[np.float32]:
    """A unit vector describing the sound between ``start`` and ``end``: mean log power in ``dim`` bands of
    16 kHz spectrum. Useful for same-or-similar audio matching, not for meaning."""
    acc = np.zeros(dim, dtype=np.float64)
    windows = 0
    n_fft = 1024
    for offset, samples in iter_audio_chunks(path, limits, chunk_seconds=10.0):
        if end is not None and offset >= end:
            break
        a = max(0, int((start - offset) * SAMPLE_RATE))
        b = len(samples) if end is None else min(len(samples), int((end - offset) * SAMPLE_RATE))
        piece = samples[a:b]
        for i in range(0, len(piece) - n_fft + 1, n_fft):
            spectrum = np.abs(np.fft.rfft(piece[i : i + n_fft] * np.hanning(n_fft))) ** 2
            bands = np.array_split(spectrum[1:], dim)
            acc += np.log1p(np.array([band.mean() for band in bands]) * 1e4)
            windows += 1
    if windows == 0:
        raise MediaError("parameter_invalid", "The audio is shorter than 0.07 s or has no audio stream.")
    vec = (acc / windows).astype(np.float32)
    vec -= vec.mean()
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec
