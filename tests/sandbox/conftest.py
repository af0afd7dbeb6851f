"""Sandbox fixtures: generated sample media and a sandbox served over real loopback HTTP."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.sandbox.conformance import RECORDER, SpecGuard
from tl_mcp.samples import SampleInfo, make_sample_image, make_sample_video
from tl_mcp.sandbox import embedded
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.perception import Analyzers, FrameFeatureEmbedder, HashingTextEmbedder

MARENGO = [{"model_name": "marengo3.0", "model_options": ["visual", "audio"]}]


@pytest.fixture(scope="module", autouse=True)
def spec_guard() -> Iterator[None]:
    """Wrap every sandbox app a tests/sandbox module starts in ``SpecGuard``: each `/v1.3` response is checked
    against the OpenAPI snapshot, whichever client sent the request. Violations fail the test that caused
    them (see ``pytest_runtest_call``); any left when the module ends (from fixture teardown) fail here.
    Module scope, so sandboxes other test folders start in the same run stay unwrapped."""
    original = embedded.create_app

    def guarded(config: SandboxConfig, *, analyzers: Analyzers | None = None) -> Any:
        app = original(config, analyzers=analyzers)
        app.add_middleware(SpecGuard)
        return app

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embedded, "create_app", guarded)
        yield
    leftover = RECORDER.drain()
    if leftover:
        pytest.fail(_violation_report(leftover), pytrace=False)


def _violation_report(violations: list[str]) -> str:
    return f"{len(violations)} sandbox response(s) violate the OpenAPI spec:\n" + "\n".join(violations)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    try:
        result = yield
    except BaseException as exc:
        violations = RECORDER.drain()
        if violations and isinstance(exc, Exception):
            exc.add_note(_violation_report(violations))
        raise
    violations = RECORDER.drain()
    if violations:
        raise AssertionError(_violation_report(violations))
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RECORDER.validated:
        return
    operations = {(m, t) for m, t, _ in RECORDER.validated}
    terminalreporter.write_sep("-", "sandbox OpenAPI guard")
    terminalreporter.write_line(
        f"{sum(RECORDER.validated.values())} responses validated across {len(operations)} spec operations"
        f" ({len(RECORDER.validated)} operation+status pairs); outside the snapshot, not validated: "
        + ", ".join(f"{m} {p} x{n}" for (m, p), n in sorted(RECORDER.outside_spec.items()))
    )


@dataclass
class Media:
    video: SampleInfo
    images: list[Path]
    short_video: Path
    broken: Path


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("media")
    video = make_sample_video(root / "clip.mp4", speech=False)
    images = [make_sample_image(root / f"scene{i}.png", scene_index=i) for i in range(len(video.scenes))]
    short = make_sample_video(root / "short.mp4", scene_seconds=1.0, with_audio=False).path
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video" * 100)
    return Media(video, images, short, broken)


def client_for(sb: EmbeddedSandbox) -> httpx2.Client:
    return httpx2.Client(base_url=sb.base_url, headers={"x-api-key": sb.api_key}, timeout=30.0)


def wait_for(fetch: Any, done: Any, timeout: float = 30.0) -> Any:
    """Poll ``fetch()`` until ``done(result)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last result: {result}")
        time.sleep(0.05)


def upload(client: httpx2.Client, path: Path, **fields: str) -> httpx2.Response:
    with path.open("rb") as f:
        return client.post("/assets", data={"method": "direct", **fields}, files={"file": (path.name, f)})


def ready_asset(client: httpx2.Client, path: Path) -> str:
    r = upload(client, path)
    assert r.status_code == 201, r.text
    asset_id: str = r.json()["_id"]
    body = wait_for(lambda: client.get(f"/assets/{asset_id}").json(), lambda b: b["status"] != "processing")
    assert body["status"] == "ready", body
    return asset_id


def indexed(client: httpx2.Client, index_id: str, asset_id: str) -> str:
    r = client.post(f"/indexes/{index_id}/indexed-assets", json={"asset_id": asset_id})
    assert r.status_code == 202, r.text
    ia: str = r.json()["_id"]
    body = wait_for(
        lambda: client.get(f"/indexes/{index_id}/indexed-assets/{ia}").json(),
        lambda b: b["status"] in ("ready", "failed"),
    )
    assert body["status"] == "ready", body
    return ia


@dataclass
class Library:
    sb: EmbeddedSandbox
    client: httpx2.Client
    index_id: str
    asset_id: str
    video_id: str


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, media: Media) -> Iterator[Library]:
    """One sandbox (deterministic analyzers) with the sample clip indexed, shared by a test module. It may
    fetch URLs on loopback (off by default): tests fetch media back from its own signed URLs."""
    sb = EmbeddedSandbox.start_in_thread(
        tmp_path_factory.mktemp("sandbox"), analyzers="none", allow_private_urls=True
    )
    try:
        with client_for(sb) as client:
            r = client.post(
                "/indexes", json={"index_name": "library", "models": MARENGO, "addons": ["thumbnail"]}
            )
            assert r.status_code == 201, r.text
            index_id = r.json()["_id"]
            asset_id = ready_asset(client, media.video.path)
            video_id = indexed(client, index_id, asset_id)
            yield Library(sb, client, index_id, asset_id, video_id)
    finally:
        sb.stop()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An engine with the light analyzers and its own database, for tests that build an index by hand."""
    engine = Engine(
        SandboxConfig(data_dir=tmp_path_factory.mktemp("engine")),
        Analyzers(text=HashingTextEmbedder(), image=FrameFeatureEmbedder()),
    )
    try:
        yield engine
    finally:
        engine.db.close()
