from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tl_mcp.samples import DEFAULT_SCENES, SampleInfo, SceneSpec, espeak_available, make_sample_video

#: Six distinct scenes of 6 s = 36 s, so speech crosses the analyzer's 30 s window boundary.
ML_SCENES: tuple[SceneSpec, ...] = (
    *DEFAULT_SCENES,
    SceneSpec(
        "MOUNTAIN TRAIL / 12 km loop",
        "The mountain trail climbs steeply through the pine forest.",
        (120, 90, 30),
        600.0,
    ),
    SceneSpec(
        "BATTERY TEST / 4 hours",
        "Charging the electric bike battery takes four hours.",
        (30, 30, 30),
        660.0,
    ),
    SceneSpec(
        "FACTORY FLOOR / Line B",
        "Inspectors check every part on the assembly line for defects.",
        (200, 120, 20),
        700.0,
    ),
)


@pytest.fixture(scope="session")
def ml_scenes() -> tuple[SceneSpec, ...]:
    return ML_SCENES


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleInfo]:
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("ml-media") / "sample.mp4"
    yield make_sample_video(path, scenes=ML_SCENES, speech=True)


@pytest.fixture(scope="session")
def silent_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ml-media") / "silent.mp4"
    make_sample_video(path, scenes=DEFAULT_SCENES[:1], with_audio=False, with_subtitles=False)
    return path
