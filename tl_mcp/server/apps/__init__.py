"""The MCP App (`io.modelcontextprotocol/ui`): one `ui://` view that plays the moments a tool found.

Tools named in `APP_TOOLS` carry `_meta.ui.resourceUri`, the only key the spec requires, because every
byte of it is paid in every tools/list. Hosts without the extension ignore `_meta` and see the same
results as before; the view itself talks to the host only through the Apps bridge.
"""

from __future__ import annotations

from functools import cache
from importlib import resources as importlib_resources
from typing import Any
from urllib.parse import urlsplit

from mcp.server.apps import APP_MIME_TYPE, Apps
from mcp.server.mcpserver.resources import Resource
from pydantic import ConfigDict

from tl_mcp.server.state import StateHolder

MOMENTS_URI = "ui://tl-mcp/moments"
#: Tools whose results the view renders: moments, citations, a video's transcript, chapters/highlights,
#: and an analysis task's time-based segments (from start_analysis_task, or the job wait_for_task ends).
APP_TOOLS = frozenset(
    {
        "search_videos",
        "create_response",
        "continue_session",
        "get_video",
        "summarize_video",
        "start_analysis_task",
        "wait_for_task",
    }
)


#: Where the TwelveLabs cloud serves HLS streams and their thumbnails (the CloudFront host in the API
#: docs' `GET /indexes/{id}/videos/{id}` example) and search thumbnails (the S3 bucket in its search
#: notebook). Its API promises neither; media from elsewhere is blocked by a host that enforces the CSP.
CLOUD_STREAM_ORIGIN = "https://d2cp8xx7n5vxnu.cloudfront.net"
CLOUD_THUMBNAIL_ORIGIN = "https://project-one-thumbnail.s3.us-west-2.amazonaws.com"

#: hls.js, vendored as `vendor/hls.min.js` and `vendor/hls.js.LICENSE` from the npm tarball of this
#: version (`dist/hls.min.js`, `LICENSE`); tests/server/test_apps.py pins both files' sha256.
HLS_JS_VERSION = "1.7.4"
_HLS_JS_SLOT = "/* hls.min.js */"


@cache
def moments_html() -> str:
    """The view with hls.js inlined, so the document stays self-contained (no script is fetched)."""
    apps = importlib_resources.files("tl_mcp.server.apps")
    page = apps.joinpath("moments.html").read_text("utf-8")
    player = apps.joinpath("vendor", "hls.min.js").read_text("utf-8")
    # The source map is not shipped, and in a srcdoc frame its relative name resolves nowhere.
    player = player.rstrip("\n").rsplit("\n//# sourceMappingURL=", 1)[0]
    credit = f"/*! hls.js {HLS_JS_VERSION}, Apache License 2.0, (c) 2017 Dailymotion; see hls.js.LICENSE */"
    return page.replace(_HLS_JS_SLOT, f"{credit}\n{player}", 1)


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
        # The <video> loads media from these origins, and hls.js (where the browser has no native HLS)
        # fetches the playlist and segments from the stream's origin, hence connectDomains.
        if state.backend == "sandbox":
            origin = media_origin(state.base_url)
            media, connect = [origin], [origin]
        else:
            media, connect = [CLOUD_STREAM_ORIGIN, CLOUD_THUMBNAIL_ORIGIN], [CLOUD_STREAM_ORIGIN]
        csp = {"resourceDomains": media, "connectDomains": connect}
        self.meta = {"ui": {"csp": csp, "prefersBorder": True}}
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
