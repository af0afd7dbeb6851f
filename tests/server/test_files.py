"""Local file policy: only regular media files inside allowed folders, judged after resolving links and `..`,
then opened once without following links and checked on the descriptor."""

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
    with FilePolicy.from_dirs([allowed]).open(str(allowed / "clip.mp4")) as local:
        assert local.path == (allowed / "clip.mp4").resolve()
        assert local.size == 16 and local.file.read() == b"\x00" * 16


def test_no_allowed_dirs_refuses_with_how_to_fix(allowed: Path) -> None:
    with pytest.raises(ToolError) as err:
        FilePolicy.from_dirs([]).open(str(allowed / "clip.mp4"))
    msg = str(err.value)
    assert "--allow-dir" in msg and "TL_MCP_ALLOWED_DIRS" in msg and "URL" in msg


def test_traversal_out_of_allowed_dir_is_refused(allowed: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x")
    with pytest.raises(ToolError, match="outside") as err:
        FilePolicy.from_dirs([allowed]).open(f"{allowed}/../secret.txt")
    assert str(allowed.resolve()) in str(err.value)


def test_symlink_escaping_allowed_dir_is_refused(allowed: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.mp4").write_bytes(b"1")
    (allowed / "link.mp4").symlink_to(tmp_path / "outside.mp4")
    with pytest.raises(ToolError, match="outside"):
        FilePolicy.from_dirs([allowed]).open(str(allowed / "link.mp4"))


def test_symlink_within_allowed_dir_is_fine(allowed: Path) -> None:
    (allowed / "alias.mp4").symlink_to(allowed / "clip.mp4")
    with FilePolicy.from_dirs([allowed]).open(str(allowed / "alias.mp4")) as local:
        assert local.name == "clip.mp4"


def test_system_files_are_refused(allowed: Path) -> None:
    policy = FilePolicy.from_dirs([allowed])
    for path in ("/etc/passwd", "/dev/zero"):
        with pytest.raises(ToolError, match="outside"):
            policy.open(path)


def test_devices_are_refused_even_inside_allowed_dirs() -> None:
    with pytest.raises(ToolError, match="not a regular file"):
        FilePolicy.from_dirs([Path("/dev")]).open("/dev/zero")


def test_fifo_is_refused(allowed: Path) -> None:
    fifo = allowed / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ToolError, match="not a regular file"):
        FilePolicy.from_dirs([allowed]).open(str(fifo))


def test_socket_is_refused(allowed: Path) -> None:
    path = allowed / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(ToolError, match="not a regular file"):
            FilePolicy.from_dirs([allowed]).open(str(path))


def test_directory_is_refused(allowed: Path) -> None:
    (allowed / "sub").mkdir()
    with pytest.raises(ToolError, match="directory"):
        FilePolicy.from_dirs([allowed]).open(str(allowed / "sub"))


@pytest.mark.parametrize("raw", ["", "relative/clip.mp4", "clip.mp4", "/nonexistent/x.mp4", "a\x00b"])
def test_empty_relative_missing_or_nul_paths_are_refused(allowed: Path, raw: str) -> None:
    with pytest.raises(ToolError):
        FilePolicy.from_dirs([allowed]).open(raw)


def test_allowed_dir_that_is_itself_a_symlink_works(tmp_path: Path, allowed: Path) -> None:
    link = tmp_path / "media-link"
    link.symlink_to(allowed)
    with FilePolicy.from_dirs([link]).open(str(link / "clip.mp4")) as local:
        assert local.path == (allowed / "clip.mp4").resolve()


def test_prefix_sibling_is_not_inside(tmp_path: Path, allowed: Path) -> None:
    sibling = tmp_path / "media2"
    sibling.mkdir()
    (sibling / "x.mp4").write_bytes(b"1")
    with pytest.raises(ToolError, match="outside"):
        FilePolicy.from_dirs([allowed]).open(str(sibling / "x.mp4"))


@pytest.mark.parametrize(
    "raw", ["http://169.254.169.254/latest", "file:///etc/passwd", "https://x.test/a.mp4"]
)
def test_url_given_as_path_says_to_use_the_url_argument(allowed: Path, raw: str) -> None:
    with pytest.raises(ToolError) as info:
        FilePolicy.from_dirs([allowed]).open(raw)
    assert "looks like a URL" in str(info.value) and "url" in str(info.value)


def test_hard_link_to_a_file_outside_is_refused(allowed: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"\x00secret")
    os.link(outside, allowed / "linked.mp4")
    with pytest.raises(ToolError, match="hard links") as info:
        FilePolicy.from_dirs([allowed]).open(str(allowed / "linked.mp4"))
    assert "Copy the file" in str(info.value)


PLAYLISTS = {
    "hls.mp4": b"#EXTM3U\n#EXTINF:6,\nfile:///etc/passwd\n",
    "bom.mp4": b"\xef\xbb\xbf  #EXTM3U\n#EXTINF:6,\n../outside.mp4\n",
    "concat.mp4": b"ffconcat version 1.0\nfile '/etc/passwd'\n",
    "session.mp4": b"v=0\no=- 0 0 IN IP4 127.0.0.1\nc=IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n",
    "dash.mp4": b'<?xml version="1.0"?>\n<MPD><Period><BaseURL>file:///etc/</BaseURL></Period></MPD>\n',
    "plain.mp4": "/srv/other/clip.mp4\n/srv/other/é.mp4\n".encode(),
}


@pytest.mark.parametrize("name", sorted(PLAYLISTS))
def test_playlists_are_refused_by_content_whatever_their_name(allowed: Path, name: str) -> None:
    (allowed / name).write_bytes(PLAYLISTS[name])
    with pytest.raises(ToolError, match="not a media file") as info:
        FilePolicy.from_dirs([allowed]).open(str(allowed / name))
    assert "Upload the media file itself" in str(info.value)


@pytest.mark.parametrize("suffix", [".m3u8", ".M3U", ".mpd", ".sdp", ".ffconcat", ".smil"])
def test_playlist_suffixes_are_refused_even_with_binary_content(allowed: Path, suffix: str) -> None:
    (allowed / f"x{suffix}").write_bytes(b"\x00\x00\x00\x20ftypisom")
    with pytest.raises(ToolError, match="playlist or manifest"):
        FilePolicy.from_dirs([allowed]).open(str(allowed / f"x{suffix}"))


def test_real_media_passes_the_content_check(allowed: Path) -> None:
    from tl_mcp.samples import make_sample_image

    for name in ("still.png", "still.jpg"):
        make_sample_image(allowed / name, size=(64, 36))
        with FilePolicy.from_dirs([allowed]).open(str(allowed / name)) as local:
            assert local.size == (allowed / name).stat().st_size


def test_a_link_swapped_in_after_the_check_is_not_followed(allowed: Path, tmp_path: Path) -> None:
    """The open walks the resolved components with O_NOFOLLOW: a component that became a link is refused."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "clip.mp4").write_bytes(b"\x00secret")
    sub = allowed / "sub"
    sub.mkdir()
    (sub / "clip.mp4").write_bytes(b"\x00inside")
    policy = FilePolicy.from_dirs([allowed])
    real_resolve = Path.resolve

    def resolve_then_swap(self: Path, strict: bool = False) -> Path:
        out = real_resolve(self, strict=strict)
        if self == sub / "clip.mp4":
            sub.rename(allowed / "parked")
            sub.symlink_to(tmp_path / "outside", target_is_directory=True)
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "resolve", resolve_then_swap)
        with pytest.raises(ToolError, match="changed while it was being opened"):
            policy.open(str(sub / "clip.mp4"))
