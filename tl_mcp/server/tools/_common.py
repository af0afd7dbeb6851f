"""Pieces shared by the toolset modules: argument types, the wait bound, the one way a job watches
upstream work, and small formatting helpers."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tl_mcp.api.errors import NotFoundError, TwelveLabsError
from tl_mcp.redaction import display_url
from tl_mcp.server.errors import explain
from tl_mcp.server.results import call
from tl_mcp.server.state import AppState

Ctx = Context[AppState, Any]
T = TypeVar("T")

#: No tool call blocks longer than this, whatever the caller asks; longer work continues as a job.
MAX_WAIT_S = 300.0
DEFAULT_WAIT_S = 45.0

#: The pattern already asks for one character at least, so no min_length is stated beside it.
Id = Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
#: A list tool's page number and size.
PageNumber = Annotated[int, Field(ge=1, le=10_000)]
PageLimit = Annotated[int, Field(ge=1, le=50)]
#: How many videos of an index are looked through to find the one made from an asset.
_SCAN_VIDEOS = 200

WaitS = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT_S,
        description="Seconds to wait, then a job_id for wait_for_task.",
    ),
]


def http_url(value: str, what: str = "url") -> str:
    if not value.startswith(("https://", "http://")):
        raise ToolError(f"{what} must be an http(s) URL, got {display_url(value)[:60]!r}.")
    return value


def one_of(what: str, **options: object) -> str:
    """The name of the single option given; bad combinations never reach the network."""
    given = [name for name, value in options.items() if value not in (None, "", [])]
    if len(given) != 1:
        names = ", ".join(options)
        raise ToolError(f"{what}: give exactly one of {names} (got {', '.join(given) or 'none'}).")
    return given[0]


def display_name(value: str, what: str = "name") -> str:
    """A name people will read in listings: not blank, no control characters (caught before the network)."""
    if not value.strip():
        raise ToolError(f"{what} must contain a visible character; give a short descriptive {what}.")
    bad = sorted({f"U+{ord(ch):04X}" for ch in value if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0})
    if bad:
        raise ToolError(
            f"{what} contains control characters ({', '.join(bad[:5])}); remove them and call again."
        )
    return value


async def asset_mixup(state: AppState, index_id: str, video_id: str) -> str | None:
    """Why `video_id`, unknown to the index, is an asset id and what to call instead; None if it is not one.

    Asset ids and video ids look alike, and upload_asset returns both, so mixing them up is common.
    """
    try:
        await state.client.assets.get(video_id)
    except TwelveLabsError:
        return None
    found = None
    try:
        scanned = 0
        async for video in state.client.videos.iter(index_id):
            if video.asset_id == video_id:
                found = video.id
                break
            scanned += 1
            if scanned >= _SCAN_VIDEOS:
                break
    except TwelveLabsError:
        pass  # the hint below still names the asset; without the scan it just cannot name its video
    text = f"{video_id} is an asset id, not a video id of index {index_id}."
    if found:
        text += f" Its video there is {found}: {call('get_video', index_id=index_id, video_id=found)}."
    else:
        text += (
            f" It is not indexed there: {call('list_videos', index_id=index_id)} shows the videos, and "
            "upload_asset with index_id indexes media."
        )
    return text + " analyze_video and summarize_video also take it directly as asset_id."


async def video_not_found(
    state: AppState, action: str, index_id: str, video_id: str, exc: NotFoundError
) -> str:
    """The error text for a 404 on a video: the asset-id mix-up when that is what happened."""
    mixup = await asset_mixup(state, index_id, video_id)
    return f"{action} failed: {mixup}" if mixup else explain(action, exc)
