"""The probe demuxes every packet of a file to measure what it really holds (never what its header says).
That pass must cost little more than the demuxing itself, so a long file of tiny packets (AAC, MP3: tens of
thousands per megabyte) is accepted about as fast as FFmpeg can read it.

Both are timed in the same run (best of three), so a slow or busy machine slows them alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from tests.hostile_media import silent_adts
from tl_mcp.sandbox.media import MediaLimits, probe

#: How much longer than a bare demux of the file the whole probe may take (it opens the file twice, decodes
#: nothing of an audio file, and handles each packet in Python).
MAX_OVER_DEMUX = 2.0


def _best_of_three(work: Callable[[], object]) -> float:
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def _demux(path: Path) -> None:
    with av.open(str(path)) as container:
        for _ in container.demux():
            pass


def test_probing_costs_little_more_than_demuxing_the_file(tmp_path: Path) -> None:
    path = silent_adts(tmp_path / "long.aac", 1500.0)  # ~140,000 packets in 1.5 MB
    info = probe(path, MediaLimits())
    assert info.kind == "audio" and info.duration == pytest.approx(1500.0, abs=0.1)
    demux_s = _best_of_three(lambda: _demux(path))
    probe_s = _best_of_three(lambda: probe(path, MediaLimits()))
    assert probe_s < MAX_OVER_DEMUX * demux_s, (
        f"probing took {probe_s:.2f} s, {probe_s / demux_s:.1f}x a bare demux ({demux_s:.2f} s)"
    )
