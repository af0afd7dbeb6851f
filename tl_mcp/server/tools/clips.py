"""Toolset `clips`: cut found moments (search hits, Jockey citations) into MP4 files in a write folder."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field

from tl_mcp.api.errors import NotFoundError, TwelveLabsError
from tl_mcp.server.errors import explain
from tl_mcp.server.results import Markdown, ToolResult, fmt_seconds, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import Ctx, Id, video_not_found
from tl_mcp.server.toolspec import ToolSpec, tool

if TYPE_CHECKING:
    # The cutter pulls in PyAV, numpy and Pillow (a third of start-up): imported by the calls that cut.
    from tl_mcp.server.cutting import Segment

#: Most moments per call, and most seconds of video cut per call: each output frame is re-encoded.
MAX_MOMENTS = 20
MAX_TOTAL_S = 600.0
#: A window may end this far past the reported duration (durations are rounded, frames have length).
_END_SLACK_S = 0.05


class ClipMoment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    asset_id: Id | None = Field(default=None, description="From a citation (or give index_id + video_id).")
    index_id: Id | None = None
    video_id: Id | None = Field(default=None, description="From a search hit, with index_id.")
    start: float = Field(ge=0, description="Seconds.")
    end: float = Field(gt=0, description="Seconds.")
    title: str | None = Field(default=None, max_length=120, description="Its title card in a reel.")


class ClipFile(BaseModel):
    path: str
    size_bytes: int
    duration: float = Field(description="Seconds.")
    moments: list[int] = Field(description="Which moments (0-based) it holds, in order.")


class ClipsResult(ToolResult):
    files: list[ClipFile]
    reel: bool
    encoder: str


async def _source(state: AppState, i: int, m: ClipMoment) -> Segment:
    """The moment as a segment of its media URL, once its window is known to lie inside the video."""
    from tl_mcp.server.cutting import Segment

    label = f"moments[{i}]"
    if bool(m.asset_id) == bool(m.video_id) or bool(m.video_id) != bool(m.index_id):
        raise ToolError(
            f"export_clips: {label} needs either asset_id (citations) or index_id with video_id (search "
            "hits), not both and not neither."
        )
    if m.end <= m.start:
        raise ToolError(f"export_clips: {label} ends at {m.end:g} s, not after its start {m.start:g} s.")
    if m.asset_id:
        action = f"Reading asset {m.asset_id}"
        try:
            asset = await state.client.assets.get(m.asset_id)
        except TwelveLabsError as exc:
            raise ToolError(explain(action, exc)) from None
        url, duration, name = (asset.hls.manifest_url if asset.hls else None), asset.duration, m.asset_id
    else:
        assert m.index_id and m.video_id
        action = f"Reading video {m.video_id}"
        try:
            video = await state.client.videos.get(m.index_id, m.video_id)
        except NotFoundError as exc:
            raise ToolError(await video_not_found(state, action, m.index_id, m.video_id, exc)) from None
        except TwelveLabsError as exc:
            raise ToolError(explain(action, exc)) from None
        url = video.hls.video_url if video.hls else None
        duration = video.system_metadata.duration if video.system_metadata else None
        name = m.video_id
    if not url:
        raise ToolError(
            f"export_clips: {label} ({name}) has no stream to cut from: it was uploaded without HLS or "
            "indexed without a video stream (enable_video_stream), or its stream is still being made. "
            "Try again later, or pick a moment of another video."
        )
    if duration is not None and m.end > duration + _END_SLACK_S:
        raise ToolError(
            f"export_clips: {label} ends at {m.end:g} s, after the end of {name} ({duration:g} s). Give a "
            f"window inside 0–{duration:g} s."
        )
    title = m.title or f"{name} · {fmt_seconds(m.start)}–{fmt_seconds(m.end)}"
    return Segment(url=url, start=m.start, end=m.end, label=f"{label} ({name})", title=title)


# Destructive: with overwrite=true it replaces files (never otherwise), and the hint cannot depend on it.
@tool(toolset="clips", title="Export moments as MP4s", read_only=False, destructive=True, idempotent=False)
async def export_clips(
    ctx: Ctx,
    moments: Annotated[
        list[ClipMoment],
        Field(min_length=1, max_length=MAX_MOMENTS, description="Windows from search hits or citations."),
    ],
    folder: Annotated[str, Field(description="Absolute path of an allowed write folder (or one in it).")],
    name: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
            description="File name without .mp4; several clips get -01, -02 …",
        ),
    ] = "clip",
    reel: Annotated[bool, Field(description="Join all into one MP4 with a title card per moment.")] = False,
    overwrite: Annotated[bool, Field(description="Replace existing files of the same names.")] = False,
) -> Annotated[CallToolResult, ClipsResult]:
    """Cut moments into H.264 MP4 files a person can watch, or one highlight reel with title cards.

    Use it after search_videos or create_response to hand over what was found: pass each hit's
    index_id, video_id, start, end (or a citation's asset_id, start, end). Frame-accurate (re-encoded);
    reports segment and byte progress. Writes only into folders the server allows (--allow-write-dir)
    and never replaces a file unless overwrite=true.
    """
    from tl_mcp.server.cutting import CARD_SECONDS, CutError, cut, encoder_name

    state = app_state(ctx)
    stem = name[:-4] if name.lower().endswith(".mp4") else name
    total = sum(m.end - m.start for m in moments)
    if total > MAX_TOTAL_S:
        raise ToolError(
            f"export_clips: the moments add up to {total:g} s; at most {MAX_TOTAL_S:g} s are cut per call. "
            "Export them in several calls."
        )
    # Every check (folder, names, windows) comes before anything is written.
    with state.writes.folder(folder, overwrite=overwrite) as out:
        segments = [await _source(state, i, m) for i, m in enumerate(moments)]
        if reel or len(moments) == 1:
            names = [f"{stem}.mp4"]
        else:
            names = [f"{stem}-{i:02d}.mp4" for i in range(1, len(moments) + 1)]
        temps = [out.reserve(n) for n in names]
        steps = len(segments)

        def report(done: int, frames: int, written: int) -> None:
            message = f"{done}/{steps} moments cut, {frames} frames, {written:,} bytes written"
            anyio.from_thread.run(ctx.report_progress, done, steps, message)
            anyio.from_thread.check_cancelled()

        try:
            sizes = await anyio.to_thread.run_sync(
                functools.partial(cut, segments, temps, reel=reel, progress=report)
            )
        except CutError as exc:
            raise ToolError(f"export_clips failed, nothing was written: {exc}") from None
        paths = out.commit()
    durations = [s.end - s.start for s in segments]
    if reel:
        files = [
            ClipFile(
                path=str(paths[0]),
                size_bytes=sizes[0],
                duration=round(sum(durations) + CARD_SECONDS * len(segments), 3),
                moments=list(range(len(segments))),
            )
        ]
    else:
        files = [
            ClipFile(path=str(p), size_bytes=b, duration=round(d, 3), moments=[i])
            for i, (p, b, d) in enumerate(zip(paths, sizes, durations, strict=True))
        ]
    result = ClipsResult(files=files, reel=reel, encoder=encoder_name(), backend=state.backend)
    md = Markdown("Highlight reel written" if reel else f"{len(files)} clip(s) written")
    md.section(
        "Files",
        [f"- `{f.path}` — {fmt_seconds(f.duration)}, {f.size_bytes:,} bytes" for f in files],
    )
    md.next_step("Hand the file(s) to the person, or open them in any video player.")
    return tool_result(result, md)


TOOLS: list[ToolSpec] = [export_clips]
