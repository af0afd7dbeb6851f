"""Where speech moments may be cut: the pauses found in the audio's level (no Whisper needed), on real
espeak-ng speech over silence, hiss, a loud steady tone, music and steady noises; and how Whisper's words are
cut and timed by them, or by their own gaps where the audio cannot tell."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.speech_backgrounds import Speech, mix, speak
from tl_mcp.samples import espeak_available, read_wav
from tl_mcp.sandbox.perception.audio import SAMPLE_RATE
from tl_mcp.sandbox.perception.speech import _sentence_moments, _sentences, _sound_islands

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


def test_speech_over_a_loud_steady_tone_has_its_pauses_found(tmp_path: Path) -> None:
    audio, spans = _talk(tmp_path)
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(audio.size) / SAMPLE_RATE).astype(np.float32)
    # Louder than the speech overall, but in one band: the others show the pauses.
    islands = _sound_islands(audio + tone)
    assert islands is not None and len(islands) == len(spans), (islands, spans)
    for (a, b), (start, end) in zip(islands, spans, strict=True):
        assert abs(a - start) <= 0.15 and abs(b - end) <= 0.15, (islands, spans)


@pytest.fixture(scope="module")
def six(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    return speak(tmp_path_factory.mktemp("six"), SIX, rate=SAMPLE_RATE, pause=0.4)


@pytest.mark.parametrize(
    ("background", "ratio_db"),
    [
        ("music", 10.0),
        ("music", 3.0),
        ("music", 0.0),
        ("pink", 10.0),
        ("brown", 10.0),
        ("fan", 10.0),
        ("fan-then-music", 10.0),
    ],
)
def test_over_music_or_a_steady_noise_each_sentence_is_one_island(
    six: Speech, background: str, ratio_db: float
) -> None:
    islands = _sound_islands(mix(six, background, ratio_db, SAMPLE_RATE))
    assert islands is not None
    # Islands that hold no speech (a burst of the background at the start or end) hold no words either.
    spoken = [(a, b) for a, b in islands if any(min(b, e) - max(a, s) > 0.05 for s, e in six.spans)]
    assert len(spoken) == len(six.spans), (spoken, six.spans)
    for (a, b), (start, end) in zip(spoken, six.spans, strict=True):
        assert abs(a - start) <= 0.2 and abs(b - end) <= 0.2, (spoken, six.spans)


def test_under_noise_as_loud_as_the_speech_the_audio_says_it_cannot_tell(six: Speech) -> None:
    assert _sound_islands(mix(six, "pink", 0.0, SAMPLE_RATE)) is None


def test_audio_shorter_than_a_frame_shows_no_pause() -> None:
    assert _sound_islands(np.zeros(100, np.float32)) is None


@dataclass
class _Word:
    word: str
    start: float
    end: float
    probability: float = 0.9


#: What Whisper (tiny.en) heard, with its word times, in ``SIX`` spoken 0.4 s apart over music at +3 dB
#: (tests/ml/test_speech_backgrounds.py): commas for every sentence end but the last, 0.3 s of word gap at
#: the comma inside "When it rains, boats rest.", and its last word ending 0.36 s after the sentence.
_OVER_MUSIC = (
    "Kite's 0.18 1.18|circles 1.18 1.34|are 1.34 1.60|valid, 1.60 2.02|farmers 2.46 2.62|gather 2.62 2.98|"
    "wheat, 2.98 3.54|when 3.94 3.94|it 3.94 4.08|rains, 4.08 4.54|boats 4.84 4.98|rest, 4.98 5.64|"
    "and 5.98 5.98|gineas 5.98 6.30|test 6.30 6.66|bridges, 6.66 7.10|children 7.80 7.80|paint 7.80 8.26|"
    "murals, 8.26 8.88|makers 9.34 9.56|sell 9.56 9.92|warm 9.92 10.26|bread. 10.26 10.52"
)
_HEARD = [
    "Kite's circles are valid,",
    "farmers gather wheat,",
    "when it rains, boats rest,",
    "and gineas test bridges,",
    "children paint murals,",
    "makers sell warm bread.",
]


def _over_music() -> list[_Word]:
    return [_Word(f" {w}", float(a), float(b)) for w, a, b in (p.split() for p in _OVER_MUSIC.split("|"))]


def test_where_the_audio_shows_no_pause_sentences_are_cut_at_whispers_word_gaps() -> None:
    runs = _sentences(_over_music(), None)
    assert ["".join(w.word for w in run).strip() for run in runs] == _HEARD


def test_a_sentence_over_music_is_timed_within_its_sound_not_by_whispers_late_last_word(six: Speech) -> None:
    audio = mix(six, "music", 3.0, SAMPLE_RATE)
    moments = _sentence_moments(_over_music(), _sound_islands(audio), 0.0, audio.size / SAMPLE_RATE)
    assert [m.text for m in moments] == [h.rstrip(",") for h in _HEARD]
    for moment, (start, end) in zip(moments, six.spans, strict=True):
        # Whisper puts "rest," 0.36 s past the sentence's end, past the middle of the pause after it.
        assert start - 0.7 < moment.start < start + 0.7 and end - 0.7 < moment.end < end + 0.2, moment
