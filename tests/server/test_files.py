"""Local file policy: only regular files inside allowed folders, judged after resolving links and `..`."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from tl_mcp.server.files import FilePolicy


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    d = tmp_path / "media"
    d.mkdir()
    (d / "clip.mp4").write_bytes(b"\x00" * 16)
    return d


def test_file_inside_allowed_dir_is_accepted(allowed: Path) -> None:
    assert (
        FilePolicy.from_dirs([allowed]).check(str(allowed / "clip.mp4")) == (allowed / "clip.mp4").resolve()
    )


def test_no_allowed_dirs_refuses_with_how_to_fix(allowed: Path) -> None:
    with pytest.raises(ToolError) as err:
        FilePolicy.from_dirs([]).check(str(allowed / "clip.mp4"))
    msg = str(err.value)
    assert "--allow-dir" in msg and "TL_MCP_ALLOWED_DIRS" in msg and "URL" in msg


def test_traversal_out_of_allowed_dir_is_refused(allowed: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x")
    with pytest.raises(ToolError, match="outside") as err:
        FilePolicy.from_dirs([allowed]).check(f"{allowed}/../secret.txt")
    assert str(allowed.resolve()) in str(err.value)


def test_symlink_escaping_allowed_dir_is_refused(allowed: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.mp4").write_bytes(b"1")
    (allowed / "link.mp4").symlink_to(tmp_path / "outside.mp4")
    with pytest.raises(ToolError, match="outside"):
        FilePolicy.from_dirs([allowed]).check(str(allowed / "link.mp4"))


def test_symlink_within_allowed_dir_is_fine(allowed: Path) -> None:
    (allowed / "alias.mp4").symlink_to(allowed / "clip.mp4")
    assert FilePolicy.from_dirs([allowed]).check(str(allowed / "alias.mp4")).name == "clip.mp4"


def test_system_files_are_refused(allowed: Path) -> None:
    policy = FilePolicy.from_dirs([allowed])
    for path in ("/etc/passwd", "/dev/zero"):
        with pytest.raises(ToolError, match="outside"):
            policy.check(path)


def test_devices_are_refused_even_inside_allowed_dirs() -> None:
    with pytest.raises(ToolError, match="not a regular file"):
        FilePolicy.from_dirs([Path("/dev")]).check("/dev/zero")


def test_fifo_is_refused(allowed: Path) -> None:
    fifo = allowed / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ToolError, match="not a regular file"):
        FilePolicy.from_dirs([allowed]).check(str(fifo))


def test_socket_is_refused(allowed: Path) -> None:
    path = allowed / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(ToolError, match="not a regular file"):
            FilePolicy.from_dirs([allowed]).check(str(path))


def test_directory_is_refused(allowed: Path) -> None:
    (allowed / "sub").mkdir()
    with pytest.raises(ToolError, match="directory"):
        FilePolicy.from_dirs([allowed]).check(str(allowed / "sub"))


@pytest.mark.parametrize("raw", ["", "relative/clip.mp4", "clip.mp4", "/nonexistent/x.mp4", "a\x00b"])
def test_empty_relative_missing_or_nul_paths_are_refused(allowed: Path, raw: str) -> None:
    with pytest.raises(ToolError):
        FilePolicy.from_dirs([allowed]).check(raw)


def test_allowed_dir_that_is_itself_a_symlink_works(tmp_path: Path, allowed: Path) -> None:
    link = tmp_path / "media-link"
    link.symlink_to(allowed)
    assert FilePolicy.from_dirs([link]).check(str(link / "clip.mp4")) == (allowed / "clip.mp4").resolve()


def test_prefix_sibling_is_not_inside(tmp_path: Path, allowed: Path) -> None:
    sibling = tmp_path / "media2"
    sibling.mkdir()
    (sibling / "x.mp4").write_bytes(b"1")
    with pytest.raises(ToolError, match="outside"):
        FilePolicy.from_dirs([allowed]).check(str(sibling / "x.mp4"))


@pytest.mark.parametrize(
    "raw", ["http://169.254.169.254/latest", "file:///etc/passwd", "https://x.test/a.mp4"]
)
def test_url_given_as_path_says_to_use_the_url_argument(allowed: Path, raw: str) -> None:
    with pytest.raises(ToolError) as info:
        FilePolicy.from_dirs([allowed]).check(raw)
    assert "looks like a URL" in str(info.value) and "url" in str(info.value)
