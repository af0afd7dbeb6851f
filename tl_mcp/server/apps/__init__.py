"""The MCP App (`io.modelcontextprotocol/ui`): one `ui://` view that plays the moments a tool found.

Tools named in `APP_TOOLS` carry `_meta.ui.resourceUri`, the only key the spec requires, because every
byte of it is paid in every tools/list. Hosts without the extension ignore `_meta` and see the same
results as before; the view itself talks to the host only through the Apps bridge.
"""

from __future__ import annotations

from importlib import resources as importlib_resources
from typing import Any
from urllib.parse import urlsplit

from mcp.server.apps import APP_MIME_TYPE, Apps
from mcp.server.mcpserver.resources import Resource
from pydantic import ConfigDict

from tl_mcp.server.state import StateHolder

MOMENTS_URI = "ui://tl-mcp/moments"
#: Tools whose results the view renders: moments, citations, a video's transcript, chapters/highlights.
APP_TOOLS = frozenset(
    {"search_videos", "create_response", "continue_session", "get_video", "summarize_video"}
)


def moments_html() -> str:
    return importlib_resources.files("tl_mcp.server.apps").joinpath("moments.html").read_text("utf-8")


def tool_meta(name: str) -> dict[str, Any] | None:
    """The `_meta` that binds tool `name` to the view, or None for a tool the view does not render."""
    return {"ui": {"resourceUri": MOMENTS_URI}} if name in APP_TOOLS else None


def media_origin(base_url: str) -> str:
    """The origin the sandbox serves media and thumbnails from (its signed `/media/` URLs)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


class _MomentsView(Resource):
    """The view, with a CSP that names where this server's media lives.

    That origin is only known once the lifespan has opened the backend (the embedded sandbox takes a
    random port), and the SDK copies `meta` into the read result after `read()`, so `read()` sets it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    holder: StateHolder

    async def read(self) -> str:
        state = self.holder.get()
        # Cloud streams and pictures come from CDNs whose names the API does not promise; there the view
        # shows pictures through resources/read where it can, and says when a stream cannot play.
        domains = [media_origin(state.base_url)] if state.backend == "sandbox" else []
        self.meta = {"ui": {"csp": {"resourceDomains": domains}, "prefersBorder": True}}
        return moments_html()


def moments_app(holder: StateHolder) -> Apps:
    """The Apps extension with the moments view; the tools are bound through `tool_meta`."""
    apps = Apps()
    apps.add_resource(
        _MomentsView(
            uri=MOMENTS_URI,
            name="moments",
            title="Moments player",
            description="Gallery and player for the moments of search results, Jockey answers and summaries.",
            mime_type=APP_MIME_TYPE,
            holder=holder,
        )
    )
    return apps


__all__ = ["APP_TOOLS", "MOMENTS_URI", "moments_app", "tool_meta"]
