"""The MCP App: tools bound to the moments view, the view as a `ui://` resource, and results that stay
what they were for hosts without the extension."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import TextResourceContents

from tests.server.conftest import World, call_ok, text_of
from tl_mcp.server import build_server
from tl_mcp.server.apps import APP_TOOLS, MOMENTS_URI, media_origin

pytestmark = pytest.mark.anyio


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
        assert bound == {name: {"ui": {"resourceUri": MOMENTS_URI}} for name in APP_TOOLS}
        listed = [r for r in (await c.list_resources()).resources if r.uri == MOMENTS_URI]
        assert listed and listed[0].mime_type == APP_MIME_TYPE
        read = await c.read_resource(MOMENTS_URI)
    (content,) = read.contents
    assert isinstance(content, TextResourceContents) and content.mime_type == APP_MIME_TYPE
    origin = media_origin(world.sandbox.base_url)
    assert origin.startswith("http://127.0.0.1:")
    # The sandbox's signed media URLs live on its (random) port: the CSP must let the <video> reach it.
    assert content.meta == {"ui": {"csp": {"resourceDomains": [origin]}, "prefersBorder": True}}
    html = content.text
    assert html.startswith("<!doctype html>") and "ui/initialize" in html
    # Self-contained: nothing is loaded from anywhere at run time.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html, re.IGNORECASE)
    assert not re.search(r"https?://", html), "the view must not name any origin"


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
