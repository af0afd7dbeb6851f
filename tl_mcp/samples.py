"""Generated sample media with known ground truth, for tests, demos and the sandbox quick-start.

`make_sample_video` writes a short clip: one scene per :class:`SceneSpec`, each a distinct solid colour
with large text drawn on it, an audio track (a quiet tone per scene, plus espeak-ng speech of the
narration when available), and an embedded subtitle track carrying the narration. It returns a
:class:`SampleInfo` that records exactly what was put where, so tests can check search hits, transcripts
and scene cuts against the truth instead of against hopes.
"""

from __future__ import annotations

import fractions
import logging
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.subtitles.codeccontext import SubtitleCodecContext
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

AUDIO_RATE = 22050
_MS = fractions.Fraction(1, 1000)
#: Seconds after a scene starts before its subtitle cue and speech begin.
CUE_OFFSET = 0.5

# mov_text needs an ASS-style header before libavcodec will open the encoder.
_ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, \
MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


@dataclass(frozen=True, slots=True)
class SceneSpec:
    """One scene: `title` is drawn on screen ("/" splits lines), `narration` is subtitled and spoken."""

    title: str
    narration: str
    background: tuple[int, int, int]
    tone_hz: float = 440.0

    @property
    def lines(self) -> list[str]:
        return [part.strip() for part in self.title.split("/") if part.strip()]


DEFAULT_SCENES: tuple[SceneSpec, ...] = (
    SceneSpec(
        "QUARTERLY SALES / Revenue +20%",
        "Our quarterly sales report shows revenue grew twenty percent.",
        (24, 64, 160),
        330.0,
    ),
    SceneSpec(
        "FRESH APPLES / $2 per pound",
        "Fresh apples from the orchard cost two dollars per pound.",
        (40, 140, 60),
        440.0,
    ),
    SceneSpec(
        "THE OCEAN / Chapter 3",
        "Chapter three takes us deep beneath the ocean waves.",
        (150, 40, 110),
        550.0,
    ),
)


@dataclass(frozen=True, slots=True)
class TimedPhrase:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class SceneTruth:
    index: int
    start: float
    end: float
    title: str
    lines: list[str]
    narration: str
    background: tuple[int, int, int]


@dataclass(slots=True)
class SampleInfo:
    """What `make_sample_video` put in the file, with times in seconds."""

    path: Path
    duration: float
    size: tuple[int, int]
    fps: int
    scenes: list[SceneTruth]
    subtitles: list[TimedPhrase] = field(default_factory=list)
    speech: list[TimedPhrase] = field(default_factory=list)
    has_audio: bool = False

    @property
    def has_subtitles(self) -> bool:
        return bool(self.subtitles)

    @property
    def has_speech(self) -> bool:
        return bool(self.speech)

    def scene_at(self, seconds: float) -> SceneTruth:
        for scene in self.scenes:
            if scene.start <= seconds < scene.end:
                return scene
        return self.scenes[-1]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    ):
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    # Pillow >= 10.1 bundles a scalable default font when built with FreeType.
    return ImageFont.load_default(size=size)


def render_scene(scene: SceneSpec, size: tuple[int, int] = (640, 360)) -> Image.Image:
    """The still picture of one scene: its background colour with its title lines centred."""
    width, height = size
    image = Image.new("RGB", size, scene.background)
    draw = ImageDraw.Draw(image)
    lines = scene.lines or [scene.title]
    # Largest font whose widest line fits 90% of the width and whose lines fit 70% of the height.
    font_size = max(12, int(height * 0.7 / (len(lines) * 1.3)))
    font = load_font(font_size)
    while font_size > 12 and max(draw.textlength(line, font=font) for line in lines) > width * 0.9:
        font_size = int(font_size * 0.9)
        font = load_font(font_size)
    boxes = [draw.textbbox((0, 0), line, font=font) for line in lines]
    heights = [b[3] - b[1] for b in boxes]
    gap = font_size // 3
    total = sum(heights) + gap * (len(lines) - 1)
    y = (height - total) / 2
    for line, box, line_height in zip(lines, boxes, heights, strict=True):
        x = (width - (box[2] - box[0])) / 2 - box[0]
        draw.text((x, y - box[1]), line, font=font, fill=(255, 255, 255))
        y += line_height + gap
    return image


