"""A media URL's credentials (its userinfo password, a presigned URL's signature or token) reach the
backend and nowhere else: no result text, structured content, progress message, error or log line
repeats them, through a real MCP client against the sandbox."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tests.server.conftest import (
    ProgressRecorder,
    loopback_sandbox,
    loopback_socket,
    sandbox_settings,
    serve_app,
    text_of,
    tiny_video,
)
from tl_mcp.config import Settings
from tl_mcp.redaction import RedactingFilter, Redactor, display_url, mask_urls
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

PASSWORD = "pw-Zq8secret"
SIGNATURE = "sigXk29fe0aa"
TOKEN = "tokQ7mmb41x"
SECRETS = (PASSWORD, SIGNATURE, TOKEN)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_video(tmp_path_factory.mktemp("url-media") / "clip.mp4")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSandbox]:
    with loopback_sandbox(tmp_path_factory.mktemp("url-secrets") / "data") as box:
        yield box


@pytest.fixture
def settings(sandbox: EmbeddedSandbox, tmp_path: Path) -> Settings:
    return sandbox_settings(sandbox, tmp_path / "state", None)


class MediaServer:
    """Serves the video only to a request with the right basic-auth password and presigned query."""

    def __init__(self, video: Path) -> None:
        self.video = video
        self.served = 0
        self.refused = 0
        self.base = ""

    async def media(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"viewer:{PASSWORD}".encode()).decode()
        query = request.query_params
        if request.headers.get("authorization") != expected or (
            query.get("X-Amz-Signature"),
            query.get("token"),
        ) != (SIGNATURE, TOKEN):
            self.refused += 1
            return Response("no", status_code=403)
        self.served += 1
        return FileResponse(self.video, media_type="video/mp4")

    def url(self, password: str = PASSWORD) -> str:
        host = self.base.removeprefix("http://")
        return (
            f"http://viewer:{password}@{host}/media/clip.mp4"
            f"?X-Amz-Date=20260101T000000Z&X-Amz-Signature={SIGNATURE}&token={TOKEN}"
        )


@pytest.fixture
async def media(video: Path) -> AsyncIterator[MediaServer]:
    server = MediaServer(video)
    app = Starlette(routes=[Route("/media/clip.mp4", server.media)])
    async with serve_app(app, loopback_socket()) as base:
        server.base = base
        yield server


def everything(result: CallToolResult, progress: ProgressRecorder | None = None) -> str:
    """All an agent sees of a call: its text, its structured content and its progress messages."""
    return text_of(result) + repr(result.structured_content) + (progress.text if progress else "")


def assert_no_secret(seen: str, caplog: pytest.LogCaptureFixture) -> None:
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in SECRETS:
        assert secret not in seen, seen
        assert secret not in logged, [r.getMessage() for r in caplog.records if secret in r.getMessage()]


def asset_url_at_sandbox(sandbox: EmbeddedSandbox, asset_id: str) -> str:
    """The URL the sandbox stored for an asset: what was really sent upstream."""
    import sqlite3

    db = sqlite3.connect(sandbox.config.data_dir / "sandbox.db")
    try:
        row = db.execute("SELECT source_url FROM assets WHERE id = ?", (asset_id,)).fetchone()
    finally:
        db.close()
    assert row is not None, asset_id
    return str(row[0])


def test_display_url_masks_credentials_and_keeps_the_rest() -> None:
    assert display_url("https://user:secret@host/v.mp4") == "https://user:***@host/v.mp4"
    assert display_url("https://ghp_tok123@host/v.mp4") == "https://***@host/v.mp4"
    assert display_url("https://u:p@ss@host:8443/v.mp4") == "https://u:***@host:8443/v.mp4"
    presigned = "https://b.s3.amazonaws.com/v.mp4?X-Amz-Credential=AK%2F1&X-Amz-Date=1&X-Amz-Signature=ab"
    assert display_url(presigned) == (
        "https://b.s3.amazonaws.com/v.mp4?X-Amz-Credential=***&X-Amz-Date=1&X-Amz-Signature=***"
    )
    assert display_url("https://a.blob.core.windows.net/c/v.mp4?sv=2024&sig=S%2B1&se=2") == (
        "https://a.blob.core.windows.net/c/v.mp4?sv=2024&sig=***&se=2"
    )
    assert display_url("https://h/v.mp4?X-Goog-Signature=f0&access_token=t#k") == (
        "https://h/v.mp4?X-Goog-Signature=***&access_token=***#k"
    )
    assert display_url("https://example.com/clips/a.mp4?x=1") == "https://example.com/clips/a.mp4?x=1"
    assert mask_urls("could not fetch 'https://u:pw@h/x?token=t' (HTTP 403)") == (
        "could not fetch 'https://u:***@h/x?token=***' (HTTP 403)"
    )


async def test_upload_asset_url_sends_the_credentials_and_echoes_none(
    sandbox: EmbeddedSandbox, settings: Settings, media: MediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx2")
    url = media.url()
    progress = ProgressRecorder()
    async with Client(build_server(settings)) as c:
        index = (await c.call_tool("create_index", {"name": "secret-urls"})).structured_content
        assert index
        result = await c.call_tool(
            "upload_asset",
            {"url": url, "index_id": index["id"], "wait": True, "wait_s": 120},
            progress_callback=progress,
        )
        assert not result.is_error, text_of(result)
        data = result.structured_content
        assert data and data["indexing_status"] == "ready", data
        listed = await c.call_tool("list_assets", {})
        got = await c.call_tool("get_video", {"index_id": index["id"], "video_id": data["indexed_asset_id"]})
    # The real URL went upstream, and its credentials opened the media.
    assert asset_url_at_sandbox(sandbox, data["asset_id"]) == url
    assert media.served >= 1 and media.refused == 0
    assert_no_secret(everything(result, progress) + everything(listed) + everything(got), caplog)


async def test_a_failed_url_fetch_is_reported_without_the_credentials(
    sandbox: EmbeddedSandbox, settings: Settings, media: MediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx2")
    wrong = media.url(password="wrong-" + PASSWORD)
    seen = ""
    async with Client(build_server(settings)) as c:
        index = (await c.call_tool("create_index", {"name": "secret-urls-bad"})).structured_content
        assert index
        failed = await c.call_tool("upload_asset", {"url": wrong, "index_id": index["id"], "wait_s": 60})
        seen += everything(failed)
        assert failed.is_error and "HTTP 403" in text_of(failed), text_of(failed)
        for bad in (
            {"url": "ftp://viewer:" + PASSWORD + "@example.com/v.mp4"},
            {"url": "https://viewer:" + PASSWORD + "@example.com/v.mp4?token=" + TOKEN, "index_id": "nope"},
        ):
            refused = await c.call_tool("upload_asset", bad)
            assert refused.is_error, text_of(refused)
            seen += everything(refused)
    assert media.refused >= 1
    assert_no_secret(seen, caplog)


async def test_bulk_ingest_urls_are_sent_as_given_and_shown_masked(
    sandbox: EmbeddedSandbox, settings: Settings, media: MediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx2")
    # `.invalid` never resolves, so the private-address check leaves it to the sandbox, which takes it.
    remote = f"https://viewer:{PASSWORD}@media.invalid/a.mp4?X-Amz-Signature={SIGNATURE}&token={TOKEN}"
    progress = ProgressRecorder()
    async with Client(build_server(settings)) as c:
        result = await c.call_tool("bulk_ingest", {"urls": [remote]}, progress_callback=progress)
        assert not result.is_error, text_of(result)
        data = result.structured_content
        assert data and len(data["uploaded"]) == 1, data
        shown = data["uploaded"][0]["source"]
        assert shown == "https://viewer:***@media.invalid/a.mp4?X-Amz-Signature=***&token=***"
        # Private addresses are refused before anything is sent; the refusal names the URL masked.
        refused = await c.call_tool("bulk_ingest", {"urls": [media.url()]})
        assert refused.is_error and "viewer:***@127.0.0.1" in text_of(refused), text_of(refused)
    assert asset_url_at_sandbox(sandbox, data["uploaded"][0]["asset_id"]) == remote
    assert_no_secret(everything(result, progress) + everything(refused), caplog)


async def test_other_url_arguments_are_never_echoed_with_their_credentials(
    sandbox: EmbeddedSandbox, tmp_path: Path, media: MediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx2")
    url = media.url()
    wrong = media.url(password="wrong-" + PASSWORD)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("create_embedding", {"video_url": url, "wait_s": 120}),
        ("create_embedding", {"image_url": wrong}),
        ("analyze_video", {"url": wrong, "prompt": "What happens?"}),
        ("search_videos", {"image_url": wrong, "index_id": "missing"}),
        ("start_analysis_task", {"url": wrong, "prompt": "Describe it.", "wait_s": 0}),
    ]
    seen = ""
    async with Client(build_server(sandbox_settings(sandbox, tmp_path, None, toolsets="all"))) as c:
        for name, args in calls:
            progress = ProgressRecorder()
            result = await c.call_tool(name, args, progress_callback=progress)
            seen += everything(result, progress)
    assert media.served >= 1
    assert_no_secret(seen, caplog)


def test_the_sandbox_says_why_it_refused_a_url_without_its_credentials(tmp_path: Path) -> None:
    box = EmbeddedSandbox.start_in_thread(tmp_path / "data", analyzers="none", allow_private_urls=False)
    headers = {"x-api-key": box.api_key}
    try:
        private = f"http://viewer:{PASSWORD}@127.0.0.1:9/v.mp4?token={TOKEN}"
        refused = httpx2.post(
            f"{box.base_url}/assets", headers=headers, data={"method": "url", "url": private}
        )
        not_http = httpx2.post(
            f"{box.base_url}/assets",
            headers=headers,
            data={"method": "url", "url": f"ftp://viewer:{PASSWORD}@h/v.mp4"},
        )
    finally:
        box.stop()
    assert refused.status_code == 400 and "'http://viewer:***@127.0.0.1:9/v.mp4?token=***'" in refused.text
    assert not_http.status_code == 400 and "ftp://viewer:***@h" in not_http.text, not_http.text
    for answer in (refused, not_http):
        assert PASSWORD not in answer.text and TOKEN not in answer.text, answer.text


def test_the_log_filter_masks_url_credentials_whoever_logs_them() -> None:
    record = logging.LogRecord(
        "somelib", logging.WARNING, __file__, 1, "GET %s failed", (f"https://u:{PASSWORD}@h/v?sig=s1",), None
    )
    assert RedactingFilter(Redactor()).filter(record)
    assert record.getMessage() == "GET https://u:***@h/v?sig=*** failed"


def test_every_url_of_a_text_is_masked_however_it_is_joined_or_escaped() -> None:
    # Joined without a space (a list in an error), or with JSON's escaped slashes (an upstream body quoted
    # in a message), each URL is still its own URL and keeps none of its credentials.
    assert mask_urls("tried https://u:p1@a/x,https://v:p2@b/y") == "tried https://u:***@a/x,https://v:***@b/y"
    assert mask_urls("https://h/r?next=https://w:p3@c/z") == "https://h/r?next=https://w:***@c/z"
    assert mask_urls('{"url":"https:\\/\\/u:p4@h\\/v.mp4?token=t5"}') == (
        '{"url":"https:\\/\\/u:***@h\\/v.mp4?token=***"}'
    )
    assert mask_urls("HTTPS://u:p6@[::1]:8080/v?TOKEN=t6") == "HTTPS://u:***@[::1]:8080/v?TOKEN=***"


def test_display_url_masks_the_other_spellings_of_a_credential_parameter() -> None:
    url = "https://h/v.mp4?pass=p1&pw=p2&jwt=p3&hmac=p4&access_key=p5&AccountKey=p6&x=keep"
    assert display_url(url) == (
        "https://h/v.mp4?pass=***&pw=***&jwt=***&hmac=***&access_key=***&AccountKey=***&x=keep"
    )
