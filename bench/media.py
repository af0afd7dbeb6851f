"""Generated benchmark media: a 720p video with motion, changing on-screen titles and espeak speech."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from tl_mcp.samples import load_font, mux_audio, read_wav

AUDIO_RATE = 16_000

PARAGRAPH = (
    "Welcome to the quarterly review. Revenue grew twenty percent across all regions this year. "
    "Our new orchard partnership brings fresh apples to every store at two dollars per pound. "
    "The engineering team shipped the electric bike, which charges fully in four hours. "
    "On the factory floor, inspectors check every part on the assembly line for defects. "
    "Next quarter we will expand to three new cities and hire forty engineers. "
    "Thank you all for your hard work, and see you at the summer meeting by the ocean."
)
TITLES = (
    "QUARTERLY REVIEW",
    "REVENUE +20%",
    "FRESH APPLES $2/lb",
    "E-BIKE: 4 HOURS",
    "FACTORY LINE B",
    "THREE NEW CITIES",
    "HIRING 40 ENGINEERS",
    "SUMMER MEETING",
)


@dataclass(frozen=True, slots=True)
class BenchVideo:
    path: Path
    duration: float
    width: int
    height: int
    fps: int
    speech_seconds: float


def _speech(duration: float) -> tuple[npt.NDArray[np.float32], float]:
    """The paragraph spoken by espeak-ng, repeated with short pauses to fill ``duration``."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("the benchmark video needs espeak-ng for its speech (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="tl-mcp-bench-") as tmp:
        wav_path = Path(tmp) / "para.wav"
        subprocess.run(
            ["espeak-ng", "-s", "160", "-w", str(wav_path), PARAGRAPH],
            check=True,
            timeout=60,
            capture_output=True,
        )
        voice = read_wav(wav_path, AUDIO_RATE)
    total = int(duration * AUDIO_RATE)
    track = np.zeros(total, dtype=np.float32)
    pause = AUDIO_RATE  # one second between repetitions
    spoken = 0
    at = AUDIO_RATE // 2
    while at < total:
        n = min(len(voice), total - at)
        track[at : at + n] = 0.8 * voice[:n]
        spoken += n
        at += n + pause
    return track, spoken / AUDIO_RATE


def make_bench_video(
    path: Path, *, duration: float = 120.0, size: tuple[int, int] = (1280, 720), fps: int = 30
) -> BenchVideo:
    """Write an H.264 + AAC MP4. A diagonal gradient scrolls and a box moves every frame (so the
    decoder does real work, unlike a still), and a new title appears every ``duration / 8`` seconds."""
    width, height = size
    track, speech_seconds = _speech(duration)
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx + yy) % 256).astype(np.uint8)
    font = load_font(height // 10)
    title_frames: list[npt.NDArray[np.bool_]] = []
    for title in TITLES:
        image = Image.new("L", size, 0)
        ImageDraw.Draw(image).text((width // 10, height // 3), title, font=font, fill=255)
        title_frames.append(np.asarray(image) > 0)
    n_frames = int(duration * fps)
    scene_frames = max(1, n_frames // len(TITLES))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for k in range(n_frames):
            scene = min(len(TITLES) - 1, k // scene_frames)
            shift = (k // 4) % 256  # a slow pan: the picture changes every frame, scenes stay scenes
            grey = base + np.uint8(shift)
            rgb = np.stack([grey, np.roll(grey, 40 * scene, axis=1), 255 - grey], axis=-1)
            rgb = (rgb // 2).astype(np.uint8)  # darker background so the white title reads well
            bx = (k * 7) % (width - 120)
            rgb[height - 160 : height - 40, bx : bx + 120] = (230, 200, 40)
            rgb[title_frames[scene]] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = k
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        mux_audio(container, audio, track, AUDIO_RATE)
    return BenchVideo(path, duration, width, height, fps, speech_seconds)
