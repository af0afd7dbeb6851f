"""PyAV media engine: probe, streaming scene segmentation with key frames, embedded subtitles, thumbnails.

Frames are decoded one at a time and dropped as soon as they are measured; only one key frame per segment is
kept (at thumbnail size, plus the RGB array handed to the analyzers), so memory does not grow with length.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from tl_mcp.sandbox.analyzers.base import Frame, TimedText

log = logging.getLogger(__name__)

#: Mean absolute difference of 1/8-scale grey frames (0-255) above which a new scene starts.
SCENE_DIFF = 12.0
#: Frames are measured this many times per second (at most).
SAMPLE_FPS = 4.0
#: A scene change closer than this to the segment start is folded into the segment (flashes, fades).
MIN_SEGMENT_S = 1.0
AUDIO_SEGMENT_S = 6.0

IMAGE_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}


class MediaError(Exception):
    """The file cannot be used; ``code`` is the TwelveLabs error code to report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Probe:
    kind: str  # "video" | "audio" | "image"
    mime: str
    container: str
    size: int
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    bit_rate: int | None = None
    subtitle_tracks: int = 0
    video_streams: int = 0
    audio_streams: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        return cls(**data)


def probe(path: Path) -> Probe:
    """Read what is in a media or image file without decoding it all. Raises :class:`MediaError`."""
    size = path.stat().st_size
    if size == 0:
        raise MediaError("video_file_broken", "The file is empty.")
    image = _probe_image(path, size)
    if image is not None:
        return image
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(
            "video_file_broken", f"The file could not be read as video, audio or image ({exc})."
        ) from exc
    with container:
        videos = [s for s in container.streams.video if s.codec_context is not None]
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise MediaError("video_file_broken", "The file has no video or audio stream.")
        duration = _duration(container)
        result = Probe(
            kind="video" if videos else "audio",
            mime=_mime(container.format.name, bool(videos)),
            container=container.format.name,
            size=size,
            duration=duration,
            bit_rate=int(container.bit_rate) if container.bit_rate else None,
            subtitle_tracks=len(container.streams.subtitles),
            video_streams=len(videos),
            audio_streams=len(audios),
        )
        if videos:
            vs = videos[0]
            result.width, result.height = vs.codec_context.width, vs.codec_context.height
            rate = vs.average_rate or vs.guessed_rate
            result.fps = round(float(rate), 3) if rate else None
            result.video_codec = vs.codec_context.name
            if not result.width or not result.height:
                raise MediaError("video_file_broken", "The video stream has no picture size.")
            _check_decodable(container, vs)
        if audios:
            a = audios[0]
            result.audio_codec = a.codec_context.name
            result.audio_sample_rate = a.codec_context.sample_rate
            result.audio_channels = a.codec_context.channels
    if not result.duration or result.duration <= 0:
        raise MediaError("video_file_broken", "The media duration could not be determined.")
    return result


def _probe_image(path: Path, size: int) -> Probe | None:
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            fmt = img.format or ""
            width, height = img.size
    except Exception:
        return None
    if fmt not in IMAGE_TYPES:
        return None
    return Probe(
        kind="image", mime=IMAGE_TYPES[fmt], container=fmt.lower(), size=size, width=width, height=height
    )


def _duration(container: Any) -> float | None:
    if container.duration:
        return round(float(container.duration) / 1_000_000, 3)
    best = 0.0
    for stream in container.streams:
        if stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return round(best, 3) or None


def _check_decodable(container: Any, stream: Any) -> None:
    try:
        for frame in container.decode(stream):
            if frame is not None:
                return
    except av.FFmpegError as exc:
        raise MediaError("video_file_broken", f"The video stream cannot be decoded ({exc}).") from exc
    raise MediaError("video_file_broken", "The video stream contains no decodable frame.")


def _mime(fmt: str, has_video: bool) -> str:
    names = fmt.split(",")
    if "mp4" in names or "mov" in names:
        return "video/mp4" if has_video else "audio/mp4"
    if "matroska" in names or "webm" in names:
        return "video/x-matroska" if has_video else "audio/x-matroska"
    if "mp3" in names:
        return "audio/mpeg"
    if "wav" in names:
        return "audio/wav"
    if "ogg" in names:
        return "audio/ogg"
    return ("video/" if has_video else "audio/") + names[0]


@dataclass(slots=True)
class Segment:
    start: float
    end: float
    key_time: float
    key_frame: Frame | None = None
    thumbnail_jpeg: bytes | None = None


@dataclass(slots=True)
class Scan:
    segments: list[Segment] = field(default_factory=list)
    subtitles: list[TimedText] = field(default_factory=list)


