"""Which local files a tool may read: only regular files inside the configured allowed folders.

Paths are resolved (symlinks and `..`) before the containment check, so a link or a traversal that
points outside an allowed folder is refused even when its spelling looks inside.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mcp.server.mcpserver.exceptions import ToolError

_HOW_TO_ADD = (
    "To allow a folder, start the server with --allow-dir /path/to/folder (repeatable) or set "
    "TL_MCP_ALLOWED_DIRS=/path/a,/path/b. Alternatively pass a public https URL instead of a local path."
)


@dataclass(frozen=True)
class FilePolicy:
    allowed_dirs: tuple[Path, ...]

    @classmethod
    def from_dirs(cls, dirs: Sequence[Path]) -> FilePolicy:
        resolved = []
        for d in dirs:
            try:
                resolved.append(Path(d).expanduser().resolve(strict=False))
            except OSError:
                continue
        return cls(tuple(resolved))

    def describe(self) -> str:
        if not self.allowed_dirs:
            return "no local folders are allowed"
        return "allowed folders: " + ", ".join(str(d) for d in self.allowed_dirs)

    def check(self, raw: str) -> Path:
        """The resolved path of a readable regular file inside an allowed folder, else ToolError."""
        if not raw or "\x00" in raw:
            raise ToolError("Local path refused: the path is empty or contains a NUL byte.")
        if not self.allowed_dirs:
            raise ToolError(f"Local path refused: {self.describe()}. {_HOW_TO_ADD}")
        if "://" in raw:
            raise ToolError(
                f"Local path refused: {raw!r} looks like a URL, not a file path. Pass http(s) URLs in the "
                "tool's url argument (e.g. upload_asset(url=...)); local files need an absolute path inside "
                f"one of the {self.describe()}."
            )
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            raise ToolError(
                f"Local path refused: {raw!r} is relative; give an absolute path inside one of the "
                f"{self.describe()}."
            )
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            raise ToolError(
                f"Local path refused: {raw!r} does not exist (or a link in it is broken)."
            ) from None
        if not any(resolved.is_relative_to(d) for d in self.allowed_dirs):
            raise ToolError(
                f"Local path refused: {raw!r} resolves outside the {self.describe()}. {_HOW_TO_ADD}"
            )
        try:
            mode = os.stat(resolved).st_mode
        except OSError as exc:
            raise ToolError(f"Local path refused: cannot read {raw!r} ({exc.strerror}).") from None
        if stat.S_ISDIR(mode):
            raise ToolError(f"Local path refused: {raw!r} is a directory; pass one media file inside it.")
        if not stat.S_ISREG(mode):
            raise ToolError(f"Local path refused: {raw!r} is not a regular file (device, FIFO or socket).")
        if not os.access(resolved, os.R_OK):
            raise ToolError(f"Local path refused: {raw!r} is not readable by the server process.")
        return resolved
