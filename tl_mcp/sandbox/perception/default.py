"""Deterministic analyzers that need nothing beyond numpy and Pillow.

They keep the sandbox useful without the ``ml`` extra: text search still matches shared words and
word fragments, and an image query still finds frames that look alike. Neither carries meaning
(``semantic=False`` on the text side), and both are honest about it in their names.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image

from tl_mcp.sandbox.media import Frame
from tl_mcp.sandbox.perception.base import FloatArray

_WORD = re.compile(r"\w+", re.UNICODE)


def _unit_rows(matrix: FloatArray) -> FloatArray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # An all-zero row (empty text, flat frame) stays zero: it then scores 0 against everything,
    # which is the honest answer, instead of a division by zero.
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


class HashingTextEmbedder:
    """Hashed bag of words plus character trigrams, unit-normalised.

    Words give exact-term matches; trigrams let "prices" meet "price" and survive small OCR or
    transcription slips. crc32 (not Python's salted ``hash``) keeps vectors identical across
    processes, so stored vectors stay valid after a restart.
    """

    name = "hashing-text-v1"
    semantic = False

    def __init__(self, dim: int = 384) -> None:
        if dim < 16:
            raise ValueError(f"HashingTextEmbedder dim must be at least 16, got {dim}")
        self.dim = dim

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text.lower())
        features: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        for w in words:
            padded = f"#{w}#"
            features.extend(("t:" + padded[i : i + 3], 0.35) for i in range(len(padded) - 2))
        return features

    def embed(self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage") -> FloatArray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in self._features(text):
                h = zlib.crc32(feature.encode("utf-8"))
                # The low bits pick the slot, a high bit picks the sign, so collisions cancel on average.
                sign = 1.0 if h & 0x80000000 else -1.0
                out[row, h % self.dim] += sign * weight
        return _unit_rows(out)


class FrameFeatureEmbedder:
    """Frame similarity from pixels: a small zero-mean grey thumbnail (layout) plus a coarse RGB
    colour histogram (palette), each unit-normalised, then concatenated and unit-normalised again.

    This is look-alike matching, not understanding: no image-text model ships offline, so a query
    image finds frames with similar layout and colours, never "frames showing a dog".
    """

    name = "frame-features-v1"

    _THUMB = 16
    _BINS = 4  # per channel → 64 colour bins

    def __init__(self) -> None:
        self.dim = self._THUMB * self._THUMB + self._BINS**3

    def embed_image(self, frame: Frame) -> FloatArray:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"expected an H x W x 3 uint8 RGB frame, got shape {frame.shape} dtype {frame.dtype}"
            )
        image = Image.fromarray(frame)
        thumb = np.asarray(
            image.convert("L").resize((self._THUMB, self._THUMB), Image.Resampling.BOX), dtype=np.float32
        ).ravel()
        thumb -= thumb.mean()
        small = np.asarray(image.resize((64, 64), Image.Resampling.BOX), dtype=np.uint16)
        q = small // (256 // self._BINS)
        codes = (q[..., 0] * self._BINS + q[..., 1]) * self._BINS + q[..., 2]
        hist = np.bincount(codes.ravel(), minlength=self._BINS**3).astype(np.float32)
        # sqrt (Hellinger) damps a dominant background colour so smaller regions still count.
        hist = np.sqrt(hist)
        parts = np.concatenate([_unit_rows(thumb[None, :]), _unit_rows(hist[None, :])], axis=1)
        out: FloatArray = _unit_rows(parts.astype(np.float32))[0]
        return out
