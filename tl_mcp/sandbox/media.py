"""PyAV media engine: probe, streaming scene segmentation with key frames, embedded subtitles, thumbnails.

Frames are decoded one at a time and dropped as soon as they are measured; only one key frame per segment is
kept (at thumbnail size, plus the RGB array handed to the analyzers), so memory does not grow with length.

Every file is hostile until shown otherwise. All decoding goes through :func:`open_media` (audio/video) or
:func:`load_image_rgb` (pictures); both pick the decoder from the file's bytes among an allow-list, never
from its name, and refuse anything that would make FFmpeg open another file or URL. How much a file may
make the sandbox decode is set by :class:`MediaLimits` and counted from what is really in the file (packets
demuxed, frames decoded), never from what its header declares.

It stays one module (about 600 lines) on purpose: the allow-lists, the limits and every decode loop that
must honour them are one security boundary, read and reviewed together; split, a new decode path could
bypass :func:`open_media` unnoticed.
"""

from __future__ import annotations

import io
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from tl_mcp.redaction import display_url

log = logging.getLogger(__name__)

#: Mean absolute difference of 1/8-scale frames (0-255) in any one colour channel above which a new scene
#: starts. Per channel, not in grey: a green picture cut to a grey one of the same brightness is a cut.
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

#: The FFmpeg demuxers the sandbox decodes, matched against the one FFmpeg detects from the file's bytes.
#: Each reads a single self-contained file. Left out on purpose: playlists and manifests (hls, dash),
#: concat lists, image sequences (image2 and its patterns), and every other demuxer that opens further
#: files or URLs named inside the file.
DEMUXERS = ("mov", "matroska", "avi", "mpegts", "mpeg", "flv", "ogg", "wav", "mp3", "flac", "aac")
CONTAINERS_TEXT = "MP4/MOV, Matroska/WebM, AVI, MPEG-TS, MPEG-PS, FLV, Ogg, WAV, MP3, FLAC, AAC"
_CONTAINER_OPTIONS = {
    "format_whitelist": ",".join(DEMUXERS),
    # No protocol is named "none": a URL opened from inside the file would be refused by FFmpeg too.
    "protocol_whitelist": "none",
    # MOV/MP4 data references to other files (off by default in FFmpeg; pinned so it stays off).
    "enable_drefs": "0",
}
#: Python I/O buffer for the decoders; the file is read through Python so FFmpeg never sees its name.
_IO_BUFFER = 256 * 1024
#: The decode loops look at the process's memory this often (frames / chunks).
_MEMORY_CHECK_EVERY = 16

#: Where a piece of text in a video came from. `subtitle` is an embedded subtitle track,
#: `speech` is speech-to-text, `ocr` is text drawn on screen.
TextSource = Literal["subtitle", "speech", "ocr"]

Frame = npt.NDArray[np.uint8]  # H x W x 3, RGB


@dataclass(frozen=True, slots=True)
class TimedText:
    """A piece of text found in a video, with the seconds it covers. Decoding yields the subtitle ones;
    the analyzers in :mod:`tl_mcp.sandbox.perception` add speech and on-screen text in the same shape."""

    start: float
    end: float
    text: str
    source: TextSource
    confidence: float = 1.0