def make_sample_image(
    path: Path,
    *,
    scene_index: int = 0,
    scenes: Sequence[SceneSpec] = DEFAULT_SCENES,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """Write one scene's picture (as it appears in the video) as JPEG or PNG, by suffix, for image queries."""
    path = Path(path)
    image = render_scene(scenes[scene_index], size)
    image.save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG", quality=92)
    return path


def _speak(text: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["espeak-ng", "-s", "165", "-w", str(out), text],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def read_wav(path: Path, rate: int = AUDIO_RATE) -> npt.NDArray[np.float32]:
    """A 16-bit WAV (espeak-ng's output) as mono float samples in [-1, 1] at `rate`."""
    with wave.open(str(path), "rb") as wav:
        source_rate = wav.getframerate()
        channels = wav.getnchannels()
        raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if source_rate != rate:
        positions = np.arange(0, len(samples), source_rate / rate)
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    return samples


def mux_audio(
    container: OutputContainer, stream: AudioStream, samples: npt.NDArray[np.float32], rate: int = AUDIO_RATE
) -> None:
    """Encode mono float `samples` into `stream` in small frames (flat encoder memory), then flush it."""
    chunk = 1024
    for offset in range(0, len(samples), chunk):
        piece = samples[offset : offset + chunk]
        frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = offset
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _synthesise_speech(
    scenes: Sequence[SceneSpec], scene_seconds: float, workdir: Path
) -> tuple[list[tuple[float, npt.NDArray[np.float32]]], list[TimedPhrase]]:
    procs = [(i, _speak(s.narration, workdir / f"speech{i}.wav")) for i, s in enumerate(scenes)]
    clips: list[tuple[float, npt.NDArray[np.float32]]] = []
    phrases: list[TimedPhrase] = []
    for i, proc in procs:
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError("espeak-ng did not finish within 30 s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {err.decode(errors='replace').strip()}")
        samples = read_wav(workdir / f"speech{i}.wav")
        start = i * scene_seconds + CUE_OFFSET
        room = scene_seconds - CUE_OFFSET - 0.1
        samples = samples[: int(room * AUDIO_RATE)]
        clips.append((start, samples))
        phrases.append(
            TimedPhrase(round(start, 3), round(start + len(samples) / AUDIO_RATE, 3), scenes[i].narration)
        )
    return clips, phrases


def _audio_track(
    scenes: Sequence[SceneSpec], scene_seconds: float, speech: list[tuple[float, npt.NDArray[np.float32]]]
) -> npt.NDArray[np.float32]:
    total = round(len(scenes) * scene_seconds * AUDIO_RATE)
    track = np.zeros(total, dtype=np.float32)
    per_scene = round(scene_seconds * AUDIO_RATE)
    t = np.arange(per_scene, dtype=np.float32) / AUDIO_RATE
    for i, scene in enumerate(scenes):
        tone = 0.05 * np.sin(2 * np.pi * scene.tone_hz * t).astype(np.float32)
        begin = i * per_scene
        track[begin : begin + per_scene] += tone[: max(0, min(per_scene, total - begin))]
    for start, samples in speech:
        begin = round(start * AUDIO_RATE)
        end = min(total, begin + len(samples))
        track[begin:end] += 0.8 * samples[: end - begin]
    return np.clip(track, -1.0, 1.0)


def make_sample_video(
    path: Path,
    *,
    scenes: Sequence[SceneSpec] = DEFAULT_SCENES,
    scene_seconds: float = 6.0,
    size: tuple[int, int] = (640, 360),
    fps: int = 10,
    with_audio: bool = True,
    with_subtitles: bool = True,
    speech: bool | None = None,
) -> SampleInfo:
    """Write an H.264 MP4 (or MKV, by suffix) and return its ground truth.

    `speech=None` speaks the narration when espeak-ng is on PATH; `True` requires it. Each scene is
    static except a thin progress bar along the bottom, so scene cuts are sharp while frames within a
    scene still differ a little, as in real footage.
    """
    path = Path(path)
    if not scenes:
        raise ValueError("make_sample_video needs at least one scene")
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"size {size} must have even width and height (H.264 with yuv420p)")
    if speech is None:
        speech = with_audio and espeak_available()
    if speech and not with_audio:
        raise ValueError("speech=True needs with_audio=True")
    if speech and not espeak_available():
        raise RuntimeError("speech=True needs espeak-ng on PATH (apt-get install espeak-ng)")
    suffix = path.suffix.lower()
    subtitle_codec = "subrip" if suffix == ".mkv" else "mov_text"

    truths = [
        SceneTruth(
            i,
            round(i * scene_seconds, 3),
            round((i + 1) * scene_seconds, 3),
            s.title,
            s.lines,
            s.narration,
            s.background,
        )
        for i, s in enumerate(scenes)
    ]
    cues = [
        TimedPhrase(round(t.start + CUE_OFFSET, 3), round(t.end - CUE_OFFSET, 3), t.narration) for t in truths
    ]
    phrases: list[TimedPhrase] = []
    audio: npt.NDArray[np.float32] | None = None
    if with_audio:
        with tempfile.TemporaryDirectory(prefix="tl-mcp-sample-") as tmp:
            clips, phrases = _synthesise_speech(scenes, scene_seconds, Path(tmp)) if speech else ([], [])
        audio = _audio_track(scenes, scene_seconds, clips)

    container = av.open(str(path), "w")
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "stillimage"}
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        sub_stream = None
        if with_subtitles:
            sub_stream = container.add_stream(subtitle_codec)
            sub_context = sub_stream.codec_context
            assert isinstance(sub_context, SubtitleCodecContext)
            sub_context.subtitle_header = _ASS_HEADER
            sub_stream.time_base = _MS

        frames_per_scene = round(scene_seconds * fps)
        pts = 0
        for scene in scenes:
            base = np.asarray(render_scene(scene, size), dtype=np.uint8)
            for k in range(frames_per_scene):
                pixels = base.copy()
                bar = int(size[0] * (k + 1) / frames_per_scene)
                pixels[-6:, :bar] = 255
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = pts
                pts += 1
                container.mux(video.encode(frame))
        container.mux(video.encode(None))

        if audio_stream is not None and audio is not None:
            mux_audio(container, audio_stream, audio)

        if sub_stream is not None:
            for cue in cues:
                text = cue.text.encode("utf-8")
                payload = struct.pack(">H", len(text)) + text if subtitle_codec == "mov_text" else text
                packet = av.Packet(payload)
                packet.stream = sub_stream
                packet.time_base = _MS
                packet.pts = packet.dts = round(cue.start * 1000)
                packet.duration = round((cue.end - cue.start) * 1000)
                container.mux(packet)
    except BaseException:
        container.close()
        path.unlink(missing_ok=True)
        raise
    container.close()

    return SampleInfo(
        path=path,
        duration=round(len(scenes) * scene_seconds, 3),
        size=size,
        fps=fps,
        scenes=truths,
        subtitles=cues if with_subtitles else [],
        speech=phrases,
        has_audio=audio is not None,
    )
