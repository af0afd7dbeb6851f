"""Toolset `admin` (off unless enabled): deletions. Every tool here destroys data and says so.

Deleting is idempotent, as the annotations promise: deleting what is already gone (the API's 404) is a
success that says so (`deleted: false`), so a retried or repeated delete never reads as a failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from tl_mcp.api.errors import ConflictError, NotFoundError, TwelveLabsError
from tl_mcp.server.errors import explain
from tl_mcp.server.results import Markdown, ToolResult, call, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import Ctx, Id, asset_mixup
from tl_mcp.server.toolspec import ToolSpec, tool

Kind = Literal[
    "index",
    "video",
    "asset",
    "knowledge_store",
    "knowledge_store_item",
    "entity",
    "entity_collection",
    "analysis_task",
    "analysis_batch",
]


class Deleted(ToolResult):
    kind: Kind
    id: str
    parent_id: str | None = None
    deleted: bool = Field(description="false: it was already gone (or never existed); nothing changed.")


#: Where to look for what exists, when there was nothing to delete.
_LISTED_BY = {
    "index": "list_indexes",
    "video": "list_videos",
    "asset": "list_videos (asset_id of each video)",
    "knowledge_store": "list_knowledge_stores",
    "knowledge_store_item": "list_knowledge_store_items",
    "entity": "list_entities",
    "entity_collection": "list_entity_collections",
    "analysis_task": "list_analysis_tasks",
    "analysis_batch": 'list_analysis_tasks(kind="batch")',
}


async def _delete(
    state: AppState,
    kind: Kind,
    id: str,
    parent: str | None,
    remove: Callable[[], Awaitable[None]],
    *,
    on_conflict: str | None = None,
) -> CallToolResult:
    label = kind.replace("_", " ")
    where = f" from {parent}" if parent else ""
    try:
        await remove()
    except NotFoundError:
        mixup = await asset_mixup(state, parent, id) if kind == "video" and parent else None
        if mixup:
            raise ToolError(f"Deleting video {id} failed: {mixup}") from None
        out = Deleted(kind=kind, id=id, parent_id=parent, deleted=False, backend=state.backend)
        md = Markdown(f"Nothing to delete: {label} {id}{where} does not exist")
        md.para(
            f"It was already deleted, or the id is wrong ({_LISTED_BY[kind]} shows what exists). "
            "Nothing was changed."
        )
        return tool_result(out, md)
    except ConflictError as exc:
        raise ToolError(explain(f"Deleting {label} {id}", exc, hint=on_conflict)) from None
    except TwelveLabsError as exc:
        raise ToolError(explain(f"Deleting {label} {id}", exc)) from None
    out = Deleted(kind=kind, id=id, parent_id=parent, deleted=True, backend=state.backend)
    return tool_result(out, Markdown(f"Deleted {label} {id}{where}").para("This cannot be undone."))


@tool(toolset="admin", title="Delete an index", read_only=False, destructive=True, idempotent=True)
async def delete_index(
    ctx: Ctx, index_id: Annotated[Id, Field(description="The index to delete, with all its videos.")]
) -> Annotated[CallToolResult, Deleted]:
    """Delete a search index and every video indexed in it. Irreversible.

    Only use this when the user explicitly asked to delete this index; confirm the id with list_indexes.
    The uploaded assets themselves stay (delete_asset removes those).
    """
    state = app_state(ctx)
    return await _delete(state, "index", index_id, None, lambda: state.client.indexes.delete(index_id))


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
    return await _delete(
        state, "video", video_id, index_id, lambda: state.client.videos.delete(index_id, video_id)
    )


@tool(toolset="admin", title="Delete an uploaded asset", read_only=False, destructive=True, idempotent=True)
async def delete_asset(
    ctx: Ctx,
    asset_id: Annotated[Id, Field(description="The asset to delete.")],
    force: Annotated[
        bool,
        Field(description="Also delete its indexed videos (they leave search); else refused while indexed."),
    ] = False,
) -> Annotated[CallToolResult, Deleted]:
    """Delete an uploaded asset (the media file itself). Irreversible.

    Only use this when the user explicitly asked. While the asset is indexed the API refuses, unless
    force=true, which deletes its indexed videos too.
    """
    state = app_state(ctx)
    retry = call("delete_asset", asset_id=asset_id, force=True)
    return await _delete(
        state,
        "asset",
        asset_id,
        None,
        lambda: state.client.assets.delete(asset_id, force=force),
        on_conflict=f"To delete it with its indexed videos (they leave search), call {retry}; "
        "or delete those videos first with delete_video.",
    )


@tool(toolset="admin", title="Delete a knowledge store", read_only=False, destructive=True, idempotent=True)
async def delete_knowledge_store(
    ctx: Ctx, knowledge_store_id: Annotated[Id, Field(description="The store to delete, with its items.")]
) -> Annotated[CallToolResult, Deleted]:
    """Delete a knowledge store and all its items; its Jockey sessions stop working. Irreversible.

    Only use this when the user explicitly asked; confirm with list_knowledge_stores.
    """
    state = app_state(ctx)
    return await _delete(
        state,
        "knowledge_store",
        knowledge_store_id,
        None,
        lambda: state.client.knowledge.stores.delete(knowledge_store_id),
    )


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
    return await _delete(
        state,
        "knowledge_store_item",
        item_id,
        knowledge_store_id,
        lambda: state.client.knowledge.items.delete(knowledge_store_id, item_id),
    )


@tool(toolset="admin", title="Delete an entity", read_only=False, destructive=True, idempotent=True)
async def delete_entity(
    ctx: Ctx,
    entity_collection_id: Annotated[Id, Field(description="The collection holding the entity.")],
    entity_id: Annotated[Id, Field(description="The entity to delete (list_entities).")],
) -> Annotated[CallToolResult, Deleted]:
    """Delete a registered entity; searches can no longer name it. Irreversible.

    Only use this when the user explicitly asked. Its reference assets stay.
    """
    state = app_state(ctx)
    return await _delete(
        state,
        "entity",
        entity_id,
        entity_collection_id,
        lambda: state.client.entities.delete(entity_collection_id, entity_id),
    )


@tool(
    toolset="admin", title="Delete an entity collection", read_only=False, destructive=True, idempotent=True
)
async def delete_entity_collection(
    ctx: Ctx,
    entity_collection_id: Annotated[Id, Field(description="The collection to delete, with its entities.")],
) -> Annotated[CallToolResult, Deleted]:
    """Delete an entity collection and every entity in it. Irreversible.

    Only use this when the user explicitly asked; confirm with list_entities. The assets stay.
    """
    state = app_state(ctx)
    return await _delete(
        state,
        "entity_collection",
        entity_collection_id,
        None,
        lambda: state.client.entity_collections.delete(entity_collection_id),
    )


@tool(
    toolset="admin",
    title="Delete a video analysis task or batch",
    read_only=False,
    destructive=True,
    idempotent=True,
)
async def delete_analysis_task(
    ctx: Ctx,
    task_id: Annotated[Id | None, Field(description="The task to delete, with its result.")] = None,
    batch_id: Annotated[Id | None, Field(description="The batch to delete, with its tasks.")] = None,
) -> Annotated[CallToolResult, Deleted]:
    """Delete an ended analysis task or batch and its results. Irreversible.

    Only use this when the user explicitly asked; confirm with list_analysis_tasks. One still running
    is refused: cancel it first (cancel_analysis_task).
    """
    state = app_state(ctx)
    if (task_id is None) == (batch_id is None):
        raise ToolError("Give task_id or batch_id (one of them); list_analysis_tasks shows both.")
    analyze = state.client.analyze
    if task_id is not None:
        stop = call("cancel_analysis_task", task_id=task_id)
        return await _delete(
            state,
            "analysis_task",
            task_id,
            None,
            lambda: analyze.delete_task(task_id),
            on_conflict=f"It is still running: cancel it first with {stop} (or wait until it ends), "
            "then delete it again. Nothing was changed.",
        )
    assert batch_id is not None
    stop = call("cancel_analysis_task", batch_id=batch_id)
    return await _delete(
        state,
        "analysis_batch",
        batch_id,
        None,
        lambda: analyze.delete_batch(batch_id),
        on_conflict=f"It is still running: cancel it first with {stop} (or wait until it ends), then "
        "delete it again. Nothing was changed.",
    )


TOOLS: list[ToolSpec] = [
    delete_index,
    delete_video,
    delete_asset,
    delete_knowledge_store,
    remove_from_knowledge_store,
    delete_entity,
    delete_entity_collection,
    delete_analysis_task,
]
