"""Toolset `admin` (off unless enabled): deletions. Every tool here destroys data and says so."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.server.errors import upstream
from tl_mcp.server.registry import ToolSpec, tool
from tl_mcp.server.results import Markdown, tool_result
from tl_mcp.server.state import app_state
from tl_mcp.server.tools._common import Ctx, Id


class Deleted(BaseModel):
    kind: Literal["index", "video", "asset", "knowledge_store", "knowledge_store_item"]
    id: str
    parent_id: str | None = None
    deleted: bool
    backend: Literal["cloud", "sandbox"]


def _done(kind: str, id: str, parent: str | None, backend: Literal["cloud", "sandbox"]) -> CallToolResult:
    out = Deleted(kind=kind, id=id, parent_id=parent, deleted=True, backend=backend)
    where = f" from {parent}" if parent else ""
    return tool_result(
        out, Markdown(f"Deleted {kind.replace('_', ' ')} {id}{where}").para("This cannot be undone.")
    )


@tool(toolset="admin", title="Delete an index", read_only=False, destructive=True, idempotent=True)
async def delete_index(
    ctx: Ctx, index_id: Annotated[Id, Field(description="The index to delete, with all its videos.")]
) -> Annotated[CallToolResult, Deleted]:
    """Delete a search index and every video indexed in it. Irreversible.

    Only use this when the user explicitly asked to delete this index; confirm the id with list_indexes.
    The uploaded assets themselves stay (delete_asset removes those).
    """
    state = app_state(ctx)
    with upstream(f"Deleting index {index_id}"):
        await state.client.delete_index(index_id)
    return _done("index", index_id, None, state.backend)


@tool(
    toolset="admin", title="Delete a video from an index", read_only=False, destructive=True, idempotent=True
)
async def delete_video(
    ctx: Ctx,
    index_id: Annotated[Id, Field(description="The index holding the video.")],
    video_id: Annotated[Id, Field(description="The video to remove from the index.")],
) -> Annotated[CallToolResult, Deleted]:
    """Remove one video from an index (it will no longer appear in search). Irreversible.

    Only use this when the user explicitly asked; confirm with get_video first.
    """
    state = app_state(ctx)
    with upstream(f"Deleting video {video_id}"):
        await state.client.delete_video(index_id, video_id)
    return _done("video", video_id, index_id, state.backend)


@tool(toolset="admin", title="Delete an uploaded asset", read_only=False, destructive=True, idempotent=True)
async def delete_asset(
    ctx: Ctx, asset_id: Annotated[Id, Field(description="The asset to delete.")]
) -> Annotated[CallToolResult, Deleted]:
    """Delete an uploaded asset (the media file itself). Irreversible.

    Only use this when the user explicitly asked. The API refuses while the asset is still indexed or in
    a knowledge store: delete those entries first.
    """
    state = app_state(ctx)
    with upstream(f"Deleting asset {asset_id}"):
        await state.client.delete_asset(asset_id)
    return _done("asset", asset_id, None, state.backend)


@tool(toolset="admin", title="Delete a knowledge store", read_only=False, destructive=True, idempotent=True)
async def delete_knowledge_store(
    ctx: Ctx, knowledge_store_id: Annotated[Id, Field(description="The store to delete, with its items.")]
) -> Annotated[CallToolResult, Deleted]:
    """Delete a knowledge store and all its items; its Jockey sessions stop working. Irreversible.

    Only use this when the user explicitly asked; confirm with list_knowledge_stores.
    """
    state = app_state(ctx)
    with upstream(f"Deleting knowledge store {knowledge_store_id}"):
        await state.client.delete_knowledge_store(knowledge_store_id)
    return _done("knowledge_store", knowledge_store_id, None, state.backend)


@tool(
    toolset="admin",
    title="Remove an item from a knowledge store",
    read_only=False,
    destructive=True,
    idempotent=True,
)
async def remove_from_knowledge_store(
    ctx: Ctx,
    knowledge_store_id: Annotated[Id, Field(description="The store holding the item.")],
    item_id: Annotated[Id, Field(description="The item to remove (list_knowledge_store_items).")],
) -> Annotated[CallToolResult, Deleted]:
    """Remove one item from a knowledge store; Jockey no longer sees it. Irreversible.

    Only use this when the user explicitly asked. The underlying asset stays.
    """
    state = app_state(ctx)
    with upstream(f"Removing item {item_id}"):
        await state.client.delete_knowledge_store_item(knowledge_store_id, item_id)
    return _done("knowledge_store_item", item_id, knowledge_store_id, state.backend)


TOOLS: list[ToolSpec] = [
    delete_index,
    delete_video,
    delete_asset,
    delete_knowledge_store,
    remove_from_knowledge_store,
]
