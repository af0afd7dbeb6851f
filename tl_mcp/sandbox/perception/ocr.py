"""On-screen text with RapidOCR (PP-OCR det/cls/rec as ONNX, run by onnxruntime); the weights ship
in the ``rapidocr`` wheel and are passed by explicit path so nothing is ever fetched."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tl_mcp.sandbox.media import Frame, TimedText
from tl_mcp.sandbox.perception.models import ENV_OCR_MODEL_DIR, AnalyzerModels

#: Measured on generated and real frames: this removes the junk tokens PP-OCR emits on shapes
#: ("●", "O", "_") while keeping real words.
MIN_SCORE = 0.8
MIN_CHARS = 2
#: Text detection runs on the frame scaled so its longer side is at most this. 736 reads the 720p
#: titles of the benchmark video exactly as 960 does (which read them as full size did) at about 70%
#: of the time (3.4 s vs 4.9 s for 16 frames).
DET_MAX_SIDE = 736
#: A frame counts as "the same picture" as the previous one (so its lines are reused, not re-read)
#: only if its 1/8-scale grey copy differs by at most this on average AND nowhere by more than
#: ``_SAME_MAX_DIFF``: a ticking clock or a new caption changes a small area strongly and forces a read.
_SAME_MEAN_DIFF = 1.0
_SAME_MAX_DIFF = 24.0


@dataclass(frozen=True, slots=True)
class _Box:
    text: str
    score: float
    left: float
    right: float
    top: float
    bottom: float

    @property
    def height(self) -> float:
        return max(1.0, self.bottom - self.top)


def merge_into_lines(boxes: list[_Box]) -> list[list[_Box]]:
    """Group word/phrase boxes into lines, top to bottom and left to right within a line.

    Two boxes share a line when their vertical overlap is at least half the smaller height; this
    tolerates the slight baseline jitter of detected boxes without merging stacked lines.
    """
    lines: list[list[_Box]] = []
    for box in sorted(boxes, key=lambda b: (b.top + b.bottom) / 2):
        for line in lines:
            top = min(b.top for b in line)
            bottom = max(b.bottom for b in line)
            overlap = min(bottom, box.bottom) - max(top, box.top)
            if overlap >= 0.5 * min(box.height, bottom - top):
                line.append(box)
                break
        else:
            lines.append([box])
    for line in lines:
        line.sort(key=lambda b: b.left)
    lines.sort(key=lambda line: min(b.top for b in line))
    return lines


def _model_files(model_dir: Path) -> dict[str, Path]:
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"OCR model directory {model_dir} does not exist; point {ENV_OCR_MODEL_DIR} at a folder of "
            "PP-OCR ONNX files or unset it to use the models shipped in the rapidocr wheel"
        )
    found: dict[str, Path] = {}
    for task in ("det", "rec", "cls"):
        hits = sorted(p for p in model_dir.glob("*.onnx") if f"_{task}" in p.name or p.name.startswith(task))
        if hits:
            found[task] = hits[-1]
    missing = [t for t in ("det", "rec") if t not in found]
    if missing:
        raise FileNotFoundError(
            f"OCR model directory {model_dir} has no {' or '.join(missing)} model (*{missing[0]}*.onnx); "
            f"{ENV_OCR_MODEL_DIR} needs PP-OCR det and rec ONNX files"
        )
    return found


class RapidOcrAnalyzer:
    """Reads one frame, drops low-confidence or one-character boxes, and returns one
    :class:`TimedText` per text line at the frame's time (the pipeline stretches it to the scene)."""

    def __init__(
        self, model_dir: Path | None = None, *, threads: int = 2, det_max_side: int = DET_MAX_SIDE
    ) -> None:
        if model_dir is None:
            import rapidocr

            model_dir = Path(rapidocr.__file__).parent / "models"
        self._files = _model_files(model_dir)
        self._threads = threads
        self._det_max_side = det_max_side
        self._last: tuple[npt.NDArray[np.float32], list[TimedText]] | None = None
        self.name = f"rapidocr {self._files['rec'].stem}"
        self._engine: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_models(cls, models: AnalyzerModels) -> RapidOcrAnalyzer:
        return cls(models.ocr_model_dir, threads=models.threads)

    def _loaded(self) -> Any:
        if self._engine is None:
            from rapidocr import RapidOCR

            params: dict[str, Any] = {
                "Global.log_level": "error",
                "Global.use_cls": "cls" in self._files,
                "EngineConfig.onnxruntime.intra_op_num_threads": self._threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "Det.model_path": str(self._files["det"]),
                "Rec.model_path": str(self._files["rec"]),
                "Det.limit_type": "max",
                "Det.limit_side_len": self._det_max_side,
            }
            if "cls" in self._files:
                params["Cls.model_path"] = str(self._files["cls"])
            self._engine = RapidOCR(params=params)
        return self._engine

    def read(self, frame: Frame, at_seconds: float) -> list[TimedText]:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"expected an H x W x 3 uint8 RGB frame, got shape {frame.shape} dtype {frame.dtype}"
            )
        small = _small_grey(frame)
        with self._lock:
            if self._last is not None and _same_picture(self._last[0], small):
                return [replace(line, start=at_seconds, end=at_seconds) for line in self._last[1]]
            engine = self._loaded()
            # RapidOCR follows OpenCV and expects BGR channel order.
            output = engine(np.ascontiguousarray(frame[:, :, ::-1]))
            lines = self._lines(output, at_seconds)
            self._last = (small, lines)
        return lines

    @staticmethod
    def _lines(output: Any, at_seconds: float) -> list[TimedText]:
        if output.boxes is None or output.txts is None or output.scores is None:
            return []
        boxes: list[_Box] = []
        for points, text, score in zip(output.boxes, output.txts, output.scores, strict=True):
            cleaned = " ".join(str(text).split())
            if float(score) <= MIN_SCORE or len(cleaned) < MIN_CHARS:
                continue
            pts = np.asarray(points, dtype=np.float32)
            boxes.append(
                _Box(
                    text=cleaned,
                    score=float(score),
                    left=float(pts[:, 0].min()),
                    right=float(pts[:, 0].max()),
                    top=float(pts[:, 1].min()),
                    bottom=float(pts[:, 1].max()),
                )
            )
        return [
            TimedText(
                start=at_seconds,
                end=at_seconds,
                text=" ".join(b.text for b in line),
                source="ocr",
                confidence=round(sum(b.score for b in line) / len(line), 4),
            )
            for line in merge_into_lines(boxes)
        ]


def _small_grey(frame: Frame) -> npt.NDArray[np.float32]:
    h, w = (frame.shape[0] // 8) * 8, (frame.shape[1] // 8) * 8
    if h == 0 or w == 0:
        tiny: npt.NDArray[np.float32] = frame.astype(np.float32).mean(axis=2)
        return tiny
    grey = frame[:h, :w].astype(np.float32).mean(axis=2)
    blocks: npt.NDArray[np.float32] = grey.reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))
    return blocks


def _same_picture(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> bool:
    if a.shape != b.shape:
        return False
    diff = np.abs(a - b)
    return float(diff.mean()) <= _SAME_MEAN_DIFF and float(diff.max()) <= _SAME_MAX_DIFF
