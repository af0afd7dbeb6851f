"""Hostile local-file tests, through the real tools against the embedded sandbox: a symlink or folder
swapped between the check and the read, a hard link to an outside file, playlists that name files outside
the allowed folders, and a FIFO swapped in under a running server. The outside secret's bytes must never
be stored or embedded, and no job may hang."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.reliability.conftest import API_KEY, Env, Seed, faulted
from tests.reliability.test_process import StdioServer, _env
from tests.server.conftest import sandbox_settings, text_of
from tl_mcp.api import TwelveLabsClient
from tl_mcp.samples import make_sample_image
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

TRIES = 200
#: How long a swapping thread keeps one state, so both states are seen by checks and by opens.
HOLD_S = 0.0005


class Swapper:
    """A thread flipping a path between states (each an atomic rename or a short sequence) until stopped."""

    def __init__(self, *states: Callable[[], None]) -> None:
        self.states = states
        self.stop = threading.Event()
        self.flips = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for state in self.states:
                state()
                self.flips += 1
                time.sleep(HOLD_S)

    @contextmanager
    def running(self) -> Iterator[Swapper]:
        self.thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.thread.join(10)


def regular_or_link(target: Path, inside: bytes, outside: Path) -> Swapper:
    """`target` is a regular file with `inside` bytes, then a symlink to `outside`, and so on."""
    tmp_file, tmp_link = target.with_name(".swap-file"), target.with_name(".swap-link")

    def regular() -> None:
        tmp_file.write_bytes(inside)
        os.replace(tmp_file, target)

    def link() -> None:
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(outside)
        os.replace(tmp_link, target)

    regular()
    return Swapper(regular, link)


def folder_or_link(folder: Path, outside_dir: Path) -> Swapper:
    """`folder` is a real folder, then a symlink to `outside_dir` (holding a file of the same name)."""
    parked = folder.with_name(".parked")

    def real() -> None:
        folder.unlink()
        parked.rename(folder)

    def link() -> None:
        folder.rename(parked)
        folder.symlink_to(outside_dir, target_is_directory=True)

    folder.rename(parked)
    folder.symlink_to(outside_dir, target_is_directory=True)
    return Swapper(real, link)


def stored_bytes(env: Env) -> Iterator[bytes]:
    for path in (env.sandbox.config.data_dir / "media").rglob("*"):
        if path.is_file():
            yield path.read_bytes()


@pytest.fixture
def env(seed: Seed, tmp_path: Path) -> Iterator[Env]:
    with faulted(seed, tmp_path / "run") as env:
        yield env


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    # Two different pictures: the one allowed and the outside secret (a real image, so it would be
    # stored and embedded just like the allowed one if it got through).
    inside = make_sample_image(tmp_path / "inside.png", scene_index=0, size=(64, 36))
    secret = make_sample_image(outside / "secret.png", scene_index=2, size=(64, 36))
    # The same length (zeros after the PNG's end are ignored by decoders): a read that lands on the
    # other file then gets all of its bytes, rather than failing as a truncated picture.
    size = max(inside.stat().st_size, secret.stat().st_size)
    for picture in (inside, secret):
        picture.write_bytes(picture.read_bytes().ljust(size, b"\x00"))
    return {"allowed": allowed, "outside": outside, "inside": inside, "secret": secret}


def _asset_count(env: Env) -> int:
    row = env.engine.db.one("SELECT COUNT(*) AS n FROM assets")
    assert row is not None
    return int(row["n"])


def _settings(env: Env, allowed: Path) -> Any:
    return sandbox_settings(env.sandbox, env.state_dir, allowed)


async def _upload_many(env: Env, allowed: Path, path: Path) -> tuple[int, list[str]]:
    """(uploads completed, error texts) of TRIES upload_asset calls."""
    stored, errors = 0, []
    async with Client(build_server(_settings(env, allowed))) as client:
        for _ in range(TRIES):
            result = await client.call_tool("upload_asset", {"path": str(path), "wait_s": 60})
            if result.is_error:
                errors.append(text_of(result))
            else:
                assert (result.structured_content or {}).get("status") == "completed", result
                stored += 1
    return stored, errors


def _assert_only_policy_refusals(errors: list[str]) -> None:
    """A race the policy lost shows up as a read error; every failure must be the policy's own refusal."""
    odd = [e for e in errors if "Local path refused" not in e]
    assert not odd, f"{len(odd)} failures were not policy refusals, e.g. {odd[0]!r}"


