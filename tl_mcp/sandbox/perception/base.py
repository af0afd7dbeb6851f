"""The small interface every sandbox analyzer implements.

The ingest pipeline decodes a video once (streaming frames and audio), hands sampled frames to the
OCR analyzer and the image embedder, the media path to the speech analyzer, and every piece of text it
gathers (subtitles, speech, on-screen text) to the text embedder. Which implementations are active is
decided by :func:`tl_mcp.sandbox.perception.load_analyzers` from config and from what is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tl_mcp.sandbox.media import Frame, MediaLimits, TimedText

FloatArray = npt.NDArray[np.float32]


@runtime_checkable
class SpeechAnalyzer(Protocol):
    """Speech to text with timestamps. Must stream the audio: never hold a whole long video in memory, and
    decode it only through :func:`tl_mcp.sandbox.media.open_media` within ``limits``."""

    name: str

    def transcribe(self, media_path: Path, limits: MediaLimits) -> list[TimedText]: ...


@runtime_checkable
class OcrAnalyzer(Protocol):
    """On-screen text of one frame (already sampled at a scene change). Results below its own
    confidence filter are dropped by the analyzer."""

    name: str

    def read(self, frame: Frame, at_seconds: float) -> list[TimedText]: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Text to unit-length float32 vectors. `kind` lets asymmetric models (E5) prefix queries and
    passages differently; symmetric models ignore it."""

    name: str
    dim: int
    #: True when vectors carry meaning (paraphrases land close); False for the deterministic fallback.
    semantic: bool

    def embed(self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage") -> FloatArray: ...


@runtime_checkable
class ImageEmbedder(Protocol):
    """Frame to unit-length float32 vector, for image-query search (frame similarity, not semantics)."""

    name: str
    dim: int

    def embed_image(self, frame: Frame) -> FloatArray: ...


@dataclass(slots=True)
class Analyzers:
    """The active set. `text` and `image` always exist (deterministic fallbacks without the ml extra);
    `speech` and `ocr` are None when their packages or models are missing."""

    text: TextEmbedder
    image: ImageEmbedder
    speech: SpeechAnalyzer | None = None
    ocr: OcrAnalyzer | None = None
    #: Human-readable notes on why an analyzer is off (shown in startup logs and search metadata).
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, str | None]:
        """Names of the active analyzers, for logs and result metadata."""
        return {
            "speech": self.speech.name if self.speech else None,
            "ocr": self.ocr.name if self.ocr else None,
            "text_embedding": self.text.name,
            "image_similarity": self.image.name,
        }