def jpeg_thumbnail(frame: Frame, width: int = 320) -> bytes:
    image = Image.fromarray(frame)
    height = max(1, round(image.height * width / image.width))
    buf = io.BytesIO()
    image.resize((width, height)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def scan_video(
    path: Path,
    duration: float,
    *,
    max_segment_s: float = 10.0,
    on_key_frame: Callable[[float, Frame], None] | None = None,
    keep_key_frames: bool = True,
) -> Scan:
    """Cut the video into segments at scene changes (bounded to ``max_segment_s``) and pick one key frame per
    segment, taken ~0.5 s after the cut so transitions settle. ``on_key_frame`` sees each key frame (for
    OCR) as its segment closes; with ``keep_key_frames=False`` the frame is dropped right after, so memory
    stays flat however long the video is."""
    scan = Scan()
    step = 1.0 / SAMPLE_FPS
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        previous: npt.NDArray[np.float32] | None = None
        seg_start = 0.0
        key: tuple[float, Frame] | None = None
        next_t = 0.0
        last_t = 0.0
        for frame in container.decode(stream):
            t = frame.time
            if t is None or t + 1e-6 < next_t:
                continue
            next_t = t + step
            last_t = t
            grey = frame.reformat(
                width=max(1, frame.width // 8), height=max(1, frame.height // 8), format="gray"
            )
            small = grey.to_ndarray().astype(np.float32)
            changed = previous is not None and float(np.abs(small - previous).mean()) > SCENE_DIFF
            previous = small
            too_long = t - seg_start >= max_segment_s
            if (changed and t - seg_start >= MIN_SEGMENT_S) or too_long:
                scan.segments.append(_close_segment(seg_start, t, key, on_key_frame, keep_key_frames))
                seg_start, key = t, None
            if key is None or (key[0] < seg_start + 0.5 <= t and t - seg_start <= 1.0):
                key = (t, _rgb(frame))
        end = max(duration, last_t)
        scan.segments.append(_close_segment(seg_start, end, key, on_key_frame, keep_key_frames))
    scan.subtitles = read_subtitles(path)
    return scan


def _rgb(frame: Any) -> Frame:
    width, height = frame.width, frame.height
    scale = min(1.0, 1280 / max(width, height))
    if scale < 1.0:
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    rgb: Frame = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    return rgb


def _close_segment(
    start: float,
    end: float,
    key: tuple[float, Frame] | None,
    on_key_frame: Callable[[float, Frame], None] | None,
    keep_key_frame: bool,
) -> Segment:
    seg = Segment(round(start, 3), round(end, 3), round(key[0], 3) if key else round(start, 3))
    if key is not None:
        if keep_key_frame:
            seg.key_frame = key[1]
        seg.thumbnail_jpeg = jpeg_thumbnail(key[1])
        if on_key_frame is not None:
            on_key_frame(key[0], key[1])
    return seg


def audio_segments(duration: float, length: float = AUDIO_SEGMENT_S) -> list[Segment]:
    out: list[Segment] = []
    t = 0.0
    while t < duration - 1e-6:
        end = min(duration, t + length)
        out.append(Segment(round(t, 3), round(end, 3), round(t, 3)))
        t = end
    return out


def read_subtitles(path: Path) -> list[TimedText]:
    """Every cue of every embedded text subtitle track (mov_text, subrip, ass, webvtt)."""
    cues: list[TimedText] = []
    with av.open(str(path)) as container:
        streams = list(container.streams.subtitles)
        if not streams:
            return cues
        for packet in container.demux(*streams):
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            end = start + float((packet.duration or 0) * packet.time_base)
            try:
                subs = packet.decode()
            except av.FFmpegError:
                log.warning("skipping an undecodable subtitle packet at %.2fs", start)
                continue
            for sub in subs:
                text = _subtitle_text(sub)
                if text:
                    cues.append(TimedText(round(start, 3), round(max(end, start), 3), text, "subtitle"))
    cues.sort(key=lambda c: c.start)
    return cues


def _subtitle_text(sub: Any) -> str:
    raw = getattr(sub, "dialogue", None) or getattr(sub, "text", None) or b""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    text = text.replace("\\N", " ").replace("\\n", " ")
    # Drop ASS override tags like {\i1}.
    while "{" in text and "}" in text[text.index("{") :]:
        a = text.index("{")
        b = text.index("}", a)
        text = text[:a] + text[b + 1 :]
    return " ".join(text.split())


def load_image_rgb(data: bytes) -> Frame:
    """Decode image bytes to an RGB array; raises MediaError for anything Pillow cannot read."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr: Frame = np.asarray(img.convert("RGB"), dtype=np.uint8)
            return arr
    except Exception as exc:
        raise MediaError(
            "parameter_invalid", f"The image could not be decoded ({exc}); send a JPEG or PNG."
        ) from exc


def audio_features(
    path: Path, start: float = 0.0, end: float | None = None, dim: int = 128
) -> npt.NDArray[np.float32]:
    """A unit vector describing the sound between ``start`` and ``end``: mean log power in ``dim`` bands of
    16 kHz spectrum. Useful for same-or-similar audio matching, not for meaning."""
    from tl_mcp.sandbox.analyzers.audio import SAMPLE_RATE, iter_audio_chunks

    acc = np.zeros(dim, dtype=np.float64)
    windows = 0
    n_fft = 1024
    for offset, samples in iter_audio_chunks(path, chunk_seconds=10.0):
        a = max(0, int((start - offset) * SAMPLE_RATE))
        b = len(samples) if end is None else min(len(samples), int((end - offset) * SAMPLE_RATE))
        piece = samples[a:b]
        for i in range(0, len(piece) - n_fft + 1, n_fft):
            spectrum = np.abs(np.fft.rfft(piece[i : i + n_fft] * np.hanning(n_fft))) ** 2
            bands = np.array_split(spectrum[1:], dim)
            acc += np.log1p(np.array([band.mean() for band in bands]) * 1e4)
            windows += 1
    if windows == 0:
        raise MediaError("parameter_invalid", "The audio is shorter than 0.07 s or has no audio stream.")
    vec = (acc / windows).astype(np.float32)
    vec -= vec.mean()
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec
