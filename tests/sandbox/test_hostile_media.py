"""Hostile media against the sandbox API, the way an attacker would send it: files that make FFmpeg open
other files (HLS playlists, concat lists) must never be decoded, and files whose headers lie (a huge
declared duration, a huge declared picture) must fail with a reason, in bounded time and memory.

Memory is measured on a real sandbox process (its RSS, polled from /proc while the upload is processed),
so a regression shows as growth and is stopped before it can hurt the machine."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.processes import free_port
from tests.hostile_media import huge_png, mka_declaring, mpegts_copy, referencing_files
from tests.sandbox.conftest import MARENGO, Media, client_for, upload, wait_for
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.media import MediaError, MediaLimits, open_media
from tl_mcp.sandbox.work.asset import analyze_asset

REPO = Path(__file__).resolve().parents[2]
KEY = "tlk_hostile"
#: How much a sandbox process may grow while it refuses or fails one hostile file.
RSS_GROWTH_LIMIT = 200 * 2**20


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server for a folder: what a URL upload fetches."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietFiles, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _asset_done(client: httpx2.Client, asset_id: str, timeout: float = 30.0) -> dict[str, Any]:
    body: dict[str, Any] = wait_for(
        lambda: client.get(f"/assets/{asset_id}").json(), lambda b: b["status"] != "processing", timeout
    )
    return body


# ----- files that reference other files -------------------------------------------------------------------
@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A real video (as the MPEG-TS segment a playlist would name) outside every folder the sandbox owns."""
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    clip = make_sample_video(secret / "secret.mp4", scene_seconds=2.0, with_audio=False, speech=False)
    return mpegts_copy(clip.path, secret / "secret.ts")


@pytest.mark.parametrize("form", ["hls-absolute", "hls-file-url", "hls-relative", "ffconcat"])
def test_files_referencing_other_files_are_never_decoded(
    tmp_path: Path, outside: Path, file_server: tuple[Path, str], form: str
) -> None:
    data_dir = tmp_path / "sandbox"
    sb = EmbeddedSandbox.start_in_thread(data_dir, analyzers="none", allow_private_urls=True)
    try:
        # Stored at media/<asset id>/source.<suffix>: a relative reference climbs from there.
        text = referencing_files(outside, data_dir / "media" / "x")[form]
        served, base = file_server
        with client_for(sb) as c:
            for name in ("list.m3u8", "list.mp4"):  # the suffix the client picks must not matter
                (tmp_path / name).write_text(text)
                r = upload(c, tmp_path / name)
                assert r.status_code == 400, r.text
                body = r.json()
                assert body["code"] == "video_file_broken"
                assert "Playlists" in body["message"] and "Accepted containers" in body["message"]

                (served / name).write_text(text)
                r = c.post("/assets", data={"method": "url", "url": f"{base}/{name}"})
                assert r.status_code == 201, r.text
                failed = _asset_done(c, r.json()["_id"])
                assert failed["status"] == "failed", failed
                assert "Playlists" in failed["error"]["message"]

            r = c.post(
                "/embed/tasks",
                data={"model_name": "marengo3.0"},
                files={"video_file": ("list.m3u8", text.encode())},
            )
            assert r.status_code == 400 and r.json()["code"] == "video_file_broken", r.text
        engine: Any = sb.engine
        assert engine.db.one("SELECT COUNT(*) AS n FROM segments")["n"] == 0
        assert not list((data_dir / "media").rglob("*.jpg")), "a frame was decoded from somewhere"
    finally:
        sb.stop()


def test_open_media_refuses_what_ffmpeg_would_open_by_name(tmp_path: Path, outside: Path) -> None:
    """The decoder is chosen from the bytes, never from the name: an HLS playlist named .m3u8 (which FFmpeg
    alone would demux and follow) and real media under a misleading suffix."""
    (tmp_path / "inside").mkdir()
    playlist = tmp_path / "inside" / "list.m3u8"
    playlist.write_text(referencing_files(outside, playlist.parent)["hls-relative"])
    with pytest.raises(MediaError) as refused, open_media(playlist, MediaLimits()):
        pass
    assert refused.value.code == "video_file_broken" and "Playlists" in refused.value.message

    disguised = tmp_path / "video.m3u8"
    disguised.write_bytes(outside.read_bytes())
    with open_media(disguised, MediaLimits()) as container:
        assert container.format.name == "mpegts"


