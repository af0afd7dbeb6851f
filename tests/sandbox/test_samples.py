"""The generated sample clip contains what its ground truth says it contains."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tl_mcp.samples import DEFAULT_SCENES, espeak_available, make_sample_image, make_sample_video


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_sample_video_matches_ground_truth(tmp_path: Path, suffix: str) -> None:
    began = time.monotonic()
    info = make_sample_video(tmp_path / f"clip{suffix}")
    assert time.monotonic() - began < 5
    assert info.duration == pytest.approx(18.0)
    assert [s.title for s in info.scenes] == [s.title for s in DEFAULT_SCENES]
    assert info.speech if espeak_available() else not info.speech

    with av.open(str(info.path)) as container:
        kinds = sorted(s.type for s in container.streams)
        assert kinds == ["audio", "subtitle", "video"]
        assert container.duration is not None
        assert container.duration / 1e6 == pytest.approx(18.0, abs=0.2)
        subs = container.streams.subtitles[0]
        cues = []
        for packet in container.demux(subs):
            if packet.size == 0 or packet.pts is None:
                continue
            for sub in subs.decode(packet):
                assert packet.time_base is not None
                cues.append((float(packet.pts * packet.time_base), sub.dialogue.decode()))
    assert cues == [(c.start, c.text) for c in info.subtitles]

    # The middle frame of each scene shows that scene's background colour.
    with av.open(str(info.path)) as container:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    for scene in info.scenes:
        mid = (scene.start + scene.end) / 2
        _, pixels = min(frames, key=lambda f: abs((f[0] or 0) - mid))
        corner = pixels[5:20, 5:20].reshape(-1, 3).mean(axis=0)
        assert np.abs(corner - np.array(scene.background)).max() < 12


def test_sample_without_audio_or_subtitles(tmp_path: Path) -> None:
    info = make_sample_video(tmp_path / "quiet.mp4", with_audio=False, with_subtitles=False, scene_seconds=2)
    assert not info.has_audio and not info.subtitles and not info.speech
    with av.open(str(info.path)) as container:
        assert [s.type for s in container.streams] == ["video"]


def test_sample_image_is_the_scene_picture(tmp_path: Path) -> None:
    path = make_sample_image(tmp_path / "frame.png", scene_index=2)
    with Image.open(path) as image:
        assert image.size == (640, 360)
        assert image.getpixel((3, 3)) == DEFAULT_SCENES[2].background


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        make_sample_video(tmp_path / "odd.mp4", size=(641, 360))
    with pytest.raises(ValueError, match="at least one scene"):
        make_sample_video(tmp_path / "none.mp4", scenes=[])
    assert not (tmp_path / "odd.mp4").exists()
