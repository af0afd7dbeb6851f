"""Request bodies that stream from disk in constant memory, reporting bytes sent."""

from __future__ import annotations

import inspect
import mimetypes
import os
import secrets
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import anyio
import httpx2

# (sent_bytes, total_bytes) — total is None when unknown. May be sync or async.
ByteProgress = Callable[[int, int | None], Awaitable[None] | None]

READ_CHUNK = 1024 * 1024


async def report(progress: ByteProgress | None, sent: int, total: int | None) -> None:
    if progress is None:
        return
    result = progress(sent, total)
    if inspect.isawaitable(result):
        await result


class ProgressCounter:
    """Counts bytes across several bodies (e.g. the parts of a multipart upload) against one total."""

    def __init__(self, total: int | None, progress: ByteProgress | None) -> None:
        self.total = total
        self.progress = progress
        self.committed = 0

    async def update(self, in_flight: int) -> None:
        await report(self.progress, self.committed + in_flight, self.total)

    def commit(self, nbytes: int) -> None:
        self.committed += nbytes


#: What an upload reads: a path, opened once for the request, or a binary file the caller opened (and
#: closes). Either way every byte comes from that one descriptor, never from reopening a name that
#: could meanwhile point somewhere else.
FileSource = str | os.PathLike[str] | BinaryIO

# Non-blocking: opening a FIFO (or a device) must not wait for a writer; the type check refuses it.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


@dataclass(frozen=True)
class OpenFile:
    """An open regular file: its descriptor, the name to upload it as, and its size when opened."""

    fd: int
    name: str
    size: int


@contextmanager
def open_source(source: FileSource | None) -> Iterator[OpenFile | None]:
    """`source` as an OpenFile for the block (None stays None); a path is closed afterwards."""
    if source is None:
        yield None
        return
    if not isinstance(source, str | os.PathLike):
        # A file opened from a bare descriptor is named by its number: no use as an upload name.
        name = getattr(source, "name", None)
        yield _described(source.fileno(), os.path.basename(name) if isinstance(name, str) else "upload")
        return
    try:
        fd = os.open(source, _OPEN_FLAGS)
    except OSError:
        raise FileNotFoundError(
            f"{os.fspath(source)} is not a readable file; pass the path of an existing media file"
        ) from None
    try:
        yield _described(fd, os.path.basename(os.fspath(source)))
    finally:
        os.close(fd)


def _described(fd: int, name: str) -> OpenFile:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileNotFoundError(f"{name} is not a regular file; pass the path of an existing media file")
    return OpenFile(fd, name, info.st_size)


async def _read_range(file: OpenFile, offset: int, length: int) -> AsyncIterator[bytes]:
    # Positional reads leave the descriptor's offset alone: a retry or a parallel part reads the same bytes.
    position, remaining = offset, length
    while remaining > 0:
        chunk = await anyio.to_thread.run_sync(os.pread, file.fd, min(READ_CHUNK, remaining), position)
        if not chunk:
            raise OSError(f"{file.name} shrank while it was being uploaded ({remaining} bytes missing)")
        position += len(chunk)
        remaining -= len(chunk)
        yield chunk


class FileSliceStream(httpx2.AsyncByteStream):
    """`length` bytes of `file` from `offset`, read lazily in 1 MiB pieces."""

    def __init__(
        self, file: OpenFile, offset: int, length: int, counter: ProgressCounter | None = None
    ) -> None:
        self.file = file
        self.offset = offset
        self.length = length
        self.counter = counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in _read_range(self.file, self.offset, self.length):
            yield chunk
            sent += len(chunk)
            if self.counter is not None:
                await self.counter.update(sent)


@dataclass(frozen=True)
class FilePart:
    """A file field of a multipart form; only its size is known up front, bytes are read while sending."""

    name: str
    file: OpenFile
    filename: str | None = None
    content_type: str | None = None

    @property
    def size(self) -> int:
        return self.file.size

    @property
    def resolved_filename(self) -> str:
        return self.filename or self.file.name

    @property
    def resolved_content_type(self) -> str:
        return self.content_type or mimetypes.guess_type(self.file.name)[0] or "application/octet-stream"


def _quote(value: str) -> str:
    # RFC 7578 §4.2: escape quotes and line breaks inside the quoted parameter.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass
class MultipartForm:
    """`multipart/form-data` with repeated fields (`search_options=visual&search_options=audio`) and files.

    Each call to `stream()` builds a fresh body, so a request using it can be replayed on retry.
    """

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)
    boundary: str = field(default_factory=lambda: secrets.token_hex(16))

    def add(self, name: str, value: str | int | float | bool | None) -> None:
        if value is None:
            return
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        self.fields.append((name, text))

    def add_all(self, name: str, values: list[str] | tuple[str, ...] | None) -> None:
        for value in values or ():
            self.add(name, value)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _field_head(self, name: str) -> bytes:
        return f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()

    def _file_head(self, part: FilePart) -> bytes:
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{_quote(part.name)}"; '
            f'filename="{_quote(part.resolved_filename)}"\r\n'
            f"Content-Type: {part.resolved_content_type}\r\n\r\n"
        ).encode()

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def content_length(self) -> int:
        size = sum(len(self._field_head(n)) + len(v.encode()) + 2 for n, v in self.fields)
        size += sum(len(self._file_head(p)) + p.size + 2 for p in self.files)
        return size + len(self._tail())

    @property
    def file_bytes(self) -> int:
        return sum(p.size for p in self.files)

    def stream(self, progress: ByteProgress | None = None) -> httpx2.AsyncByteStream:
        return _MultipartStream(self, progress)


class _MultipartStream(httpx2.AsyncByteStream):
    def __init__(self, form: MultipartForm, progress: ByteProgress | None) -> None:
        self.form = form
        self.progress = progress

    async def __aiter__(self) -> AsyncIterator[bytes]:
        form = self.form
        for name, value in form.fields:
            yield form._field_head(name) + value.encode() + b"\r\n"
        total = form.file_bytes
        counter = ProgressCounter(total, self.progress)
        if form.files:
            await counter.update(0)
        for part in form.files:
            yield form._file_head(part)
            size = part.size
            async for chunk in FileSliceStream(part.file, 0, size, counter):
                yield chunk
            counter.commit(size)
            yield b"\r\n"
        yield form._tail()
