"""Vectors of media sent to the embed routes (``/embed`` and ``/embed-v2``), made on a worker thread; media
that does not decode is a 400."""

from __future__ import annotations

from pathlib import Path

import anyio
import av

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import invalid
from tl_mcp.sandbox.media import MediaError, load_image_rgb
from tl_mcp.sandbox.perception.audio import audio_features
from tl_mcp.sandbox.perception.base import FloatArray


async def audio_vector(engine: Engine, data: bytes, start: float, end: float | None) -> FloatArray:
    """The audio fingerprint of uploaded bytes, on a worker thread: it decodes and transforms all of it."""

    def features() -> FloatArray:
        path = engine.tmp_path(".audio")
        path.write_bytes(data)
        try:
            return audio_features(path, engine.limits, start, end)
        except (MediaError, av.FFmpegError) as exc:
            raise invalid(f"The audio could not be decoded ({exc}).") from exc
        finally:
            path.unlink(missing_ok=True)

    return await anyio.to_thread.run_sync(features)


async def image_vector(engine: Engine, source: bytes | Path, *, nested: bool = False) -> FloatArray:
    """The embedding of an image, decoded and embedded on a worker thread (a large picture takes a second)."""

    def vector() -> FloatArray:
        try:
            return engine.analyzers.image.embed_image(load_image_rgb(source, engine.limits))
        except MediaError as exc:
            raise invalid(exc.message, nested=nested) from exc

    return await anyio.to_thread.run_sync(vector)
