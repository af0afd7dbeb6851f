"""Which local files a tool may read: only regular media files inside the configured allowed folders.

A path is resolved (symlinks and `..`) to decide which allowed folder it is in, then opened exactly once:
from a descriptor of that folder, one real component at a time with `O_NOFOLLOW`, so a link swapped into
the path after the check is refused rather than followed. The open is non-blocking (a FIFO cannot stall
it), and the type, link count and leading bytes are checked on the descriptor itself. Tools then stream
from that descriptor only; nothing reopens the path.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from mcp.server.mcpserver.exceptions import ToolError

_HOW_TO_ADD = (
    "To allow a folder, start the server with --allow-dir /path/to/folder (repeatable) or set "
    "TL_MCP_ALLOWED_DIRS=/path/a,/path/b. Alternatively pass a public https URL instead of a local path."
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must return at once (then the type check refuses it) instead of waiting
# for a writer that never comes. It changes nothing for reads of regular files.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

#: Formats whose files name other files (segments, playlist entries, includes). A decoder opening one
#: reads whatever it lists, which may be outside every allowed folder, so they are refused by name and
#: by content.
REFERENCING_SUFFIXES = frozenset(
    {
        ".m3u",
        ".m3u8",
        ".mpd",
        ".sdp",
        ".smil",
        ".smi",
        ".ffconcat",
        ".pls",
        ".xspf",
        ".asx",
        ".wpl",
        ".f4m",
        ".ism",
        ".ismc",
        ".cue",
    }
)
_SIGNATURES = (
    (b"#EXTM3U", "an HLS/M3U playlist"),
    (b"#EXTINF", "an M3U playlist"),
    (b"ffconcat", "an ffconcat list"),
    (b"[playlist]", "a PLS playlist"),
    (b"v=0", "an SDP session description"),
    (b"<", "an XML document (DASH manifest, SMIL, SVG or similar)"),
)
_SNIFF_BYTES = 4096
_REFUSED_WHY = (
    "Playlists, manifests and other text formats (HLS .m3u8, DASH .mpd, ffconcat, SDP, SMIL …) make the "
    "decoder open the files they list, which could be outside the allowed folders, so they are refused. "
    "Upload the media file itself (e.g. the .mp4)."
)


def refuse_referencing_name(name: str, what: str) -> None:
    """ToolError when `name` ends like a playlist or manifest (the upstream decodes by that suffix too)."""
    suffix = Path(name).suffix.lower()
    if suffix in REFERENCING_SUFFIXES:
        raise ToolError(
            f"{what} refused: {name!r} has the suffix {suffix} of a playlist or manifest. {_REFUSED_WHY} "
            "A media file named like a playlist needs its real suffix."
        )


def _sniff(head: bytes) -> str | None:
    """What kind of non-media file `head` (a file's first bytes) starts, or None when it looks like media."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    for signature, kind in _SIGNATURES:
        if text.startswith(signature):
            return kind
    # Every container and codec we accept has binary bytes (NUL, control bytes, invalid UTF-8) in its
    # first few KiB; a file without any is text, and text media formats are lists of other files.
    if not head or b"\x00" in head:
        return None
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sample's end still counts as text.
        if exc.start < len(head) - 3 or len(head) < _SNIFF_BYTES:
            return None
        decoded = head[: exc.start].decode("utf-8")
    if all(c.isprintable() or c in "\t\n\r\f\v" for c in decoded):
        return "a text file"
    return None


@dataclass
class LocalFile:
    """A checked local file, open for reading. Stream from `file` (never reopen `path`); close when done."""

    path: Path
    file: io.FileIO
    size: int

    @property
    def name(self) -> str:
        return self.path.name

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> LocalFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class FolderPolicy:
    """The allowed folders of a policy (reads here, writes in :mod:`tl_mcp.server.writes`)."""

    allowed_dirs: tuple[Path, ...]

    @classmethod
    def from_dirs(cls, dirs: Sequence[Path]) -> Self:
        """Resolved once at start-up (the settings refuse empty, relative, root and missing folders)."""
        return cls(tuple(Path(d).expanduser().resolve() for d in dirs))


class FilePolicy(FolderPolicy):
    def describe(self) -> str:
        if not self.allowed_dirs:
            return "no local folders are allowed"
        return "allowed folders: " + ", ".join(str(d) for d in self.allowed_dirs)

    def open(self, raw: str) -> LocalFile:
        """The file at `raw`, open, if it is a regular media file inside an allowed folder; else ToolError."""
        resolved, base, parts = self._locate(raw, "Local path")
        if not parts:
            raise ToolError(f"Local path refused: {raw!r} is a directory; pass one media file inside it.")
        refuse_referencing_name(resolved.name, "Local path")
        fd = _open_beneath(base, parts, raw)
        try:
            info = os.fstat(fd)
            _check_opened(info, raw)
            kind = _sniff(os.pread(fd, _SNIFF_BYTES, 0))
            if kind is not None:
                raise ToolError(f"Local path refused: {raw!r} is {kind}, not a media file. {_REFUSED_WHY}")
            file = io.FileIO(fd, "rb", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        # Named after the checked path, so an upload is labelled with it rather than the descriptor number.
        file.name = str(resolved)
        return LocalFile(path=resolved, file=file, size=info.st_size)

    def folder(self, raw: str) -> LocalFolder:
        """The folder at `raw`, open, if it is an allowed folder or a real folder inside one; else ToolError.

        Its files are listed from the descriptor, never through a link; each is then opened with `open`,
        which checks it like any single file."""
        resolved, base, parts = self._locate(raw, "Folder")
        try:
            fd = open_folder_beneath(base, parts)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ToolError(
                    f"Folder refused: {raw!r} is not a folder, or a part of it changed into a symbolic link "
                    "while it was being opened. Pass the real path of a folder."
                ) from None
            raise ToolError(f"Folder refused: cannot open {raw!r} ({exc.strerror}).") from None
        return LocalFolder(path=resolved, fd=fd)

    def _locate(self, raw: str, what: str) -> tuple[Path, Path, tuple[str, ...]]:
        """(resolved path, the allowed folder it is in, its parts below that folder), or ToolError."""
        if not raw or "\x00" in raw:
            raise ToolError(f"{what} refused: the path is empty or contains a NUL byte.")
        if not self.allowed_dirs:
            raise ToolError(f"{what} refused: {self.describe()}. {_HOW_TO_ADD}")
        if "://" in raw:
            raise ToolError(
                f"{what} refused: {raw!r} looks like a URL, not a file path. Pass http(s) URLs in the "
                "tool's url argument (e.g. upload_asset(url=...)); local files need an absolute path inside "
                f"one of the {self.describe()}."
            )
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            raise ToolError(
                f"{what} refused: {raw!r} is relative; give an absolute path inside one of the "
                f"{self.describe()}."
            )
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            raise ToolError(f"{what} refused: {raw!r} does not exist (or a link in it is broken).") from None
        base = next((d for d in self.allowed_dirs if resolved.is_relative_to(d)), None)
        if base is None:
            raise ToolError(f"{what} refused: {raw!r} resolves outside the {self.describe()}. {_HOW_TO_ADD}")
        return resolved, base, resolved.relative_to(base).parts


@dataclass
class LocalFolder:
    """A checked folder, open by descriptor; close when done."""

    path: Path
    fd: int

    def files(self, limit: int, keep: Callable[[str], bool] = lambda _rel: True) -> list[str]:
        """Relative POSIX paths of the regular files beneath that `keep` takes, sorted; hidden entries (a
        leading dot) and links are left out, and nothing is followed. Stops with ToolError past `limit`
        files taken (those `keep` leaves out do not count, so narrowing it is a way past the limit)."""
        found: list[str] = []
        for top, dirs, names, dir_fd in os.fwalk(".", dir_fd=self.fd, follow_symlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                try:
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile: it is simply not part of the listing
                if not stat.S_ISREG(info.st_mode):
                    continue
                rel = str(Path(top, name)).removeprefix("./")
                if not keep(rel):
                    continue
                found.append(rel)
                if len(found) > limit:
                    raise ToolError(
                        f"Folder refused: {self.path} holds more than {limit:,} files. Narrow it with "
                        "include/exclude patterns or pass a subfolder."
                    )
        return sorted(found)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> LocalFolder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_folder_beneath(base: Path, parts: Sequence[str]) -> int:
    """An fd of the folder `base/parts…`, opened one component at a time relative to its parent's fd and
    never through a link (`base` itself is trusted as configured). Raises OSError for the caller to word."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            next_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_beneath(base: Path, parts: tuple[str, ...], raw: str) -> int:
    """Open the file `base/parts…` with :func:`open_folder_beneath` and `O_NOFOLLOW` on its last component."""
    try:
        dir_fd = open_folder_beneath(base, parts[:-1])
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.EMLINK):
            raise ToolError(
                f"Local path refused: {raw!r} changed while it was being opened (a part of it is now a "
                "symbolic link, or is gone). Links are never followed at open time, because their target "
                "can change between the check and the read. Pass the real path of a file that is not being "
                "replaced."
            ) from None
        if exc.errno == errno.ENXIO:  # a socket (or a device with nothing behind it)
            raise ToolError(
                f"Local path refused: {raw!r} is not a regular file (device, FIFO or socket)."
            ) from None
        raise ToolError(f"Local path refused: cannot read {raw!r} ({exc.strerror}).") from None


def _check_opened(info: os.stat_result, raw: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"Local path refused: {raw!r} is a directory; pass one media file inside it.")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"Local path refused: {raw!r} is not a regular file (device, FIFO or socket).")
    if info.st_nlink > 1:
        raise ToolError(
            f"Local path refused: {raw!r} has {info.st_nlink} hard links. A hard link can make a file "
            "from outside the allowed folders appear inside them, so hard-linked files are refused. Copy "
            "the file into the allowed folder (cp, not ln) and pass the copy."
        )