async def test_a_symlink_swapped_after_the_check_never_uploads_the_outside_secret(
    env: Env, layout: dict[str, Path]
) -> None:
    target = layout["allowed"] / "clip.png"
    secret = layout["secret"].read_bytes()
    with regular_or_link(target, layout["inside"].read_bytes(), layout["secret"]).running() as swap:
        stored, errors = await _upload_many(env, layout["allowed"], target)
    leaked = sum(secret in data for data in stored_bytes(env))
    assert leaked == 0, f"the outside secret was stored {leaked} times in {TRIES} tries"
    assert swap.flips > TRIES // 10, "the swapper barely ran: the race was not tried"
    assert stored > 0, errors[:3]
    _assert_only_policy_refusals(errors)


async def test_a_folder_swapped_for_a_link_after_the_check_never_uploads_the_outside_secret(
    env: Env, layout: dict[str, Path]
) -> None:
    folder = layout["allowed"] / "sub"
    folder.mkdir()
    (folder / "clip.png").write_bytes(layout["inside"].read_bytes())
    (layout["outside"] / "clip.png").write_bytes(layout["secret"].read_bytes())
    secret = layout["secret"].read_bytes()
    with folder_or_link(folder, layout["outside"]).running() as swap:
        stored, errors = await _upload_many(env, layout["allowed"], folder / "clip.png")
    leaked = sum(secret in data for data in stored_bytes(env))
    assert leaked == 0, f"the outside secret was stored {leaked} times in {TRIES} tries"
    assert swap.flips > TRIES // 10, "the swapper barely ran: the race was not tried"
    assert stored > 0, errors[:3]
    _assert_only_policy_refusals(errors)


def _close(a: list[float], b: list[float]) -> bool:
    if len(a) != len(b):
        return False
    return all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


async def test_a_symlink_swapped_after_the_check_never_embeds_the_outside_secret(
    env: Env, layout: dict[str, Path]
) -> None:
    async with TwelveLabsClient(api_key=API_KEY, base_url=env.sandbox.base_url) as tl:
        reference = {
            name: (await tl.embed.image(path=layout[name])).parts[0].segments[0].float_
            for name in ("inside", "secret")
        }
    assert not _close(reference["inside"], reference["secret"]), "the two pictures must embed differently"
    target = layout["allowed"] / "clip.png"
    embedded = {"inside": 0, "secret": 0, "neither": 0}
    errors: list[str] = []
    async with Client(build_server(_settings(env, layout["allowed"]))) as client:
        with regular_or_link(target, layout["inside"].read_bytes(), layout["secret"]).running():
            for _ in range(TRIES):
                result = await client.call_tool(
                    "create_embedding", {"image_path": str(target), "include_vector": True}
                )
                if result.is_error:
                    errors.append(text_of(result))
                    continue
                assert result.structured_content is not None
                vector = result.structured_content["embeddings"][0]["vector"]
                which = next((n for n, ref in reference.items() if _close(vector, ref)), "neither")
                embedded[which] += 1
    assert embedded["secret"] == 0, f"the outside secret's embedding was returned: {embedded}"
    assert embedded["inside"] > 0 and embedded["neither"] == 0, embedded
    _assert_only_policy_refusals(errors)


async def test_a_hard_link_to_an_outside_file_is_refused_and_nothing_is_sent(
    env: Env, layout: dict[str, Path]
) -> None:
    linked = layout["allowed"] / "linked.png"
    os.link(layout["secret"], linked)
    before = _asset_count(env)
    async with Client(build_server(_settings(env, layout["allowed"]))) as client:
        for tool, args in (
            ("upload_asset", {"path": str(linked)}),
            ("create_embedding", {"image_path": str(linked)}),
        ):
            result = await client.call_tool(tool, args)
            assert result.is_error, f"{tool} accepted a hard link to a file outside the allowed folders"
            assert "hard link" in text_of(result) and "Copy the file" in text_of(result)
    assert _asset_count(env) == before
    assert not any(layout["secret"].read_bytes() in data for data in stored_bytes(env))