# ----- headers that lie -------------------------------------------------------------------------------------
class SandboxProcess:
    """``python -m tl_mcp.sandbox`` on a free loopback port, with its RSS readable while it works."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tl_mcp.sandbox",
                "--port",
                str(self.port),
                "--analyzers",
                "none",
                "--data-dir",
                str(data_dir),
            ],
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "TL_MCP_SANDBOX_API_KEYS": KEY,
                "TL_MCP_SANDBOX_ALLOW_PRIVATE_URLS": "1",
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}/v1.3"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"{self.base}/health", timeout=2.0)
                break
            except httpx2.TransportError:
                assert self.proc.poll() is None, "the sandbox exited at start-up"
                assert time.monotonic() < deadline, "the sandbox did not start within 30 s"
                time.sleep(0.1)
        self.baseline = self.rss()

    def client(self) -> httpx2.Client:
        return httpx2.Client(base_url=self.base, headers={"x-api-key": KEY}, timeout=30.0)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for the sandbox process")

    def bounded(self, fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
        """Poll ``fetch()`` until ``done``; fail once the process grew past the limit or time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            grown = self.rss() - self.baseline
            assert grown < RSS_GROWTH_LIMIT, f"the sandbox grew by {grown // 2**20} MiB"
            result = fetch()
            if done(result):
                return result
            assert time.monotonic() < deadline, f"not done within {timeout:.0f} s; last: {result}"
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[Callable[..., SandboxProcess]]:
    started: list[SandboxProcess] = []

    def start(**env: str) -> SandboxProcess:
        started.append(SandboxProcess(tmp_path / "sandbox", **env))
        return started[-1]

    try:
        yield start
    finally:
        for sandbox in started:
            sandbox.close()


@pytest.mark.timeout(120)
def test_a_declared_billion_seconds_fails_fast_and_stays_failed(
    tmp_path: Path, file_server: tuple[Path, str], sandbox_process: Callable[..., SandboxProcess]
) -> None:
    served, base = file_server
    liar = mka_declaring(served / "liar.mka", 1e9)
    assert liar.stat().st_size < 16 * 1024
    sb = sandbox_process()
    with sb.client() as c:
        r = upload(c, liar)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "video_duration_too_long"
        assert (
            "1000000000 s" in r.json()["message"] and "TL_MCP_SANDBOX_MAX_DURATION_S" in r.json()["message"]
        )

        r = c.post("/assets", data={"method": "url", "url": f"{base}/liar.mka"})
        assert r.status_code == 201, r.text
        asset_id = r.json()["_id"]
        body = sb.bounded(lambda: c.get(f"/assets/{asset_id}").json(), lambda b: b["status"] != "processing")
        assert body["status"] == "failed" and "declares 1000000000 s" in body["error"]["message"], body
        sb.bounded(lambda: None, lambda _: True)  # and nothing keeps growing once it has failed
    sb.close()

    # A failure caused by the media is final: a restart does not take the job up again.
    again = sandbox_process()
    with again.client() as c:
        time.sleep(1.0)
        body = again.bounded(lambda: c.get(f"/assets/{asset_id}").json(), lambda b: True)
        assert body["status"] == "failed", body


@pytest.mark.timeout(120)
def test_the_duration_is_what_the_packets_hold_not_what_the_header_says(
    tmp_path: Path, sandbox_process: Callable[..., SandboxProcess]
) -> None:
    liar = mka_declaring(tmp_path / "three-hours.mka", 3 * 3600.0)  # under the limit, and untrue
    sb = sandbox_process()
    with sb.client() as c:
        r = upload(c, liar)
        assert r.status_code == 201, r.text
        asset_id = r.json()["_id"]
        body = sb.bounded(lambda: c.get(f"/assets/{asset_id}").json(), lambda b: b["status"] != "processing")
        assert body["status"] == "ready", body
        assert body["duration"] < 2.0, body


