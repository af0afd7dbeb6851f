"""Where speech moments may be cut: the pauses found in the audio's level (no Whisper needed), on real
espeak-ng speech over silence, over hiss, and over a steady tone too loud to hear pauses against."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tl_mcp.samples import espeak_available, read_wav
from tl_mcp.sandbox.perception.audio import SAMPLE_RATE
from tl_mcp.sandbox.perception.speech import _sound_islands

pytestmark = pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng to synthesise speech")

SENTENCES = ("Farmers gather wheat.", "When it rains, boats rest.", "Bakers sell warm bread.")
PAUSE = 0.4


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
    # The level cannot tell a pause from a quiet syllable here: no cut but Whisper's sentence ends.
    assert _sound_islands(audio + tone) == [(0.0, audio.size / SAMPLE_RATE)]


def test_audio_shorter_than_a_frame_is_one_island() -> None:
    assert _sound_islands(np.zeros(100, np.float32)) == [(0.0, 100 / SAMPLE_RATE)]