class MediaError(Exception):
    """The file cannot be used; ``code`` is the TwelveLabs error code to report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """How much one file may make the sandbox decode (the settings live in ``SandboxConfig``)."""

    #: Longest media, in seconds: by its header and by the timestamps of the packets it really holds.
    max_duration_s: float = 4 * 3600.0
    #: Largest picture (width x height), for video frames and images alike; 8K UHD by default.
    max_pixels: int = 7680 * 4320
    #: Most video frames (and, separately, subtitle cues) one file may hold.
    max_frames: int = 1_000_000
    #: Most the process may grow while one decode pass runs; past it the pass fails.
    max_memory_bytes: int = 2 * 1024**3

    def check(self, info: Probe) -> None:
        """Raise :class:`MediaError` when ``info`` is over a limit (a probe stored before these limits)."""
        if info.duration is not None and info.duration > self.max_duration_s:
            raise MediaError(
                "video_duration_too_long",
                f"The media is {info.duration:.0f} s long; this sandbox takes at most "
                f"{self.max_duration_s:g} s (TL_MCP_SANDBOX_MAX_DURATION_S). Cut it shorter.",
            )
        if info.width and info.height:
            _check_pixels(info.width, info.height, self)


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


# ----- the one way in ---------------------------------------------------------------------------------------
def _refuse_nested_open(url: str, flags: int, options: dict[str, Any]) -> NoReturn:
    shown = display_url(url)[:200]
    raise PermissionError(f"the media file tried to open {shown!r}; files that open others are refused")


@contextmanager
def open_media(path: Path, limits: MediaLimits) -> Iterator[Any]:
    """Open an audio/video file for demuxing and decoding, the only way the sandbox does.

    FFmpeg reads the file through a Python file object whose name is a descriptor number, so the suffix a
    client chose cannot pick (or hint) a demuxer; the demuxer is detected from the bytes and must be one of
    :data:`DEMUXERS`; nothing inside the file can open another file or URL (FFmpeg's nested opens come back
    to :func:`_refuse_nested_open`, and no protocol is whitelisted); decoders refuse pictures larger than
    ``limits.max_pixels`` before allocating them. Raises :class:`MediaError` for anything else."""
    pixels = {"max_pixels": str(limits.max_pixels)}
    with os.fdopen(os.open(path, os.O_RDONLY), "rb") as file:
        try:
            container = av.open(
                file,
                options=pixels,  # applies to the decoding stream-info probing does
                container_options=_CONTAINER_OPTIONS,
                io_open=_refuse_nested_open,
                buffer_size=_IO_BUFFER,
            )
        except (av.FFmpegError, PermissionError, UnicodeDecodeError) as exc:
            raise MediaError(
                "video_file_broken",
                f"The file is not video, audio or an image in a format this sandbox decodes "
                f"({getattr(exc, 'strerror', None) or exc}). "
                f"Accepted containers: {CONTAINERS_TEXT}; images: {', '.join(IMAGE_TYPES)}. Playlists "
                "(HLS .m3u8), concat lists and other files that reference further files are refused.",
            ) from exc
        with container:
            detected = set(container.format.name.split(","))
            if not detected & set(DEMUXERS):  # FFmpeg ignoring format_whitelist must not get past here
                raise MediaError(
                    "video_file_broken",
                    f"The file's container ({container.format.name}) is not one this sandbox decodes. "
                    f"Accepted containers: {CONTAINERS_TEXT}.",
                )
            for stream in container.streams:
                if stream.codec_context is not None:
                    stream.codec_context.options = dict(pixels)
            yield container


def _read_only(container: Any, streams: list[Any]) -> None:
    """Have the demuxer skip every stream of ``container`` but ``streams``: a pass over one track of a file
    need not read (or copy through Python) the packets of the others."""
    wanted = {s.index for s in streams}
    for other in container.streams:
        if other.index not in wanted:
            other.discard = av.stream.Discard.all


def decode(container: Any, stream: Any, limits: MediaLimits) -> Iterator[Any]:
    """The decoded frames of one stream of an :func:`open_media` container (whose other streams are no
    longer read), failing the pass with a :class:`MediaError` once it decodes more than the limits allow:
    frames, seconds (from the frames actually decoded) or memory (the process's growth since the pass
    began)."""
    _read_only(container, [stream])
    video = stream.type == "video"
    baseline = _rss_bytes()
    first: float | None = None
    seconds = 0.0
    count = 0
    try:
        for frame in container.decode(stream):
            count += 1
            if video:
                if count > limits.max_frames:
                    raise MediaError(
                        "video_file_broken",
                        f"The video holds more than {limits.max_frames} frames, this sandbox's limit "
                        "(TL_MCP_SANDBOX_MAX_FRAMES).",
                    )
                if frame.time is not None:
                    first = frame.time if first is None else first
                    seconds = frame.time - first
            else:
                seconds += frame.samples / (frame.sample_rate or 1)
            if seconds > limits.max_duration_s:
                raise MediaError(
                    "video_duration_too_long",
                    f"The media holds more than {limits.max_duration_s:g} s, this sandbox's limit "
                    "(TL_MCP_SANDBOX_MAX_DURATION_S).",
                )
            if count % _MEMORY_CHECK_EVERY == 0:
                grown = _rss_bytes() - baseline
                if grown > limits.max_memory_bytes:
                    raise MediaError(
                        "video_file_broken",
                        f"Decoding grew the sandbox by {grown // 2**20} MiB, over its "
                        f"{limits.max_memory_bytes // 2**20} MiB limit per decode "
                        "(TL_MCP_SANDBOX_MAX_DECODE_MEMORY_BYTES); the file was given up.",
                    )
            yield frame
    except av.FFmpegError as exc:
        raise MediaError(
            "video_file_broken", f"The {stream.type} stream cannot be decoded after {seconds:.1f} s ({exc})."
        ) from exc


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is the best the platform offers, and it only grows
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# ----- probe ------------------------------------------------------------------------------------------------
def probe(path: Path, limits: MediaLimits) -> Probe:
    """Read what is in a media or image file and check it against ``limits``. The duration is the span of the
    packet timestamps really in the file (every packet is demuxed once, none decoded past the first picture).
    Raises :class:`MediaError`."""
    size = path.stat().st_size
    if size == 0:
        raise MediaError("video_file_broken", "The file is empty.")
    image = _probe_image(path, size, limits)
    if image is not None:
        return image
    with open_media(path, limits) as container:
        videos = [s for s in container.streams.video if s.codec_context is not None]
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise MediaError("video_file_broken", "The file has no video or audio stream.")
        declared = _duration(container)
        result = Probe(
            kind="video" if videos else "audio",
            mime=_mime(container.format.name, bool(videos)),
            container=container.format.name,
            size=size,
            duration=declared,
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
        if audios:
            a = audios[0]
            result.audio_codec = a.codec_context.name
            result.audio_sample_rate = a.codec_context.sample_rate
            result.audio_channels = a.codec_context.channels
        if declared is not None and declared > limits.max_duration_s:
            raise MediaError(
                "video_duration_too_long",
                f"The file declares {declared:.0f} s of media; this sandbox takes at most "
                f"{limits.max_duration_s:g} s (TL_MCP_SANDBOX_MAX_DURATION_S). Cut it shorter, or fix its "
                "header if it is really shorter.",
            )
        limits.check(result)
        if videos:
            _check_decodable(container, videos[0], limits)
    # A second pass from the start: the first one decoded until the first picture.
    measured = _measured_duration(path, limits)
    result.duration = measured or result.duration
    if not result.duration or result.duration <= 0:
        raise MediaError("video_file_broken", "The media duration could not be determined.")
    return result


def _measured_duration(path: Path, limits: MediaLimits) -> float | None:
    """The span of the timestamps of the packets the decoders will read (first video and audio tracks,
    subtitle tracks), failing as soon as it or the count of frames or cues goes past ``limits``."""
    with open_media(path, limits) as container:
        video = next((s for s in container.streams.video if s.codec_context is not None), None)
        audio = next(iter(container.streams.audio), None)
        streams = [s for s in (video, audio) if s is not None] + list(container.streams.subtitles)
        _read_only(container, streams)
        # Looked up by stream index, as plain floats: this loop runs once per packet (a long AAC file holds
        # hundreds of thousands of them), and Fraction arithmetic per packet would make it several times
        # slower than the demuxing itself.
        tick = {s.index: float(s.time_base) for s in streams if s.time_base}
        counted = {s.index: s.type for s in streams if s.type in ("video", "subtitle")}
        counts = dict.fromkeys(counted.values(), 0)
        first = math.inf
        last = 0.0
        try:
            for packet in container.demux(*streams):
                index = packet.stream_index
                kind = counted.get(index)
                if kind is not None:
                    counts[kind] += 1
                    if counts[kind] > limits.max_frames:
                        noun = "frames" if kind == "video" else "subtitle cues"
                        raise MediaError(
                            "video_file_broken",
                            f"The file holds more than {limits.max_frames} {noun}, this sandbox's limit "
                            "(TL_MCP_SANDBOX_MAX_FRAMES).",
                        )
                pts = packet.pts
                seconds = tick.get(index)
                if pts is None or seconds is None:
                    continue
                start = pts * seconds
                end = start + (packet.duration or 0) * seconds
                if start < first or end > last:
                    first, last = min(first, start), max(last, end)
                    if last - first > limits.max_duration_s:
                        raise MediaError(
                            "video_duration_too_long",
                            f"The file holds packets spanning more than {limits.max_duration_s:g} s, this "
                            "sandbox's limit (TL_MCP_SANDBOX_MAX_DURATION_S).",
                        )
        except av.FFmpegError as exc:
            # A damaged tail: the decoders stop at the same place, so what came before is what counts.
            log.info("media readable up to %.1f s only (%s)", last, exc)
    if first == math.inf:
        return None
    # Encoder priming (AAC) starts before 0; it is not media the listener hears.
    return round(last - max(first, 0.0), 3) or None


def _probe_image(path: Path, size: int, limits: MediaLimits) -> Probe | None:
    """A picture Pillow reads as one of :data:`IMAGE_TYPES` (from its bytes), checked against the pixel limit
    from its header before anything is decoded; None when the file is not such a picture."""
    try:
        with Image.open(path, formats=list(IMAGE_TYPES)) as img:
            fmt = img.format or ""
            width, height = img.size
            _check_pixels(width, height, limits)
            img.verify()
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError("video_resolution_too_high", f"The image is too large to decode ({exc}).") from exc
    except Exception:
        return None
    return Probe(
        kind="image", mime=IMAGE_TYPES[fmt], container=fmt.lower(), size=size, width=width, height=height
    )


def _check_pixels(width: int, height: int, limits: MediaLimits) -> None:
    if width * height > limits.max_pixels:
        raise MediaError(
            "video_resolution_too_high",
            f"The picture is {width}x{height} ({width * height} pixels); this sandbox takes at most "
            f"{limits.max_pixels} pixels (TL_MCP_SANDBOX_MAX_PIXELS). Scale it down.",
        )


def load_image_rgb(source: bytes | Path, limits: MediaLimits, *, code: str = "parameter_invalid") -> Frame:
    """Decode an image (bytes or a file) to an RGB array: one of :data:`IMAGE_TYPES`, at most
    ``limits.max_pixels``, first frame only. Raises :class:`MediaError` with ``code`` otherwise."""
    try:
        file = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(file, formats=list(IMAGE_TYPES)) as img:
            _check_pixels(*img.size, limits)
            arr: Frame = np.asarray(img.convert("RGB"), dtype=np.uint8)
            return arr
    except MediaError as exc:
        raise MediaError(code, exc.message) from exc
    except Exception as exc:
        raise MediaError(code, f"The image could not be decoded ({exc}); send a JPEG or PNG.") from exc


def _duration(container: Any) -> float | None:
    if container.duration:
        return round(float(container.duration) / 1_000_000, 3)
    best = 0.0
    for stream in container.streams:
        if stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return round(best, 3) or None


def _check_decodable(container: Any, stream: Any, limits: MediaLimits) -> None:
    for frame in decode(container, stream, limits):
        if frame is not None:
            return
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
    limits: MediaLimits,
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
    with open_media(path, limits) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        previous: npt.NDArray[np.float32] | None = None
        seg_start = 0.0
        key: tuple[float, Frame] | None = None
        next_t = 0.0
        last_t = 0.0
        for frame in decode(container, stream, limits):
            t = frame.time
            if t is None or t + 1e-6 < next_t:
                continue
            next_t = t + step
            last_t = t
            thumb = frame.reformat(
                width=max(1, frame.width // 8), height=max(1, frame.height // 8), format="rgb24"
            )
            small = thumb.to_ndarray().astype(np.float32)
            changed = (
                previous is not None and float(np.abs(small - previous).mean(axis=(0, 1)).max()) > SCENE_DIFF
            )
            previous = small
            too_long = t - seg_start >= max_segment_s
            if (changed and t - seg_start >= MIN_SEGMENT_S) or too_long:
                scan.segments.append(_close_segment(seg_start, t, key, on_key_frame, keep_key_frames))
                seg_start, key = t, None
            if key is None or (key[0] < seg_start + 0.5 <= t and t - seg_start <= 1.0):
                key = (t, _rgb(frame))
        end = max(duration, last_t)
        scan.segments.append(_close_segment(seg_start, end, key, on_key_frame, keep_key_frames))
    scan.subtitles = read_subtitles(path, limits)
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


def read_subtitles(path: Path, limits: MediaLimits) -> list[TimedText]:
    """Every cue of every embedded text subtitle track (mov_text, subrip, ass, webvtt), at most
    ``limits.max_frames`` of them."""
    cues: list[TimedText] = []
    with open_media(path, limits) as container:
        streams = list(container.streams.subtitles)
        if not streams:
            return cues
        _read_only(container, streams)
        for packet in container.demux(*streams):
            if len(cues) >= limits.max_frames:
                raise MediaError(
                    "video_file_broken",
                    f"The file holds more than {limits.max_frames} subtitle cues, this sandbox's limit "
                    "(TL_MCP_SANDBOX_MAX_FRAMES).",
                )
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