@pytest.mark.timeout(120)
def test_a_144_megapixel_png_is_refused_without_decoding_it(
    tmp_path: Path, file_server: tuple[Path, str], sandbox_process: Callable[..., SandboxProcess]
) -> None:
    served, base = file_server
    png = huge_png(served / "huge.png", 12000, 12000)
    assert png.stat().st_size < 64 * 1024
    sb = sandbox_process()
    with sb.client() as c:
        r = upload(c, png)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "video_resolution_too_high"
        assert "12000x12000" in r.json()["message"] and "TL_MCP_SANDBOX_MAX_PIXELS" in r.json()["message"]

        r = c.post("/assets", data={"method": "url", "url": f"{base}/huge.png"})
        asset_id = r.json()["_id"]
        body = sb.bounded(lambda: c.get(f"/assets/{asset_id}").json(), lambda b: b["status"] != "processing")
        assert body["status"] == "failed" and "12000x12000" in body["error"]["message"], body

        index_id = c.post("/indexes", json={"index_name": "q", "models": MARENGO}).json()["_id"]
        r = sb.bounded(
            lambda: c.post(
                "/search",
                data={"index_id": index_id, "search_options": "visual", "query_media_type": "image"},
                files={"query_media_file": ("huge.png", png.read_bytes())},
            ),
            lambda _: True,
        )
        assert r.status_code == 400 and "12000x12000" in r.json()["message"], r.text
        r = c.post(
            "/embed", data={"model_name": "marengo3.0"}, files={"image_file": ("h.png", png.read_bytes())}
        )
        assert r.status_code == 400 and "12000x12000" in r.json()["message"], r.text
        sb.bounded(lambda: None, lambda _: True)


# ----- the limits are settings ------------------------------------------------------------------------------
def test_pixel_duration_and_frame_limits_follow_the_config(tmp_path: Path, media: Media) -> None:
    clip = media.video.path  # 640x360, 10 fps, 18 s
    for config, code, words in (
        ({"max_pixels": 320 * 240}, "video_resolution_too_high", "TL_MCP_SANDBOX_MAX_PIXELS"),
        ({"max_duration_s": 10.0}, "video_duration_too_long", "TL_MCP_SANDBOX_MAX_DURATION_S"),
        ({"max_frames": 50}, "video_file_broken", "TL_MCP_SANDBOX_MAX_FRAMES"),
    ):
        sb = EmbeddedSandbox.start_in_thread(tmp_path / code, analyzers="none", **config)
        try:
            with client_for(sb) as c:
                r = upload(c, clip)
                assert r.status_code == 400, r.text
                assert r.json()["code"] == code and words in r.json()["message"], r.text
        finally:
            sb.stop()


def test_limits_come_from_the_environment_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_MCP_SANDBOX_MAX_DURATION_S", "60")
    monkeypatch.setenv("TL_MCP_SANDBOX_MAX_PIXELS", "1000")
    config = SandboxConfig(data_dir=tmp_path)
    assert (config.max_duration_s, config.max_pixels) == (60.0, 1000)
    monkeypatch.setenv("TL_MCP_SANDBOX_MAX_FRAMES", "many")
    with pytest.raises(ValueError, match="TL_MCP_SANDBOX_MAX_FRAMES must be a number"):
        SandboxConfig(data_dir=tmp_path)


_GROWING_DECODER = """
import sys
from pathlib import Path
from tl_mcp.sandbox.media import MediaError, MediaLimits, decode, open_media

limits = MediaLimits(max_memory_bytes=16 * 2**20)
held = []
try:
    with open_media(Path(sys.argv[1]), limits) as container:
        for frame in decode(container, container.streams.video[0], limits):
            held.append(frame.to_ndarray(format="rgb24").copy())  # a decoder that never lets go
except MediaError as exc:
    print(len(held), exc.message)
else:
    print(len(held), "never stopped")
"""


def test_a_decode_pass_that_grows_memory_past_its_budget_is_given_up(media: Media) -> None:
    # A fresh process: in this one, pages freed by earlier tests are reused without growing RSS.
    done = subprocess.run(
        [sys.executable, "-c", _GROWING_DECODER, str(media.video.path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    count, _, message = done.stdout.strip().partition(" ")
    assert "TL_MCP_SANDBOX_MAX_DECODE_MEMORY_BYTES" in message, done.stdout
    assert int(count) < 180, "the whole video was decoded: the budget never tripped"


def test_a_stored_probe_over_the_limits_never_sizes_an_analysis(tmp_path: Path, media: Media) -> None:
    """A probe saved before a limit existed (or was lowered) is checked again when its job runs."""
    engine = Engine(SandboxConfig(data_dir=tmp_path, analyzers="none"))
    try:
        info = engine.probe(media.video.path)
        info.kind, info.duration = "audio", 1e9  # what the unbounded probe stored for the lying .mka
        with pytest.raises(MediaError) as refused:
            analyze_asset(engine, "a" * 24, media.video.path, info)
        assert refused.value.code == "video_duration_too_long"
    finally:
        engine.stop()
