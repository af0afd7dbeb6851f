"""Real espeak-ng speech laid over synthetic backgrounds: music (chords, a melody and a drum beat), pink and
brown noise, and a fan's hum with harmonics, mixed at a chosen speech-to-background ratio. Shared by
tests/sandbox (where the pauses are found, no Whisper) and tests/ml (the moments a search returns)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tl_mcp.samples import read_wav

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Speech:
    """The speech alone (silence between sentences), each sentence's (start, end) in seconds, and the
    instant of the scene change (in the pause before sentence ``cut_before``)."""

    samples: Samples
    spans: list[tuple[float, float]]
    cut: float


def speak(
    root: Path, sentences: tuple[str, ...], *, rate: int, pause: float, lead: float = 0.5, cut_before: int = 0
) -> Speech:
    parts: list[Samples] = [np.zeros(int(lead * rate), np.float32)]
    spans: list[tuple[float, float]] = []
    t, cut = lead, 0.0
    for i, sentence in enumerate(sentences):
        wav = root / f"sentence{i}.wav"
        subprocess.run(["espeak-ng", "-s", "165", "-w", str(wav), sentence], check=True, timeout=30)
        samples = read_wav(wav, rate=rate)
        loud = np.flatnonzero(np.abs(samples) > 0.01)
        samples = 0.5 * samples[loud[0] : loud[-1] + 1]
        if i == cut_before:
            cut = round(t - pause / 2, 2)
        parts += [samples, np.zeros(int(pause * rate), np.float32)]
        spans.append((round(t, 3), round(t + samples.size / rate, 3)))
        t = spans[-1][1] + pause
    parts.append(np.zeros(int(lead * rate), np.float32))
    return Speech(np.concatenate(parts), spans, cut)


def _rms(x: Samples) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _spectral_noise(n: int, rate: int, slope: float, seed: int) -> Samples:
    """Gaussian noise whose power falls as 1/f**slope (1: pink, 2: brown), above 20 Hz."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum *= np.where(f > 20.0, 1.0 / np.maximum(f, 20.0) ** (slope / 2), 0.0)
    return np.fft.irfft(spectrum, n).astype(np.float32)


def pink_noise(n: int, rate: int) -> Samples:
    return _spectral_noise(n, rate, 1.0, seed=5)


def brown_noise(n: int, rate: int) -> Samples:
    return _spectral_noise(n, rate, 2.0, seed=6)


def fan_hum(n: int, rate: int) -> Samples:
    """A fan: a 100 Hz motor hum with eight decaying harmonics, a blade tone at 360 Hz, and airflow (pink
    noise), all steady."""
    t = np.arange(n) / rate
    hum = sum((0.7**k) * np.sin(2 * np.pi * 100 * (k + 1) * t + k) for k in range(8))
    blade = 0.3 * np.sin(2 * np.pi * 360 * t)
    air = pink_noise(n, rate)
    return (hum / _rms(hum) + blade / _rms(blade) * 0.3 + air / _rms(air) * 0.6).astype(np.float32)


def music(n: int, rate: int) -> Samples:
    """Four bars a second apart of a I–V–vi–IV progression (sawtooth-ish chords with a bass), a melody of
    quarter notes, a kick on every beat and a hi-hat on the off-beats at 120 bpm, looped."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    chords = ((261.6, 329.6, 392.0), (392.0, 493.9, 587.3), (220.0, 261.6, 329.6), (349.2, 440.0, 523.3))
    melody = (523.3, 587.3, 659.3, 784.0, 659.3, 587.3, 523.3, 440.0)
    beat = rate // 2
    bar = 2 * beat
    for b in range(0, n, bar):
        chord = chords[(b // bar) % len(chords)]
        seg = slice(b, min(n, b + bar))
        tt = t[seg] - t[b]
        envelope = np.minimum(1.0, tt / 0.02) * np.exp(-tt * 0.8)
        for f in chord:
            out[seg] += envelope * sum(np.sin(2 * np.pi * f * k * tt) / k for k in (1, 2, 3))
        out[seg] += 1.5 * envelope * np.sin(2 * np.pi * chord[0] / 2 * tt)
    for q, b in enumerate(range(0, n, beat // 2)):
        seg = slice(b, min(n, b + beat // 2))
        tt = t[seg] - t[b]
        out[seg] += 0.8 * np.exp(-tt * 6) * np.sin(2 * np.pi * melody[q % len(melody)] * tt)
    rng = np.random.default_rng(7)
    for b in range(0, n, beat):
        kick = slice(b, min(n, b + rate // 8))
        tt = t[kick] - t[b]
        out[kick] += 3.0 * np.exp(-tt * 30) * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 40)) * tt)
        hat = slice(b + beat // 2, min(n, b + beat // 2 + rate // 20))
        tt = t[hat] - (b + beat // 2) / rate
        out[hat] += 0.6 * np.exp(-tt * 80) * rng.standard_normal(tt.size)
    return out.astype(np.float32)


def fan_then_music(n: int, rate: int) -> Samples:
    """A scene with a fan, then one with music, as loud as each other."""
    fan, tune = fan_hum(n, rate), music(n, rate)
    out = fan / _rms(fan)
    out[n // 2 :] = (tune / _rms(tune))[n // 2 :]
    return out.astype(np.float32)


BACKGROUNDS: dict[str, Callable[[int, int], Samples]] = {
    "music": music,
    "pink": pink_noise,
    "brown": brown_noise,
    "fan": fan_hum,
    "fan-then-music": fan_then_music,
}


def mix(speech: Speech, background: str | None, ratio_db: float, rate: int) -> Samples:
    """``speech`` over ``background`` (a BACKGROUNDS name, or None for clean speech) whose RMS is
    ``ratio_db`` under the speech's RMS while it speaks."""
    voice = speech.samples
    if background is None:
        return voice
    bed = BACKGROUNDS[background](voice.size, rate)
    spoken = np.concatenate([voice[int(a * rate) : int(b * rate)] for a, b in speech.spans])
    bed *= _rms(spoken) / _rms(bed) / 10 ** (ratio_db / 20)
    out = voice + bed
    return (out / max(1.0, float(np.abs(out).max()) / 0.95)).astype(np.float32)
