"""Where speech moments may be cut: the pauses found in the audio's level (no Whisper needed), on real
espeak-ng speech over silence, over hiss, and over a steady tone too loud to hear pauses against."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.speech_backgrounds import mix, speak
from tl_mcp.samples import espeak_available, read_wav
from tl_mcp.sandbox.perception.audio import SAMPLE_RATE
from tl_mcp.sandbox.perception.speech import _sentences, _sound_islands

pytestmark = pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng to synthesise speech")

SENTENCES = ("Farmers gather wheat.", "When it rains, boats rest.", "Bakers sell warm bread.")
PAUSE = 0.4
SIX = (
    "Kites circle the valley.",
    "Farmers gather wheat.",
    "When it rains, boats rest.",
    "Engineers test bridges.",
    "Children paint murals.",
    "Bakers sell warm bread.",
)


def _talk(root: Path) -> tuple[np.ndarray[Any, Any], list[tuple[float, float]]]:
    """16 kHz speech, 0.5 s of silence around it and ``PAUSE`` between sentences, and each sentence's span."""
    parts: list[np.ndarray[Any, Any]] = [np.zeros(SAMPLE_RATE // 2, np.float32)]
    spans = []
    t = 0.5
    for i, sentence in enumerate(SENTENCES):
        wav = root / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-s", "165", "-w", str(wav), sentence], check=True, timeout=30)
        samples = read_wav(wav, rate=SAMPLE_RATE)
        loud = np.nonzero(np.abs(samples) > 0.01)[0]
        samples = 0.8 * samples[loud[0] : loud[-1] + 1]
        parts += [samples, np.zeros(int(PAUSE * SAMPLE_RATE), np.float32)]
        spans.append((t, t + samples.size / SAMPLE_RATE))
        t = spans[-1][1] + PAUSE
    parts.append(np.zeros(SAMPLE_RATE // 2, np.float32))
    return np.concatenate(parts), spans


@pytest.mark.parametrize("hiss", [0.0, 0.003, 0.01])
def test_each_sentence_is_one_island_and_a_comma_does_not_split_one(tmp_path: Path, hiss: float) -> None:
    audio, spans = _talk(tmp_path)
    audio = audio + hiss * np.random.default_rng(3).uniform(-1, 1, audio.size).astype(np.float32)
    islands = _sound_islands(audio)
    # One island per sentence (the comma's pause in the second is under 0.2 s), each within a few frames
    # of where the sentence really starts and ends (its soft first and last sounds count as quiet).
    assert len(islands) == len(spans), (islands, spans)
    for (a, b), (start, end) in zip(islands, spans, strict=True):
        assert abs(a - start) <= 0.15 and abs(b - end) <= 0.15, (islands, spans)


def test_speech_over_a_loud_steady_tone_shows_no_pause(tmp_path: Path) -> None:
    audio, _ = _talk(tmp_path)
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(audio.size) / SAMPLE_RATE).astype(np.float32)
    # The level cannot tell a pause from a quiet syllable here: it says so, and words are cut at their gaps.
    assert _sound_islands(audio + tone) is None


def test_audio_shorter_than_a_frame_shows_no_pause() -> None:
    assert _sound_islands(np.zeros(100, np.float32)) is None


@dataclass
class _Word:
    word: str
    start: float
    end: float


#: What Whisper (tiny.en) heard, with its word times, in six sentences 0.4 s apart spoken over music at
#: +3 dB (tests/ml/test_speech_backgrounds.py): commas for every sentence end but the last, and 0.3 s of
#: word gap at the comma inside "When it rains, boats rest."
_OVER_MUSIC = (
    "Kite's 0.18 1.18|circles 1.18 1.34|are 1.34 1.60|valid, 1.60 2.02|farmers 2.46 2.62|gather 2.62 2.98|"
    "wheat, 2.98 3.54|when 3.94 3.94|it 3.94 4.08|rains, 4.08 4.54|boats 4.84 4.98|rest, 4.98 5.64|"
    "and 5.98 5.98|gineas 5.98 6.30|test 6.30 6.66|bridges, 6.66 7.10|children 7.80 7.80|paint 7.80 8.26|"
    "murals, 8.26 8.88|makers 9.34 9.56|sell 9.56 9.92|warm 9.92 10.26|bread. 10.26 10.52"
)


def test_over_music_as_loud_as_the_speech_sentences_are_cut_at_whispers_word_gaps(tmp_path: Path) -> None:
    speech = speak(tmp_path, SIX, rate=SAMPLE_RATE, pause=0.4)
    audio = mix(speech, "music", 3.0, SAMPLE_RATE)
    islands = _sound_islands(audio)
    assert islands is None
    words = [_Word(f" {w}", float(a), float(b)) for w, a, b in (p.split() for p in _OVER_MUSIC.split("|"))]
    runs = _sentences(words, islands)
    assert ["".join(w.word for w in run).strip() for run in runs] == [
        "Kite's circles are valid,",
        "farmers gather wheat,",
        "when it rains, boats rest,",
        "and gineas test bridges,",
        "children paint murals,",
        "makers sell warm bread.",
    ]
