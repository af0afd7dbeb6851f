"""Cut windows out of videos into H.264 MP4 files, optionally joined into one reel with a title card each.

Blocking work (PyAV): run it in a worker thread. Every output frame is decoded and re-encoded: a stream
copy can only start on a key frame, which may be seconds before the moment, while re-encoding starts on
the exact frame shown at the window's start. The sources are the API's media URLs: the sandbox's signed
MP4 and the cloud's HLS playlists, which FFmpeg reads through the network protocols whitelisted here only
(never `file:`, so a playlist cannot point the decoder at local files).
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

from tl_mcp.samples import SceneSpec, render_scene

#: Title cards last this long; their background is this colour (a test counts them by it).
CARD_SECONDS = 1.5
CARD_BACKGROUND = (16, 16, 16)
_PROTOCOLS = "http,https,tls,tcp,hls,crypto"
_OPEN_TIMEOUT_US = str(30_000_000)
_DEFAULT_FPS = 25


class CutError(Exception):
    """A source could not be read or cut; the message says which moment and why (never its URL)."""


@dataclass(frozen=True)
class Segment:
    """One window of one source; `label` names it in errors, `title` is its card's text in a reel."""

    url: str
    start: float
    end: float
    label: str
    title: str


#: (segments finished, frames written so far, bytes written so far) after each step; may raise to stop.
Progress = Callable[[int, int, int], None]


def encoder_name() -> str:
    """libx264 where FFmpeg has it (smaller files, plays everywhere), else FFmpeg's own MPEG-4 Part 2."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _open(url: str, label: str) -> InputContainer:
    try:
        return av.open(
            url,
            "r",
            options={"protocol_whitelist": _PROTOCOLS, "rw_timeout": _OPEN_TIMEOUT_US},
            timeout=30.0,
        )
    except av.FFmpegError as exc:
        raise CutError(f"{label}: the media could not be opened ({type(exc).__name__}).") from None


def probe(segment: Segment) -> tuple[int, int, fractions.Fraction]:
    """(width, height, frame rate) of the segment's source."""
    with _open(segment.url, segment.label) as source:
        if not source.streams.video:
            raise CutError(f"{segment.label}: the media has no video stream.")
        stream = source.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or fractions.Fraction(_DEFAULT_FPS)
        return stream.codec_context.width, stream.codec_context.height, fractions.Fraction(rate)


class _Writer:
    """One output MP4 at a fixed size and frame rate; frames are placed by their time in the output."""

    def __init__(self, file: BinaryIO, width: int, height: int, fps: fractions.Fraction) -> None:
        self.file = file
        self.width, self.height, self.fps = width, height, fps
        # The file the write policy opened, never a path: reopening one could follow a swapped-in link.
        self.container: OutputContainer = av.open(file, "w", format="mp4")
        stream = self.container.add_stream(encoder_name(), rate=fps)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "veryfast", "crf": "20"}
        else:
            stream.bit_rate = 4_000_000
        self.stream = stream
        self.tick = 1 / fps
        self.frames = 0

    def put(self, frame: av.VideoFrame) -> None:
        out = frame.reformat(self.width, self.height, format="yuv420p")
        # Decoded frames carry their source's time base; the grid's is one tick per output frame.
        out.pts = self.frames
        out.time_base = self.tick
        self.container.mux(self.stream.encode(out))
        self.frames += 1

    def close(self) -> int:
        try:
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()
        return self.size

    @property
    def size(self) -> int:
        return os.fstat(self.file.fileno()).st_size


def _card(title: str, width: int, height: int) -> av.VideoFrame:
    image = render_scene(SceneSpec(title, "", CARD_BACKGROUND), (width, height))
    return av.VideoFrame.from_ndarray(np.asarray(image, dtype=np.uint8), format="rgb24")


def _cut_into(writer: _Writer, segment: Segment, step: Callable[[], None]) -> None:
    """Write the frames shown during [start, end) of the segment, on the writer's frame grid."""
    try:
        _decode_into(writer, segment, step)
    except av.FFmpegError as exc:
        # FFmpeg's message quotes the URL, which carries the media signature: name only the kind.
        raise CutError(f"{segment.label}: reading the media failed ({type(exc).__name__}).") from None


def _decode_into(writer: _Writer, segment: Segment, step: Callable[[], None]) -> None:
    with _open(segment.url, segment.label) as source:
        if not source.streams.video:
            raise CutError(f"{segment.label}: the media has no video stream.")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        wanted = max(1, round((segment.end - segment.start) * writer.fps))
        first = writer.frames
        # Seek to the key frame at or before the start, then decode up to the start: the frame shown
        # at `start` is the last one whose time is not after it.
        if segment.start > 0 and stream.time_base is not None:
            source.seek(int(segment.start / stream.time_base), stream=stream, backward=True)
        slot = 0  # output frame `slot` shows what is on screen at start + slot / fps
        shown: av.VideoFrame | None = None
        for frame in source.decode(stream):
            t = frame.time
            if t is None:
                continue
            # A frame later than the slot's time ends the previous frame's stay on screen at that slot.
            while slot < wanted and t > segment.start + slot / writer.fps + 1e-6:
                writer.put(shown or frame)
                step()
                slot += 1
            if slot == wanted:
                return
            shown = frame
        # The source ended: its last frame stays on screen for the rest of the window.
        while shown is not None and slot < wanted:
            writer.put(shown)
            step()
            slot += 1
        if writer.frames == first:
            raise CutError(f"{segment.label}: no frame was decoded in the window.")


def cut(
    segments: Sequence[Segment], outputs: Sequence[BinaryIO], *, reel: bool, progress: Progress
) -> list[int]:
    """Write `segments` to `outputs` (one each, or all into `outputs[0]` when `reel`); sizes in bytes."""
    width, height, fps = probe(segments[0])
    width, height = width - width % 2, height - height % 2
    done = 0
    written = 0
    frames = 0

    def step() -> None:
        nonlocal frames
        frames += 1
        if frames % 25 == 0:
            progress(done, frames, written)

    sizes: list[int] = []
    if reel:
        writer = _Writer(outputs[0], width, height, fps)
        try:
            for segment in segments:
                card = _card(segment.title, width, height)
                for _ in range(round(CARD_SECONDS * fps)):
                    writer.put(card)
                    step()
                _cut_into(writer, segment, step)
                done += 1
                written = writer.size
                progress(done, frames, written)
        finally:
            sizes.append(writer.close())
        return sizes
    for segment, path in zip(segments, outputs, strict=True):
        own_w, own_h, own_fps = probe(segment)
        writer = _Writer(path, own_w - own_w % 2, own_h - own_h % 2, own_fps)
        try:
            _cut_into(writer, segment, step)
        finally:
            sizes.append(writer.close())
        done += 1
        written = sum(sizes)
        progress(done, frames, written)
    return sizes
