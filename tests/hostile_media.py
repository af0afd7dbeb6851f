"""Hostile media built in the test, small on disk and cheap to make: files that reference other files
(HLS playlists, concat lists), a Matroska file whose header lies about its length, a PNG whose header
declares a huge picture, an AAC stream with the most packets per byte. Shared by tests/sandbox (HTTP API)
and tests/reliability (MCP tool path)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import av
import numpy as np

#: EBML id and size byte of Matroska's Segment/Info/Duration (an 8-byte float, in TimecodeScale units: ms).
_MKV_DURATION = b"\x44\x89\x88"


def mpegts_copy(src: Path, dest: Path) -> Path:
    """Remux the video track of ``src`` into MPEG-TS: the segment format HLS players (and FFmpeg) follow."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="mpegts") as out:
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = target
            out.mux(packet)
    return dest


def referencing_files(outside: Path, stored_in: Path) -> dict[str, str]:
    """Texts that make a naive FFmpeg open ``outside``: by absolute path, by file:// URL, by ``../`` path
    (relative to ``stored_in``, the folder the file ends up in), and an ffconcat list."""
    relative = os.path.relpath(outside, stored_in)
    assert relative.startswith(".."), relative
    hls = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:6.0,\n{}\n#EXT-X-ENDLIST\n"
    return {
        "hls-absolute": hls.format(outside),
        "hls-file-url": hls.format(outside.as_uri()),
        "hls-relative": hls.format(relative),
        "ffconcat": f"ffconcat version 1.0\nfile '{outside}'\n",
    }


def mka_declaring(path: Path, seconds: float) -> Path:
    """A ~6 KB Matroska audio file (1 s of AAC) whose header declares ``seconds`` of media."""
    rate = 8000
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        tone = (0.3 * np.sin(np.arange(1024) * 0.1)).astype(np.float32).reshape(1, -1)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = path.read_bytes()
    at = data.find(_MKV_DURATION)
    assert at > 0, "the muxer wrote no 8-byte Duration element"
    value = at + len(_MKV_DURATION)
    path.write_bytes(data[:value] + struct.pack(">d", seconds * 1000.0) + data[value + 8 :])
    return path


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` (all black): kilobytes on disk, gigabytes once
    decoded to RGB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def silent_adts(path: Path, seconds: float, rate: int = 96_000) -> Path:
    """An AAC (ADTS) stream of ``seconds`` of silence: one encoded silent frame repeated, so it is written at
    once however long it is, and holds the most packets per byte (1024 samples in ~11 bytes each)."""
    encoded = io.BytesIO()
    with av.open(encoded, "w", format="adts") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
    data = encoded.getvalue()
    frames, at = [], 0
    while at < len(data):  # ADTS: each frame's header carries its length in 13 bits
        length = ((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5)
        frames.append(data[at : at + length])
        at += length
    steady = frames[len(frames) // 2]  # past the encoder's priming frames
    path.write_bytes(steady * round(seconds * rate / 1024))
    return path
