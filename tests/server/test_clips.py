"""export_clips through the SDK client against the sandbox: frame-accurate cuts, reels with title cards,
and refusals that leave the disk as it was."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import av
import numpy as np
import pytest
from mcp import Client

from tl_mcp.config import ConfigError, Settings
from tl_mcp.server import build_server
from tl_mcp.server.cutting import CARD_BACKGROUND, CARD_SECONDS

from .conftest import ProgressRecorder, World, call_ok, text_of

pytestmark = pytest.mark.anyio

FRAME = 0.1  # the sample video runs at 10 fps


def _frames(path: Path) -> list[np.ndarray[Any, Any]]:
    """Per frame, the median RGB above the sample's progress bar: its background, whatever text is on it."""
    with av.open(str(path)) as c:
        return [_colour(f) for f in c.decode(video=0)]


def _colour(frame: av.VideoFrame) -> np.ndarray[Any, Any]:
    return np.median(frame.to_ndarray(format="rgb24")[:-12].reshape(-1, 3), axis=0)


def _duration(path: Path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.frames and stream.average_rate
        return float(stream.frames / stream.average_rate)


def _source_colour(world: World, seconds: float) -> np.ndarray[Any, Any]:
    """Colour of the source frame on screen at `seconds` (the last one starting at or before it)."""
    shown = None
    with av.open(str(world.sample.path)) as c:
        for f in c.decode(video=0):
            if f.time is not None and f.time > seconds + 1e-6:
                break
            shown = f
    assert shown is not None
    return _colour(shown)


def _tree(*roots: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry below `roots` with its kind, size and content: what a refusal must leave unchanged."""
    seen: dict[str, tuple[str, int, bytes]] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                if p.is_symlink():
                    seen[str(p)] = ("link", 0, os.readlink(p).encode())
                elif p.is_dir():
                    seen[str(p)] = ("dir", 0, b"")
                else:
                    seen[str(p)] = ("file", p.stat().st_size, p.read_bytes())
    return seen


def _near(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any] | tuple[int, int, int], tol: float = 12.0) -> bool:
    return bool(np.abs(np.asarray(a) - np.asarray(b, dtype=float)).max() <= tol)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _hit(world: World, start: float, end: float, **extra: Any) -> dict[str, Any]:
    return {"index_id": world.index_id, "video_id": world.video_id, "start": start, "end": end, **extra}


async def test_clip_starts_on_the_frame_shown_at_its_start_and_lasts_its_window(
    world: World, out: Path
) -> None:
    # 5.9 s is the last frame of the first (blue) scene: a cut from the nearest key frame, or one frame
    # late, would start on another picture.
    start, end = 5.9, 8.0
    progress = ProgressRecorder()
    async with Client(build_server(world.settings(allowed_write_dirs=[out]))) as c:
        result = await call_ok(
            c,
            "export_clips",
            {"moments": [_hit(world, start, end)], "folder": str(out), "name": "moment"},
            progress_callback=progress,
        )
    data = result.structured_content
    assert data is not None
    path = out / "moment.mp4"
    assert [f["path"] for f in data["files"]] == [str(path)]
    assert data["files"][0]["size_bytes"] == path.stat().st_size > 0
    assert abs(_duration(path) - (end - start)) <= FRAME + 1e-6
    frames = _frames(path)
    assert _near(frames[0], _source_colour(world, start))
    assert _near(frames[0], world.sample.scenes[0].background)
    assert _near(frames[1], world.sample.scenes[1].background)
    assert _near(frames[-1], _source_colour(world, end - FRAME))
    assert progress.calls and progress.calls[-1][:2] == (1, 1)
    assert "bytes written" in progress.text
    # Only the finished file is left: no temporary or reserved names.
    assert sorted(os.listdir(out)) == ["moment.mp4"]


async def test_citation_moments_by_asset_id_become_numbered_clips(world: World, out: Path) -> None:
    moments = [
        {"asset_id": world.asset_id, "start": 13.0, "end": 14.5},
        _hit(world, 0.0, 1.0),
    ]
    async with Client(build_server(world.settings(allowed_write_dirs=[out]))) as c:
        result = await call_ok(c, "export_clips", {"moments": moments, "folder": str(out)})
    assert result.structured_content is not None
    files = [Path(f["path"]) for f in result.structured_content["files"]]
    assert files == [out / "clip-01.mp4", out / "clip-02.mp4"]
    for path, moment, scene in zip(files, moments, (2, 0), strict=True):
        assert abs(_duration(path) - (moment["end"] - moment["start"])) <= FRAME + 1e-6
        assert _near(_frames(path)[0], world.sample.scenes[scene].background)


async def test_reel_has_one_title_card_and_one_segment_per_moment(world: World, out: Path) -> None:
    moments = [
        _hit(world, 1.0, 3.0, title="Sales"),
        {"asset_id": world.asset_id, "start": 7.0, "end": 8.5, "title": "Apples"},
        _hit(world, 13.0, 14.0, title="Ocean"),
    ]
    progress = ProgressRecorder()
    async with Client(build_server(world.settings(allowed_write_dirs=[out]))) as c:
        result = await call_ok(
            c,
            "export_clips",
            {"moments": moments, "folder": str(out), "name": "reel", "reel": True},
            progress_callback=progress,
        )
    assert result.structured_content is not None
    assert [f["moments"] for f in result.structured_content["files"]] == [[0, 1, 2]]
    path = out / "reel.mp4"
    expected = sum(m["end"] - m["start"] for m in moments) + CARD_SECONDS * len(moments)
    assert abs(_duration(path) - expected) <= FRAME + 1e-6
    # Each run of frames is either a title card or a scene.
    runs: list[str] = []
    scenes = {s.index: s.background for s in world.sample.scenes}
    for colour in _frames(path):
        kind = next((f"scene{i}" for i, bg in scenes.items() if _near(colour, bg)), None)
        if kind is None:
            assert _near(colour, CARD_BACKGROUND), colour
            kind = "card"
        if not runs or runs[-1] != kind:
            runs.append(kind)
    assert runs == ["card", "scene0", "card", "scene1", "card", "scene2"]
    assert progress.calls[-1][:2] == (3, 3)
    assert [p for p, _, _ in progress.calls] == sorted(p for p, _, _ in progress.calls)


async def test_overwrite_replaces_an_existing_file(world: World, out: Path) -> None:
    (out / "clip.mp4").write_bytes(b"old")
    async with Client(build_server(world.settings(allowed_write_dirs=[out]))) as c:
        await call_ok(
            c, "export_clips", {"moments": [_hit(world, 0, 1)], "folder": str(out), "overwrite": True}
        )
    assert (out / "clip.mp4").read_bytes()[4:8] == b"ftyp"
    assert sorted(os.listdir(out)) == ["clip.mp4"]


def _refusals(world: World, out: Path, outside: Path) -> dict[str, tuple[dict[str, Any], str]]:
    return {
        "outside the folder": ({"folder": str(outside)}, "outside the allowed write folders"),
        "dot-dot": ({"folder": f"{out}/../outside"}, "contains '..'"),
        "symlink below the folder": ({"folder": str(out / "link")}, "symbolic link"),
        "relative": ({"folder": "out"}, "is relative"),
        "missing folder": ({"folder": str(out / "nope")}, "does not exist"),
        "existing file": ({"folder": str(out), "name": "taken"}, "already exists; pass overwrite=true"),
        "window after the end": (
            {"folder": str(out), "moments": [_hit(world, 17.0, 19.0)]},
            "after the end of",
        ),
        "window ends before it starts": (
            {"folder": str(out), "moments": [_hit(world, 4.0, 3.0)]},
            "not after its start",
        ),
        "asset and video both given": (
            {"folder": str(out), "moments": [{**_hit(world, 0, 1), "asset_id": world.asset_id}]},
            "not both",
        ),
        "second name taken": (
            {"folder": str(out), "name": "pair", "moments": [_hit(world, 0, 1), _hit(world, 2, 3)]},
            "pair-02.mp4 already exists",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "outside the folder",
        "dot-dot",
        "symlink below the folder",
        "relative",
        "missing folder",
        "existing file",
        "window after the end",
        "window ends before it starts",
        "asset and video both given",
        "second name taken",
    ],
)
async def test_each_refusal_says_why_and_changes_nothing_on_disk(
    world: World, tmp_path: Path, out: Path, case: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    (out / "taken.mp4").write_bytes(b"keep me")
    (out / "pair-02.mp4").write_bytes(b"keep me too")
    args, why = _refusals(world, out, outside)[case]
    before = _tree(tmp_path)
    async with Client(build_server(world.settings(allowed_write_dirs=[out]))) as c:
        result = await c.call_tool("export_clips", {"moments": [_hit(world, 0, 1)], **args})
    assert result.is_error, text_of(result)
    assert why in text_of(result)
    assert _tree(tmp_path) == before


async def test_without_a_write_folder_the_tool_is_off_and_refuses_when_forced_on(
    world: World, tmp_path: Path
) -> None:
    before = _tree(tmp_path)
    async with Client(build_server(world.settings())) as c:
        assert "export_clips" not in [t.name for t in (await c.list_tools()).tools]
    async with Client(build_server(world.settings(toolsets="all"))) as c:
        result = await c.call_tool("export_clips", {"moments": [_hit(world, 0, 1)], "folder": str(tmp_path)})
    assert result.is_error
    assert "no folder is allowed for writing" in text_of(result) and "--allow-write-dir" in text_of(result)
    assert _tree(tmp_path) == before


def test_write_folder_setting_turns_the_clips_toolset_on_unless_toolsets_are_chosen(tmp_path: Path) -> None:
    env = {"TL_MCP_ALLOWED_WRITE_DIRS": str(tmp_path)}
    assert "clips" in Settings.from_sources(env=env).toolsets
    assert "clips" not in Settings.from_sources(env={}).toolsets
    assert "clips" not in Settings.from_sources(env=env, toolsets="search").toolsets
    with pytest.raises(ConfigError, match=r"TL_MCP_ALLOWED_WRITE_DIRS / --allow-write-dir.*relative"):
        Settings.from_sources(env={"TL_MCP_ALLOWED_WRITE_DIRS": "out"})
    with pytest.raises(ConfigError, match=r"TL_MCP_ALLOWED_WRITE_DIRS.*root"):
        Settings.from_sources(env={"TL_MCP_ALLOWED_WRITE_DIRS": "/"})


async def test_hls_streams_are_cut_as_precisely_as_files(world: World, tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    from tl_mcp.server.cutting import Segment, cut

    from .conftest import hls_copy, loopback_socket, serve_app

    hls = tmp_path / "hls"
    hls.mkdir()
    hls_copy(world.sample.path, hls)
    assert len(list(hls.glob("*.ts"))) >= 5
    app = Starlette(routes=[Mount("/", StaticFiles(directory=hls))])
    target = tmp_path / "clip.mp4"
    async with serve_app(app, loopback_socket()) as base:
        segment = Segment(f"{base}/index.m3u8", 11.9, 14.0, "hls", "HLS")
        with target.open("wb") as file:
            await anyio.to_thread.run_sync(
                lambda: cut([segment], [file], reel=False, progress=lambda *_: None)
            )
    assert abs(_duration(target) - 2.1) <= FRAME + 1e-6
    frames = _frames(target)
    assert _near(frames[0], world.sample.scenes[1].background)
    assert _near(frames[1], world.sample.scenes[2].background)
