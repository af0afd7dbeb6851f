"""Toolset `entities` (off unless enabled): register people, objects or brands by reference images, and find
every moment they appear in an index (entity search, `<@entity_id>` in a search query).

The cloud recognises an entity; the offline sandbox compares its reference pictures with indexed frames,
and every result of it says so (`matched_by`). Deleting entities is in `admin` (tools/admin.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent
from pydantic import BaseModel, Field

from tl_mcp.api.errors import BadRequestError, NotFoundError, TwelveLabsError
from tl_mcp.api.models import Entity, EntityCollection
from tl_mcp.api.resources.entities import entity_query
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.page_tokens import issue, redeem
from tl_mcp.server.results import FILL, Listing, Markdown, Page, ToolResult, call, tool_result
from tl_mcp.server.state import app_state
from tl_mcp.server.thumbnails import fetch_thumbnails
from tl_mcp.server.tools._common import Ctx, Id, display_name
from tl_mcp.server.tools.entity_refs import entity_search_note
from tl_mcp.server.tools.metadata import metadata_arg
from tl_mcp.server.tools.search import SearchMoment, _index_moments, _moment_line
from tl_mcp.server.toolspec import ToolSpec, tool

PageNumber = Annotated[int, Field(ge=1, le=10_000)]
PageLimit = Annotated[int, Field(ge=1, le=50)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=2000)]
AssetIds = Annotated[list[Id], Field(min_length=1, max_length=100)]
#: The contract's entity metadata: string, integer, float or boolean values (send arrays as strings).
Metadata = Annotated[dict[str, str | int | float | bool], Field(max_length=50)]


class CollectionInfo(BaseModel):
    entity_collection_id: str
    name: str | None = None
    description: str | None = None
    created_at: str | None = None


class CollectionResult(ToolResult):
    collection: CollectionInfo


class CollectionList(Listing):
    collections: list[CollectionInfo]


class EntityInfo(BaseModel):
    entity_id: str = Field(description="Search for it: find_entity_moments.")
    entity_collection_id: str | None = None
    name: str | None = None
    description: str | None = None
    status: str | None = Field(default=None, description="processing, or ready to search for.")
    asset_ids: list[str] = Field(default_factory=list, description="Its reference images or videos.")
    metadata: dict[str, Any] | None = None


class EntityResult(ToolResult):
    entity: EntityInfo


class EntityList(Listing):
    entity_collection_id: str | None = None
    asset_id: str | None = None
    entities: list[EntityInfo]


class EntityMoments(ToolResult):
    index_id: str
    entity_ids: list[str]
    query: str
    moments: list[SearchMoment]
    matched_by: str | None = Field(
        default=None, description="Set when the match is not identity recognition (offline sandbox)."
    )
    total_results: int | None = None
    next_page_token: str | None = None
    thumbnails_returned: int = 0


def _collection(c: EntityCollection) -> CollectionInfo:
    return CollectionInfo(
        entity_collection_id=c.id, name=c.name, description=c.description, created_at=c.created_at
    )


def _entity(e: Entity) -> EntityInfo:
    return EntityInfo(
        entity_id=e.id,
        entity_collection_id=e.entity_collection_id,
        name=e.name,
        description=e.description,
        status=e.status,
        asset_ids=e.asset_ids,
        metadata=e.metadata or None,
    )


def _entity_line(e: EntityInfo) -> str:
    return f"- `{e.entity_id}` {e.name or ''} — {e.status or '?'}, {len(e.asset_ids)} reference asset(s)"


def _entity_md(title: str, e: EntityInfo) -> Markdown:
    md = Markdown(title).field("Entity id", f"`{e.entity_id}`").field("Collection", e.entity_collection_id)
    md.field("Status", e.status).field("Reference assets", ", ".join(e.asset_ids) or None)
    md.field("Description", e.description)
    if e.status == "processing":
        md.next_step(
            "It is still processing: check again with "
            f"{call('get_entity', entity_collection_id=e.entity_collection_id, entity_id=e.entity_id)}."
        )
    else:
        md.next_step(f"Find it: {call('find_entity_moments', entity_ids=[e.entity_id], index_id=FILL)}.")
    return md


@tool(
    toolset="entities",
    title="Create an entity collection",
    read_only=False,
    destructive=False,
    idempotent=False,
)
async def create_entity_collection(
    ctx: Ctx, name: Name, description: Description | None = None
) -> Annotated[CallToolResult, CollectionResult]:
    """Create a collection to register people, objects or brands in (e.g. "cast", "players").

    Then add each one with create_entity and reference images. Existing ones: list_entity_collections.
    """
    state = app_state(ctx)
    display_name(name)
    with upstream(f"Creating entity collection {name!r}"):
        created = await state.client.entity_collections.create(name, description=description)
    info = _collection(created)
    md = Markdown(f"Entity collection created: {name}").field("Collection id", f"`{created.id}`")
    md.next_step(
        "Upload reference images (upload_asset), then "
        f"{call('create_entity', entity_collection_id=created.id, name=FILL, asset_ids=FILL)}."
    )
    return tool_result(CollectionResult(collection=info, backend=state.backend), md)


@tool(toolset="entities", title="List entity collections", read_only=True, destructive=False, idempotent=True)
async def list_entity_collections(
    ctx: Ctx,
    name: Annotated[str | None, Field(max_length=200, description="Only names containing this.")] = None,
    page: PageNumber = 1,
    page_limit: PageLimit = 20,
) -> Annotated[CallToolResult, CollectionList]:
    """List the entity collections with their ids.

    Use it to find the entity_collection_id that list_entities and create_entity need.
    """
    state = app_state(ctx)
    with upstream("Listing entity collections"):
        result = await state.client.entity_collections.list(page, page_limit, name=name)
    rows = [_collection(c) for c in result.data]
    out = CollectionList(
        collections=rows, page=page, total_pages=result.page_info.total_page, backend=state.backend
    )
    more = call("list_entity_collections", name=name, page=page + 1, page_limit=page_limit)
    md = Page(rows, more if result.has_more else None).render(
        Markdown(f"Entity collections ({len(rows)})"),
        "Collections",
        lambda c: f"- `{c.entity_collection_id}` {c.name or ''}",
        "No entity collections yet: create one with create_entity_collection.",
    )
    return tool_result(out, md)


@tool(
    toolset="entities",
    title="Rename an entity collection",
    read_only=False,
    destructive=False,
    idempotent=True,
)
async def update_entity_collection(
    ctx: Ctx,
    entity_collection_id: Id,
    name: Name | None = None,
    description: Description | None = None,
) -> Annotated[CallToolResult, CollectionResult]:
    """Change an entity collection's name or description.

    Its entities stay as they are; list_entities shows them.
    """
    state = app_state(ctx)
    if name is None and description is None:
        raise ToolError("Nothing to update: give name and/or description.")
    if name is not None:
        display_name(name)
    with upstream(f"Updating entity collection {entity_collection_id}"):
        updated = await state.client.entity_collections.update(
            entity_collection_id, name=name, description=description
        )
    info = _collection(updated)
    md = Markdown(f"Entity collection updated: {info.name}").field("Collection id", f"`{updated.id}`")
    return tool_result(CollectionResult(collection=info, backend=state.backend), md)


@tool(
    toolset="entities",
    title="Register a person or object by reference images",
    read_only=False,
    destructive=False,
    idempotent=False,
)
async def create_entity(
    ctx: Ctx,
    entity_collection_id: Annotated[Id, Field(description="From create_entity_collection.")],
    name: Annotated[str, Field(min_length=1, max_length=200, description="e.g. the person's name.")],
    asset_ids: Annotated[AssetIds, Field(description="Uploaded images (or videos) that show it.")],
    description: Description | None = None,
    metadata: Annotated[Metadata | None, Field(description="Extra key-value facts.")] = None,
) -> Annotated[CallToolResult, EntityResult]:
    """Register a person, object or brand so you can find where it appears in videos.

    Upload clear reference images of it first (upload_asset, no index needed) and pass their asset ids;
    more varied pictures match better. Then find_entity_moments.
    """
    state = app_state(ctx)
    display_name(name)
    if metadata:
        metadata_arg(metadata, "metadata")
    with upstream(f"Creating entity {name!r}"):
        created = await state.client.entities.create(
            entity_collection_id, name, asset_ids, description=description, metadata=metadata
        )
    info = _entity(created)
    return tool_result(
        EntityResult(entity=info, backend=state.backend), _entity_md(f"Entity created: {name}", info)
    )


@tool(toolset="entities", title="List entities", read_only=True, destructive=False, idempotent=True)
async def list_entities(
    ctx: Ctx,
    entity_collection_id: Annotated[Id | None, Field(description="The entities of this collection.")] = None,
    asset_id: Annotated[
        Id | None, Field(description="Or: the entities this asset is a reference of.")
    ] = None,
    name: Annotated[str | None, Field(max_length=200, description="Only names containing this.")] = None,
    status: Literal["processing", "ready"] | None = None,
    page: PageNumber = 1,
    page_limit: PageLimit = 20,
) -> Annotated[CallToolResult, EntityList]:
    """List the entities of a collection, or those an asset is a reference image of.

    Use it to find the entity_id for find_entity_moments or search_videos (<@entity_id> in the query).
    Give entity_collection_id or asset_id.
    """
    state = app_state(ctx)
    if bool(entity_collection_id) == bool(asset_id):
        raise ToolError(
            "Give exactly one of entity_collection_id (list_entity_collections shows them) or asset_id."
        )
    if asset_id and (name or status):
        raise ToolError("name and status filter a collection's entities; drop them when listing by asset_id.")
    if asset_id:
        with upstream(f"Listing the entities of asset {asset_id}"):
            result = await state.client.entities.of_asset(asset_id, page, page_limit)
    else:
        assert entity_collection_id is not None
        with upstream(f"Listing the entities of collection {entity_collection_id}"):
            result = await state.client.entities.list(
                entity_collection_id, page, page_limit, name=name, status=status
            )
    rows = [_entity(e) for e in result.data]
    out = EntityList(
        entity_collection_id=entity_collection_id,
        asset_id=asset_id,
        entities=rows,
        page=page,
        total_pages=result.page_info.total_page,
        backend=state.backend,
    )
    more = call(
        "list_entities",
        entity_collection_id=entity_collection_id,
        asset_id=asset_id,
        name=name,
        status=status,
        page=page + 1,
        page_limit=page_limit,
    )
    where = f"collection {entity_collection_id}" if entity_collection_id else f"asset {asset_id}"
    md = Page(rows, more if result.has_more else None).render(
        Markdown(f"Entities of {where} ({len(rows)})"),
        "Entities",
        _entity_line,
        "No entities: register one with create_entity.",
    )
    if rows:
        md.next_step(
            f"Find one: {call('find_entity_moments', entity_ids=[rows[0].entity_id], index_id=FILL)}."
        )
    return tool_result(out, md)


@tool(toolset="entities", title="Get one entity", read_only=True, destructive=False, idempotent=True)
async def get_entity(
    ctx: Ctx, entity_collection_id: Id, entity_id: Id
) -> Annotated[CallToolResult, EntityResult]:
    """Show one entity: name, status, reference assets, metadata.

    Use it to check that an entity is ready before searching for it (find_entity_moments).
    """
    state = app_state(ctx)
    with upstream(f"Reading entity {entity_id}"):
        got = await state.client.entities.get(entity_collection_id, entity_id)
    info = _entity(got)
    return tool_result(
        EntityResult(entity=info, backend=state.backend), _entity_md(f"Entity {info.name}", info)
    )


@tool(
    toolset="entities",
    title="Update an entity or its reference images",
    read_only=False,
    destructive=False,
    idempotent=True,
)
async def update_entity(
    ctx: Ctx,
    entity_collection_id: Id,
    entity_id: Id,
    name: Name | None = None,
    description: Description | None = None,
    metadata: Annotated[Metadata | None, Field(description="Replaces all of its metadata.")] = None,
    add_asset_ids: Annotated[
        list[Id] | None, Field(min_length=1, max_length=100, description="More reference images.")
    ] = None,
    remove_asset_ids: Annotated[
        list[Id] | None, Field(min_length=1, max_length=100, description="References to unlink (kept).")
    ] = None,
) -> Annotated[CallToolResult, EntityResult]:
    """Rename an entity, change its description or metadata, or add and remove its reference images.

    Adding varied pictures improves matching; an entity keeps at least one. Assets are unlinked, not
    deleted.
    """
    state = app_state(ctx)
    if not any(v is not None for v in (name, description, metadata, add_asset_ids, remove_asset_ids)):
        raise ToolError(
            "Nothing to update: give name, description, metadata, add_asset_ids or remove_asset_ids."
        )
    both = set(add_asset_ids or []) & set(remove_asset_ids or [])
    if both:
        raise ToolError(f"Asset(s) {', '.join(sorted(both))} are in both add_asset_ids and remove_asset_ids.")
    if name is not None:
        display_name(name)
    if metadata:
        metadata_arg(metadata, "metadata")
    entities = state.client.entities
    done: list[str] = []
    action = f"Updating entity {entity_id}"
    try:
        # Adds before removals, so swapping an entity's only reference image works.
        if add_asset_ids:
            await entities.add_assets(entity_collection_id, entity_id, add_asset_ids)
            done.append(f"added {len(add_asset_ids)} asset(s)")
        if remove_asset_ids:
            await entities.remove_assets(entity_collection_id, entity_id, remove_asset_ids)
            done.append(f"removed {len(remove_asset_ids)} asset(s)")
        if name is not None or description is not None or metadata is not None:
            updated = await entities.update(
                entity_collection_id, entity_id, name=name, description=description, metadata=metadata
            )
        else:
            updated = await entities.get(entity_collection_id, entity_id)
    except TwelveLabsError as exc:
        text = explain(action, exc)
        if done:
            text += f" Before that it {' and '.join(done)}; those changes stand."
        raise ToolError(text) from None
    info = _entity(updated)
    return tool_result(
        EntityResult(entity=info, backend=state.backend), _entity_md(f"Entity updated: {info.name}", info)
    )


_ENTITY_SEARCH = "an entity search (find_entity_moments)"


@tool(
    toolset="entities",
    title="Find every moment an entity appears",
    read_only=True,
    destructive=False,
    idempotent=True,
)
async def find_entity_moments(
    ctx: Ctx,
    entity_ids: Annotated[
        list[Id],
        Field(min_length=1, max_length=5, description="Entities that must all appear (list_entities)."),
    ],
    index_id: Annotated[Id, Field(description="Index to search (list_indexes).")],
    doing: Annotated[
        str | None, Field(min_length=1, max_length=400, description="What they do, e.g. 'is walking'.")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=50, description="Most moments to return.")] = 10,
    page_token: Annotated[
        str | None, Field(min_length=1, max_length=500, description="next_page_token of a previous call.")
    ] = None,
    include_thumbnails: Annotated[
        int, Field(ge=0, le=10, description="Also return this many thumbnails.")
    ] = 0,
) -> Annotated[CallToolResult, EntityMoments]:
    """Find every moment a registered person, object or brand appears in an index's videos.

    Use it for "where does this person show up?"; add doing to narrow to an action. The entities come
    from create_entity and must be ready. Details of a moment's video: get_video.
    """
    state = app_state(ctx)
    query = entity_query(entity_ids, doing)
    # What the search is: the same entities in any order are the same search.
    scope = {"entity_ids": sorted(set(entity_ids)), "index_id": index_id, "doing": doing}
    try:
        if page_token:
            upstream_token = redeem(page_token, _ENTITY_SEARCH, scope, tool="find_entity_moments")
            page = await state.client.search.next_page(upstream_token)
        else:
            page = await state.client.search.query(
                index_id, query_text=query, search_options=("visual", "audio"), page_limit=limit
            )
    except (NotFoundError, BadRequestError) as exc:
        raise ToolError(
            f"{explain('Entity search', exc)} Check each entity with list_entities (it must exist and be "
            "ready) and the index with list_indexes."
        ) from None
    except TwelveLabsError as exc:
        raise ToolError(explain("Entity search", exc)) from None
    moments = _index_moments(page, limit, durable=state.backend == "sandbox")
    matched_by = entity_search_note(page)
    images: list[ImageContent] = []
    if include_thumbnails:
        urls = [m.thumbnail_url for m in moments if m.thumbnail_url][:include_thumbnails]
        images = [img for img in await fetch_thumbnails(urls) if img is not None]
    token = issue(page.page_info.next_page_token, _ENTITY_SEARCH, scope)
    out = EntityMoments(
        index_id=index_id,
        entity_ids=entity_ids,
        query=query,
        moments=moments,
        matched_by=matched_by,
        total_results=page.page_info.total_results,
        next_page_token=token,
        thumbnails_returned=len(images),
        backend=state.backend,
    )
    md = Markdown(f"Moments showing {', '.join(entity_ids)}: {len(moments)}")
    md.field("Index", index_id).field("Query", query)
    if matched_by:
        md.para(f"How these were found: {matched_by}.")
    more = call(
        "find_entity_moments",
        entity_ids=entity_ids,
        index_id=index_id,
        doing=doing,
        limit=limit,
        page_token=token,
    )
    Page(list(enumerate(moments, 1)), more if token else None).render(
        md, "Moments", _moment_line, "No moment shows them.", more="More moments"
    )
    top = moments[0].video_id if moments else None
    if top:
        md.next_step(f"Details of a video: {call('get_video', index_id=index_id, video_id=top)}.")
    return tool_result(out, md, images=images)


TOOLS: list[ToolSpec] = [
    create_entity_collection,
    list_entity_collections,
    update_entity_collection,
    create_entity,
    list_entities,
    get_entity,
    update_entity,
    find_entity_moments,
]
