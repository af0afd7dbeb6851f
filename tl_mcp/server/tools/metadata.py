"""User metadata and what exists: `list_assets`, `update_metadata` (toolset `library`), and the argument
types and checks the other tools share for metadata (`upload_asset`, `add_to_knowledge_store`) and for
metadata filters (`search_videos`, `list_videos`)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api.errors import TwelveLabsError
from tl_mcp.api.models import Bounds, MetadataValue, list_filter_params
from tl_mcp.metadata_limits import USER_METADATA_LIMITS, MetadataLimits, limit_problem, size_problem
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.results import FILL, Listing, Markdown, Page, ToolResult, call, tool_result
from tl_mcp.server.state import app_state
from tl_mcp.server.tools._common import Ctx, Id, PageLimit, PageNumber
from tl_mcp.server.toolspec import ToolSpec, tool

#: Integers wider than this lose digits in JSON numbers; the API wants them as strings.
MAX_SAFE_INT = 2**53 - 1
RANGE_FIELDS = ("duration", "fps", "width", "height", "size")

MetadataArg = Annotated[
    dict[str, Any],
    Field(max_length=50, description="Your key/values: text, number, true/false or a list of text."),
]
FilterArg = Annotated[
    dict[str, Any],
    Field(description='e.g. {"duration":{"gte":60},"team":"red"}: system fields or your metadata keys.'),
]


def metadata_arg(
    value: dict[str, Any], what: str, limits: MetadataLimits = USER_METADATA_LIMITS
) -> dict[str, MetadataValue]:
    """`value` checked the way the API will check it, so a bad value fails before anything is sent."""
    problem = limit_problem(value, limits, what)
    if problem:
        raise ToolError(f"{problem}. Nothing was sent or changed; fix it and call again.")
    for key, item in value.items():
        problem = _value_problem(item)
        if problem:
            raise ToolError(
                f"{what}: `{key}` {problem}. Use text, a number, true/false or a list of text; send "
                "integers wider than 53 bits and verbatim ids as text. Nothing was changed."
            )
    return value


def metadata_edit(value: dict[str, Any]) -> dict[str, MetadataValue | None]:
    """An edit's metadata: as `metadata_arg`, where `None` is also allowed (it deletes its key)."""
    kept = metadata_arg({k: v for k, v in value.items() if v is not None}, "user_metadata")
    return {k: kept.get(k) for k in value}


def _value_problem(item: Any) -> str | None:
    if item is None:
        return "is null (leave the key out instead)"
    if isinstance(item, bool | str):
        return None
    if isinstance(item, int):
        return None if abs(item) <= MAX_SAFE_INT else "is an integer wider than 53 bits"
    if isinstance(item, float):
        return None if math.isfinite(item) else "is not a finite number"
    if isinstance(item, list) and all(isinstance(v, str) for v in item):
        return None
    return "is a list with non-text members" if isinstance(item, list) else "is a nested object"


def list_filters(filt: dict[str, Any]) -> dict[str, Any]:
    """`list_videos`' `filter` (the search filter's spelling) as the video list's query filters."""
    ranges: dict[str, Bounds] = {}
    meta: dict[str, str | float | bool] = {}
    strings: dict[str, str] = {}
    for key, cond in filt.items():
        if key in RANGE_FIELDS:
            if isinstance(cond, dict) and cond and set(cond) <= {"gte", "lte"}:
                if all(_number(v) for v in cond.values()):
                    ranges[key] = cond
                    continue
            elif _number(cond):
                ranges[key] = {"gte": cond, "lte": cond}
                continue
            raise ToolError(f'filter.{key}: give a number or {{"gte": n, "lte": n}} (got {cond!r}).')
        if key in ("filename", "created_at", "updated_at"):
            if not isinstance(cond, str):
                raise ToolError(f"filter.{key}: give text (a file name, or an RFC 3339 time: on or after).")
            strings[key] = cond
        elif key == "id":
            raise ToolError("filter.id does not apply to a listing; get_video reads one video by id.")
        elif isinstance(cond, bool | str) or _number(cond):
            meta[key] = cond
        else:
            raise ToolError(f"filter.{key}: a metadata key matches one text, number or true/false value.")
    return list_filter_params(ranges=ranges, user_metadata=meta, **strings)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class AssetInfo(BaseModel):
    asset_id: str
    filename: str | None = None
    file_type: str | None = None
    status: str | None = None
    duration: float | None = None
    size: int | None = None
    created_at: str | None = None
    user_metadata: dict[str, Any] | None = None


class AssetList(Listing):
    assets: list[AssetInfo]