def _playlists(outside_video: Path) -> dict[str, bytes]:
    ref = str(outside_video)
    return {
        "list.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\nfile://{ref}\n#EXT-X-ENDLIST\n".encode(),
        "renamed.mp4": f"#EXTM3U\n#EXTINF:6,\n{ref}\n#EXT-X-ENDLIST\n".encode(),
        "concat.mov": f"ffconcat version 1.0\nfile '{ref}'\n".encode(),
        "stream.mkv": b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n",
        "manifest.mp4": f'<?xml version="1.0"?><MPD><BaseURL>file://{ref}</BaseURL></MPD>'.encode(),
    }


async def test_playlists_naming_outside_files_are_refused_by_every_local_file_tool(
    env: Env, seed: Seed, layout: dict[str, Path]
) -> None:
    outside_video = seed.media / "clip.mp4"
    before = _asset_count(env)
    async with Client(build_server(_settings(env, layout["allowed"]))) as client:
        for name, content in _playlists(outside_video).items():
            path = layout["allowed"] / name
            path.write_bytes(content)
            for tool, args in (
                ("upload_asset", {"path": str(path), "wait_s": 30}),
                ("create_embedding", {"video_path": str(path), "wait_s": 30}),
                ("search_videos", {"image_path": str(path), "index_id": seed.index_id}),
            ):
                result = await client.call_tool(tool, args)
                assert result.is_error, f"{tool} accepted the playlist {name}"
                assert "Upload the media file itself" in text_of(result), text_of(result)
        # A playlist suffix given as the stored name is refused too: the upstream decodes by it.
        picture = layout["allowed"] / "picture.png"
        picture.write_bytes(layout["inside"].read_bytes())
        result = await client.call_tool("upload_asset", {"path": str(picture), "filename": "x.m3u8"})
        assert result.is_error and "playlist or manifest" in text_of(result)
    assert _asset_count(env) == before


def test_a_fifo_swapped_in_never_wedges_jobs_or_shutdown(layout: dict[str, Path], tmp_path: Path) -> None:
    """Against the real stdio process: regular file ↔ FIFO flips under upload_asset calls. Every job
    must end, a legitimate upload must still work afterwards, and closing stdin must end the process."""
    allowed = layout["allowed"]
    target = allowed / "clip.png"
    inside = layout["inside"].read_bytes()
    tmp_file, tmp_fifo = allowed / ".swap-file", allowed / ".swap-fifo"

    def regular() -> None:
        tmp_file.write_bytes(inside)
        os.replace(tmp_file, target)

    def fifo() -> None:
        tmp_fifo.unlink(missing_ok=True)
        os.mkfifo(tmp_fifo)
        os.replace(tmp_fifo, target)

    regular()
    server = StdioServer(_env(tmp_path, TL_MCP_ALLOWED_DIRS=str(allowed)))
    try:
        server.handshake()
        pending: list[str] = []
        with Swapper(regular, fifo).running():
            for _ in range(40):
                rid = server.send(
                    "tools/call", {"name": "upload_asset", "arguments": {"path": str(target), "wait_s": 1}}
                )
                result = server.response(rid, timeout=30)["result"]
                data = result.get("structuredContent") or {}
                if data.get("status") == "in_progress":
                    pending.append(data["job_id"])
        regular()
        for job_id in pending:
            rid = server.send(
                "tools/call", {"name": "wait_for_task", "arguments": {"id": job_id, "wait_s": 20}}
            )
            waited = server.response(rid, timeout=40)["result"]
            assert (waited.get("structuredContent") or {}).get("done") or waited.get("isError"), (
                f"job {job_id} never ended: {waited}"
            )
        legit = layout["allowed"] / "legit.png"
        legit.write_bytes(inside)
        rid = server.send(
            "tools/call", {"name": "upload_asset", "arguments": {"path": str(legit), "wait_s": 30}}
        )
        result = server.response(rid, timeout=40)["result"]
        assert result["isError"] is False and result["structuredContent"]["status"] == "completed", result
        server.close_stdin()
        code, took = server.wait_exit()
    finally:
        server.stop()
    assert code == 0 and took < 20, server.err_text[-3000:]
