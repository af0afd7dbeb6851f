"""Which local files a tool may create: new files in a folder inside the configured write folders.

The same rules as reads (`files.py`), for a file that does not exist yet: the folder is given as an
absolute path with no `..`, lies in an allowed write folder, and is opened one component at a time from
that folder's descriptor with `O_NOFOLLOW`, so no link below the allowed folder is ever followed. Output
is written to a fresh hidden file (`O_CREAT | O_EXCL`) in that folder and renamed onto its name only when
complete, so a refusal or a failed export leaves the folder as it was. Without `overwrite` the name is
reserved up front with `O_EXCL`, so a file that appears meanwhile is never replaced.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from mcp.server.mcpserver.exceptions import ToolError

from tl_mcp.server.files import FolderPolicy, open_folder_beneath

_HOW_TO_ADD = (
    "To allow writing, start the server with --allow-write-dir /path/to/folder (repeatable) or set "
    "TL_MCP_ALLOWED_WRITE_DIRS=/path/a,/path/b."
)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class OutputFolder:
    """A checked folder, held open by descriptor; `create` makes the files, `commit`/`close` end it."""

    path: Path
    fd: int
    overwrite: bool
    #: name -> (temporary name, its open file, whether the final name was reserved empty by us)
    _pending: dict[str, tuple[str, io.FileIO, bool]] = field(default_factory=dict)

    def reserve(self, name: str) -> io.FileIO:
        """Claim `name` for an output (refused when it exists, unless overwriting a regular file); write
        the output to the returned file, which `commit` moves onto the name."""
        try:
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None and not (self.overwrite and stat.S_ISREG(info.st_mode)):
            why = (
                "it is not a regular file, so it is never replaced"
                if info is not None and not stat.S_ISREG(info.st_mode)
                else "pass overwrite=true to replace it, or choose another name"
            )
            raise ToolError(f"Output refused: {self.path / name} already exists; {why}. Nothing was written.")
        reserved = False
        if info is None:
            try:
                os.close(os.open(name, _NEW_FILE_FLAGS, 0o644, dir_fd=self.fd))
            except FileExistsError:
                raise ToolError(
                    f"Output refused: {self.path / name} appeared while it was being claimed; call again "
                    "(with overwrite=true to replace it)."
                ) from None
            reserved = True
        temp = f".{name}.{secrets.token_hex(4)}.part"
        file = io.FileIO(os.open(temp, _NEW_FILE_FLAGS, 0o644, dir_fd=self.fd), "w")
        self._pending[name] = (temp, file, reserved)
        return file

    def commit(self) -> list[Path]:
        """Move every finished output onto its name; returns the final paths."""
        done = []
        for name, (temp, file, _) in list(self._pending.items()):
            file.close()
            os.rename(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            del self._pending[name]
            done.append(self.path / name)
        return done

    def close(self) -> None:
        """Remove whatever was not committed (temporary files and the names reserved for them)."""
        for name, (temp, file, reserved) in self._pending.items():
            file.close()
            for leftover in (temp, name) if reserved else (temp,):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover, dir_fd=self.fd)
        self._pending.clear()
        os.close(self.fd)

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class WritePolicy(FolderPolicy):
    def describe(self) -> str:
        if not self.allowed_dirs:
            return "no folder is allowed for writing"
        return "allowed write folders: " + ", ".join(str(d) for d in self.allowed_dirs)

    def folder(self, raw: str, *, overwrite: bool) -> OutputFolder:
        """The folder at `raw`, open, if it is an allowed write folder or a real folder inside one."""
        if not raw or "\x00" in raw:
            raise ToolError("Output folder refused: the path is empty or contains a NUL byte.")
        if not self.allowed_dirs:
            raise ToolError(f"Output folder refused: {self.describe()}. {_HOW_TO_ADD}")
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            raise ToolError(
                f"Output folder refused: {raw!r} is relative; give an absolute path inside one of the "
                f"{self.describe()}."
            )
        if ".." in candidate.parts:
            raise ToolError(
                f"Output folder refused: {raw!r} contains '..'; give the folder's plain absolute path inside "
                f"one of the {self.describe()}."
            )
        # The allowed folder itself is trusted as configured (it may sit behind a link, like /tmp on
        # macOS); what lies below it is judged by its real components, never through a link.
        base, parts = self._locate(candidate)
        if base is None:
            raise ToolError(f"Output folder refused: {raw!r} is outside the {self.describe()}. {_HOW_TO_ADD}")
        try:
            fd = open_folder_beneath(base, parts)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise ToolError(
                    f"Output folder refused: {raw!r} does not exist; create it first (tools never create "
                    "folders) or use one of the " + self.describe() + "."
                ) from None
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ToolError(
                    f"Output folder refused: a part of {raw!r} is a symbolic link or not a folder. Links "
                    "below an allowed write folder are never followed, because their target can be "
                    "anywhere; give the real folder's path."
                ) from None
            raise ToolError(f"Output folder refused: cannot open {raw!r} ({exc.strerror}).") from None
        return OutputFolder(path=base.joinpath(*parts), fd=fd, overwrite=overwrite)

    def _locate(self, candidate: Path) -> tuple[Path | None, tuple[str, ...]]:
        for allowed in self.allowed_dirs:
            if candidate.is_relative_to(allowed):
                return allowed, candidate.relative_to(allowed).parts
        # The path may name an allowed folder by a configured alias (a link to it): resolve only the
        # longest existing prefix that resolves to an allowed folder, then walk the rest by hand.
        for i in range(len(candidate.parts), 0, -1):
            prefix = Path(*candidate.parts[:i])
            try:
                real = prefix.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if real in self.allowed_dirs:
                return real, candidate.parts[i:]
        return None, ()
