"""A four-scene video with known class durations and scene colours; which scene a picture shows."""

from __future__ import annotations

import io

from PIL import Image

from tl_mcp.samples import DEFAULT_SCENES, SampleInfo, SceneSpec

#: One cooking scene out of four equal ones: cooking covers exactly 25 % of the video.
FOUR_SCENES: tuple[SceneSpec, ...] = (
    DEFAULT_SCENES[0],
    SceneSpec(
        "COOKING PASTA / Boil the water",
        "Now we are cooking pasta: boil the water, then add salt and stir the sauce.",
        (200, 120, 20),
        440.0,
    ),
    DEFAULT_SCENES[2],
    SceneSpec(
        "FOOTBALL FINAL / 2-1",
        "The striker scores the winning goal in the football final.",
        (40, 140, 60),
        660.0,
    ),
)
COOKING = 1


def corner_colour(jpeg: bytes) -> tuple[int, int, int]:
    """The mean colour of the picture's top-left corner, where the scenes draw no text."""
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.format == "JPEG", img.format
        patch = img.convert("RGB").crop((2, 2, 22, 22))
        pixels = [patch.getpixel((x, y)) for x in range(patch.width) for y in range(patch.height)]
    return tuple(round(sum(p[i] for p in pixels) / len(pixels)) for i in range(3))  # type: ignore[return-value]


def scene_of(sample: SampleInfo, jpeg: bytes) -> int:
    """Which scene of `sample` the picture shows, by its background colour (each scene has its own)."""
    colour = corner_colour(jpeg)

    def distance(index: int) -> int:
        return sum((a - b) ** 2 for a, b in zip(colour, sample.scenes[index].background, strict=True))

    best = min(range(len(sample.scenes)), key=distance)
    assert distance(best) < 30**2 * 3, (colour, [s.background for s in sample.scenes])
    return best
