"""The MCP App: tools bound to the moments view, the view as a `ui://` resource, and results that stay
what they were for hosts without the extension."""

from __future__ import annotations

import re
from hashlib import sha256
from importlib import resources as importlib_resources
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import TextResourceContents
from starlette.applications import Starlette

from tests.server.conftest import World, call_ok, loopback_socket, serve_app, text_of
from tl_mcp.config import Settings
from tl_mcp.server import build_server
from tl_mcp.server.apps import (
    APP_TOOLS,
    CLOUD_STREAM_ORIGIN,
    CLOUD_THUMBNAIL_ORIGIN,
    HLS_JS_VERSION,
    MOMENTS_URI,
    media_origin,
)
from tl_mcp.server.registry import all_tools

pytestmark = pytest.mark.anyio

APPS = importlib_resources.files("tl_mcp.server.apps")
#: The files of `npm pack hls.js@1.7.4` that are vendored (dist/hls.min.js, LICENSE): a changed file is
#: a new release to vendor on purpose, with its version here and in HLS_JS_VERSION.
VENDORED = {
    "hls.min.js": "cfc70cc9e9fc63d071919e087670abc760c8fd1bc889b88588026e4d22193bbe",
    "hls.js.LICENSE": "ca8773cf798c7ed997d4dd7c8e23c348699f8d5b7462636694cc14de6cda12db",
}


def _apps_client(world: World) -> Client:
    return Client(
        build_server(world.settings()), extensions=[advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
    )


async def test_bound_tools_carry_only_the_resource_uri_and_the_view_is_served(world: World) -> None:
    async with _apps_client(world) as c:
        assert EXTENSION_ID in (c.server_capabilities.extensions or {})
        tools = await c.list_tools()
        bound = {t.name: t.meta for t in tools.tools if t.meta}
        # The spec asks for resourceUri only, and every byte of _meta is paid in each tools/list.
        listed = {t.name for t in tools.tools}
        assert bound == {name: {"ui": {"resourceUri": MOMENTS_URI}} for name in APP_TOOLS & listed}
        # start_analysis_task is off by default; every bound name is a real tool all the same.
        assert {spec.name for spec in all_tools()} >= APP_TOOLS and APP_TOOLS - listed == {
            "start_analysis_task"
        }
        listed = [r for r in (await c.list_resources()).resources if r.uri == MOMENTS_URI]
        assert listed and listed[0].mime_type == APP_MIME_TYPE
        read = await c.read_resource(MOMENTS_URI)
    (content,) = read.contents
    assert isinstance(content, TextResourceContents) and content.mime_type == APP_MIME_TYPE
    origin = media_origin(world.sandbox.base_url)
    assert origin.startswith("http://127.0.0.1:")
    # The sandbox's signed media URLs live on its (random) port: the CSP must let the <video> reach it,
    # and hls.js fetch from it.
    csp = {"resourceDomains": [origin], "connectDomains": [origin]}
    assert content.meta == {"ui": {"csp": csp, "prefersBorder": True}}
    html = content.text
    assert html.startswith("<!doctype html>") and "ui/initialize" in html
    # Self-contained: nothing is loaded from anywhere at run time, hls.js included.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html, re.IGNORECASE)
    player = (APPS / "vendor" / "hls.min.js").read_text("utf-8").rsplit("\n//# sourceMappingURL=", 1)[0]
    assert player in html and "sourceMappingURL" not in html
    assert f"hls.js {HLS_JS_VERSION}, Apache License 2.0" in html
    # One inline script for hls.js, one for the view: the bundle holds nothing that would end its element.
    assert html.lower().count("<script") == html.lower().count("</script>") == 2
    own = (APPS / "moments.html").read_text("utf-8")
    assert not re.search(r"https?://", own), "the view's own code must not name any origin"


def test_the_vendored_hls_js_is_the_pinned_release() -> None:
    got = {name: sha256((APPS / "vendor" / name).read_bytes()).hexdigest() for name in VENDORED}
    assert got == VENDORED
    assert HLS_JS_VERSION == "1.7.4"


async def test_on_the_cloud_the_view_may_reach_the_twelvelabs_media_hosts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # the cloud backend's state folder
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with serve_app(Starlette(), loopback_socket()) as base:
        env = {
            "TWELVELABS_API_KEY": "tlk_fake_cloud_key_0123456789",
            "TL_MCP_BACKEND": "cloud",
            "TWELVELABS_BASE_URL": f"{base}/v1.3",
        }
        async with Client(build_server(Settings.from_sources(env=env)), extensions=[apps]) as c:
            (content,) = (await c.read_resource(MOMENTS_URI)).contents
    # Streams (HLS: the <video> or hls.js's requests) and pictures from the documented hosts; never the
    # API's own origin, which takes the API key.
    assert content.meta == {
        "ui": {
            "csp": {
                "resourceDomains": [CLOUD_STREAM_ORIGIN, CLOUD_THUMBNAIL_ORIGIN],
                "connectDomains": [CLOUD_STREAM_ORIGIN],
            },
            "prefersBorder": True,
        }
    }


async def _results(client: Client, world: World) -> list[Any]:
    calls = [
        ("search_videos", {"query": "fresh apples", "index_id": world.index_id, "limit": 3}),
        ("get_video", {"index_id": world.index_id, "video_id": world.video_id}),
    ]
    out = []
    for name, args in calls:
        result = await call_ok(client, name, args)
        out.append((result.structured_content, text_of(result)))
    return out


async def test_hosts_without_the_extension_get_the_same_results(world: World) -> None:
    async with _apps_client(world) as with_apps:
        seen_with = await _results(with_apps, world)
    async with Client(build_server(world.settings())) as plain:
        seen_without = await _results(plain, world)

    def stable(seen: list[Any]) -> list[Any]:
        # Signed media URLs carry a fresh expiry per request; everything else must match exactly.
        return [re.sub(r"\?[^\s\"']*", "?…", repr(s)) for s in seen]

    assert stable(seen_with) == stable(seen_without)
    assert seen_without[0][0]["moments"], "the comparison needs real moments"