@tool(toolset="library", title="List uploaded assets", read_only=True, destructive=False, idempotent=True)
async def list_assets(
    ctx: Ctx,
    asset_types: Annotated[
        list[Literal["video", "audio", "image", "document"]] | None, Field(min_length=1)
    ] = None,
    filename: Annotated[str | None, Field(min_length=1, max_length=255)] = None,
    page: PageNumber = 1,
    page_limit: PageLimit = 20,
) -> Annotated[CallToolResult, AssetList]:
    """List uploaded assets (media before any index): id, file, status, metadata.

    Use it to find an asset_id for add_to_knowledge_store or update_metadata, or to check what was
    uploaded.
    """
    state = app_state(ctx)
    with upstream("Listing assets"):
        result = await state.client.assets.list(page, page_limit, asset_types=asset_types, filename=filename)
    rows = [
        AssetInfo(
            asset_id=a.id,
            filename=a.filename,
            file_type=a.file_type,
            status=a.status,
            duration=a.duration,
            size=a.size,
            created_at=a.created_at,
            user_metadata=a.user_metadata or None,
        )
        for a in result.data
    ]
    out = AssetList(assets=rows, page=page, total_pages=result.page_info.total_page, backend=state.backend)
    more = call(
        "list_assets", asset_types=asset_types, filename=filename, page=page + 1, page_limit=page_limit
    )
    md = Page(rows, more if result.has_more else None).render(
        Markdown(f"Assets ({len(rows)})"),
        "Assets",
        lambda a: (
            f"- `{a.asset_id}` {a.filename or ''} — {a.status or '?'}"
            + (f" {a.user_metadata}" if a.user_metadata else "")
        ),
        "No assets: upload_asset uploads one.",
    )
    if rows:
        tag = call("update_metadata", asset_id=rows[0].asset_id, user_metadata=FILL)
        md.next_step(f"Tag one: {tag}; add_to_knowledge_store takes the same asset_id.")
    return tool_result(out, md)


class MetadataResult(ToolResult):
    asset_id: str | None = None
    index_id: str | None = None
    video_id: str | None = None
    user_metadata: dict[str, Any]


@tool(toolset="library", title="Edit user metadata", read_only=False, destructive=False, idempotent=True)
async def update_metadata(
    ctx: Ctx,
    user_metadata: Annotated[
        dict[str, Any], Field(max_length=50, description="Keys to set; null deletes a key.")
    ],
    asset_id: Id | None = None,
    video_id: Annotated[Id | None, Field(description="With index_id.")] = None,
    index_id: Id | None = None,
    replace: Annotated[bool, Field(description="Drop the keys not given.")] = False,
) -> Annotated[CallToolResult, MetadataResult]:
    """Set, change or delete user metadata on an asset or an indexed video.

    Use it to tag media (team, date, reviewed) that search_videos and list_videos can then filter on;
    a video's metadata is what search filters see.
    """
    state = app_state(ctx)
    if bool(asset_id) == bool(video_id):
        raise ToolError("update_metadata: give asset_id, or video_id with index_id (not both).")
    if video_id and not index_id:
        raise ToolError("update_metadata: video_id needs its index_id (list_indexes shows them).")
    if index_id and not video_id:
        raise ToolError("update_metadata: index_id goes with a video_id (list_videos shows them).")
    edit = metadata_edit(user_metadata)
    c = state.client
    what = f"asset {asset_id}" if asset_id else f"video {video_id}"
    try:
        if asset_id:
            if not replace:
                _refuse_oversized_merge((await c.assets.get(asset_id)).user_metadata, edit)
            await c.assets.update_metadata(asset_id, edit, replace=replace)
            now = (await c.assets.get(asset_id)).user_metadata
        else:
            assert video_id and index_id
            current = (await c.indexed_assets.get(index_id, video_id)).user_metadata or {}
            if replace:
                # A video's metadata route only merges: drop the keys not given by sending them as null.
                edit = {**{k: None for k in current if k not in edit}, **edit}
            else:
                _refuse_oversized_merge(current, edit)
            await c.indexed_assets.update_metadata(index_id, video_id, edit)
            now = (await c.indexed_assets.get(index_id, video_id)).user_metadata
    except TwelveLabsError as exc:
        raise ToolError(explain(f"Editing the metadata of {what}", exc)) from None
    out = MetadataResult(
        asset_id=asset_id,
        index_id=index_id,
        video_id=video_id,
        user_metadata=now or {},
        backend=state.backend,
    )
    md = Markdown(f"Metadata of {what}")
    md.section("Metadata", [f"- {k}: {v!r}" for k, v in (now or {}).items()] or ["(none)"])
    scalar = next(((k, v) for k, v in (now or {}).items() if not isinstance(v, list)), None)
    if video_id and scalar:
        filt = dict([scalar])
        md.next_step(f"Filter on it: {call('list_videos', index_id=index_id, filter=filt)}.")
    return tool_result(out, md)


def _refuse_oversized_merge(current: dict[str, Any] | None, edit: dict[str, MetadataValue | None]) -> None:
    """A merge whose keys each fit can still make the whole too big with the keys already there."""
    merged = {**(current or {}), **edit}
    problem = size_problem(
        {k: v for k, v in merged.items() if v is not None}, USER_METADATA_LIMITS, "user_metadata"
    )
    if problem:
        raise ToolError(
            f"{problem} after this edit. Nothing was changed; delete keys (null) or send fewer and shorter "
            "values, or replace=true to drop the keys left out."
        )


TOOLS: list[ToolSpec] = [list_assets, update_metadata]
