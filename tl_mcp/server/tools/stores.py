"""Toolset `stores`: knowledge-store depth — store settings and metadata, item collections (which Jockey
`selections` can name), and store search with grouping, filters and metadata. Off by default."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api.errors import TwelveLabsError
from tl_mcp.api.models import MetadataValue
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.page_tokens import issue, redeem
from tl_mcp.server.results import FILL, Listing, Markdown, Page, ToolResult, call, fmt_seconds, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import Ctx, Id, display_name
from tl_mcp.server.toolspec import ToolSpec, tool

#: SDK 1.3.6: at most 10 pairs on a store or a collection (500 item ids per add/remove call).
Metadata = Annotated[
    dict[str, MetadataValue] | None,
    Field(max_length=10, description="Up to 10 pairs; values: string, number, bool or string array."),
]
ItemIds = Annotated[list[Id], Field(min_length=1, max_length=500)]
#: How many of a collection's items a search scoped to it looks through.
_COLLECTION_SCOPE = 500


class StoreDetail(ToolResult):
    knowledge_store_id: str
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    ingestion_config: dict[str, Any] | None = None
    item_count: int | None = None
    updated_at: str | None = None


class CollectionInfo(BaseModel):
    collection_id: str
    name: str | None = None
    description: str | None = None
    member_count: int | None = None
    metadata: dict[str, Any] | None = None


class CollectionResult(ToolResult):
    knowledge_store_id: str
    collection: CollectionInfo


class CollectionList(Listing):
    knowledge_store_id: str
    collections: list[CollectionInfo]


class MemberInfo(BaseModel):
    item_id: str
    asset_id: str | None = None
    asset_type: str | None = None
    status: str | None = None


class MemberList(Listing):
    knowledge_store_id: str
    collection_id: str
    items: list[MemberInfo]


class StoreMatch(BaseModel):
    start: float
    end: float
    modalities: list[str] = Field(default_factory=list)
    transcription: str | None = None


class StoreHit(BaseModel):
    rank: int | None = None
    item_id: str
    asset_type: str
    matches: list[StoreMatch] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None


class StoreSearchResult(ToolResult):
    knowledge_store_id: str
    hits: list[StoreHit]
    next_page_token: str | None = None
    effective_search_options: dict[str, Any] = Field(default_factory=dict)


def _collection_info(c: Any) -> CollectionInfo:
    return CollectionInfo(
        collection_id=c.id,
        name=c.name,
        description=c.description,
        member_count=c.member_count,
        metadata=c.metadata,
    )


def _ask_jockey(knowledge_store_id: str, collection_id: str) -> str:
    selection = [{"kind": "collection", "id": collection_id}]
    return call(
        "create_response",
        knowledge_store_id=knowledge_store_id,
        input=FILL,
        selections=selection,
    )


@tool(toolset="stores", title="Change a knowledge store", read_only=False, destructive=False, idempotent=True)
async def update_knowledge_store(
    ctx: Ctx,
    knowledge_store_id: Id,
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
    description: Annotated[str | None, Field(max_length=2000)] = None,
    metadata: Annotated[Metadata, Field(description="Replaces all pairs; {} clears them.")] = None,
) -> Annotated[CallToolResult, StoreDetail]:
    """Rename a knowledge store, change its description, or replace its metadata.

    Its ingestion_config is fixed at creation (create_knowledge_store).
    """
    if name is None and description is None and metadata is None:
        raise ToolError("Nothing to change: give name, description or metadata.")
    if name is not None:
        display_name(name)
    state = app_state(ctx)
    with upstream(f"Updating knowledge store {knowledge_store_id}"):
        store = await state.client.knowledge.stores.update(
            knowledge_store_id, name=name, description=description, metadata=metadata
        )
    out = StoreDetail(
        knowledge_store_id=store.id,
        name=store.name,
        description=store.description,
        metadata=store.metadata,
        ingestion_config=store.ingestion_config,
        item_count=store.item_count,
        updated_at=store.updated_at,
        backend=state.backend,
    )
    md = Markdown(f"Knowledge store updated: {store.name or store.id}")
    md.field("Description", store.description).field("Metadata", store.metadata or "none")
    md.next_step(
        f"Group its items: {call('create_item_collection', knowledge_store_id=store.id, name=FILL)}."
    )
    return tool_result(out, md)


@tool(
    toolset="stores", title="Create an item collection", read_only=False, destructive=False, idempotent=False
)
async def create_item_collection(
    ctx: Ctx,
    knowledge_store_id: Id,
    name: Annotated[str, Field(min_length=1, max_length=200, description="Unique in the store.")],
    item_ids: Annotated[
        ItemIds | None, Field(description="Items to put in (list_knowledge_store_items).")
    ] = None,
    description: Annotated[str | None, Field(max_length=2000)] = None,
    metadata: Metadata = None,
) -> Annotated[CallToolResult, CollectionResult]:
    """Create a named group of a store's items, e.g. "Q3 interviews", optionally with its first items.

    Jockey can then be limited to it: create_response(selections=[{kind: collection, id}]).
    """
    display_name(name)
    state = app_state(ctx)
    collections = state.client.knowledge.collections
    with upstream(f"Creating item collection {name!r} in {knowledge_store_id}"):
        created = await collections.create(
            knowledge_store_id, name, description=description, metadata=metadata
        )
    if item_ids:
        try:
            created = await collections.add_items(knowledge_store_id, created.id, item_ids)
        except TwelveLabsError as exc:
            failed = explain(f"Adding items to collection {created.id}", exc)
            # Bad ids change nothing: the collection made a moment ago goes again.
            try:
                await collections.delete(knowledge_store_id, created.id)
            except TwelveLabsError:
                args = {"knowledge_store_id": knowledge_store_id, "collection_id": created.id}
                raise ToolError(
                    f"{failed} The collection {created.id} was created empty and could not be removed; "
                    f"add the right ids with {call('update_item_collection', **args, add_item_ids=FILL)}."
                ) from None
            raise ToolError(f"{failed} No collection was created.") from None
    out = CollectionResult(
        knowledge_store_id=knowledge_store_id, collection=_collection_info(created), backend=state.backend
    )
    md = Markdown(f"Item collection created: {name}").field("Collection id", f"`{created.id}`")
    md.field("Items", created.member_count or 0)
    if created.member_count:
        md.next_step(f"Ask Jockey about just these items: {_ask_jockey(knowledge_store_id, created.id)}.")
    args = {"knowledge_store_id": knowledge_store_id, "collection_id": created.id}
    md.next_step(f"Add items: {call('update_item_collection', **args, add_item_ids=FILL)}.")
    return tool_result(out, md)


@tool(toolset="stores", title="List item collections", read_only=True, destructive=False, idempotent=True)
async def list_item_collections(
    ctx: Ctx,
    knowledge_store_id: Id,
    page: Annotated[int, Field(ge=1, le=10_000)] = 1,
    page_limit: Annotated[int, Field(ge=1, le=50)] = 20,
) -> Annotated[CallToolResult, CollectionList]:
    """List a knowledge store's item collections with ids and sizes.

    Use it to find the collection_id for create_response selections, search_knowledge_store or
    update_item_collection; create_item_collection makes one.
    """
    state = app_state(ctx)
    with upstream(f"Listing item collections of {knowledge_store_id}"):
        result = await state.client.knowledge.collections.list(
            knowledge_store_id, page=page, page_limit=page_limit
        )
    rows = [_collection_info(c) for c in result.data]
    out = CollectionList(
        knowledge_store_id=knowledge_store_id,
        collections=rows,
        page=page,
        total_pages=result.page_info.total_page,
        backend=state.backend,
    )
    more = call(
        "list_item_collections", knowledge_store_id=knowledge_store_id, page=page + 1, page_limit=page_limit
    )
    md = Page(rows, more if result.has_more else None).render(
        Markdown(f"Item collections of {knowledge_store_id} ({len(rows)})"),
        "Collections",
        lambda c: f"- `{c.collection_id}` {c.name or ''} — {c.member_count or 0} item(s)",
        "No item collections: create one with create_item_collection.",
    )
    if rows:
        first = rows[0].collection_id
        args = {"knowledge_store_id": knowledge_store_id, "collection_id": first}
        md.next_step(f"See what one holds: {call('list_collection_items', **args)}.")
    return tool_result(out, md)


@tool(toolset="stores", title="List a collection's items", read_only=True, destructive=False, idempotent=True)
async def list_collection_items(
    ctx: Ctx,
    knowledge_store_id: Id,
    collection_id: Annotated[Id, Field(description="From list_item_collections.")],
    page: Annotated[int, Field(ge=1, le=10_000)] = 1,
    page_limit: Annotated[int, Field(ge=1, le=50)] = 20,
) -> Annotated[CallToolResult, MemberList]:
    """List the items of one item collection, with their status.

    Use it to check what a collection holds before limiting Jockey or a search to it.
    """
    state = app_state(ctx)
    with upstream(f"Listing items of collection {collection_id}"):
        result = await state.client.knowledge.collections.items(
            knowledge_store_id, collection_id, page=page, page_limit=page_limit
        )
    rows = [
        MemberInfo(item_id=i.id, asset_id=i.asset_id, asset_type=i.asset_type, status=i.status)
        for i in result.data
    ]
    out = MemberList(
        knowledge_store_id=knowledge_store_id,
        collection_id=collection_id,
        items=rows,
        page=page,
        total_pages=result.page_info.total_page,
        backend=state.backend,
    )
    args = {"knowledge_store_id": knowledge_store_id, "collection_id": collection_id}
    more = call("list_collection_items", **args, page=page + 1, page_limit=page_limit)
    md = Page(rows, more if result.has_more else None).render(
        Markdown(f"Items of collection {collection_id} ({len(rows)})"),
        "Items",
        lambda i: f"- `{i.item_id}` asset {i.asset_id} — {i.status}",
        "The collection is empty: add items with update_item_collection.",
    )
    if rows:
        md.next_step(f"Ask Jockey about just these items: {_ask_jockey(knowledge_store_id, collection_id)}.")
    return tool_result(out, md)


@tool(
    toolset="stores",
    title="Add or remove collection items",
    read_only=False,
    destructive=False,
    idempotent=True,
)
async def update_item_collection(
    ctx: Ctx,
    knowledge_store_id: Id,
    collection_id: Id,
    add_item_ids: Annotated[ItemIds | None, Field(description="Items of the store to add.")] = None,
    remove_item_ids: Annotated[
        ItemIds | None, Field(description="Items to take out (they stay in the store).")
    ] = None,
) -> Annotated[CallToolResult, CollectionResult]:
    """Add items to an item collection or take them out; items already in (or not in) are skipped.

    Item ids come from list_knowledge_store_items; removed items stay in the store.
    """
    if not add_item_ids and not remove_item_ids:
        raise ToolError("Nothing to change: give add_item_ids, remove_item_ids or both.")
    both = sorted(set(add_item_ids or ()) & set(remove_item_ids or ()))
    if both:
        raise ToolError(f"These ids are in both add_item_ids and remove_item_ids: {', '.join(both[:10])}.")
    state = app_state(ctx)
    collections = state.client.knowledge.collections
    # Adding first: it checks every id and fails as a whole, so a bad id changes nothing.
    if add_item_ids:
        with upstream(f"Adding items to collection {collection_id}"):
            await collections.add_items(knowledge_store_id, collection_id, add_item_ids)
    if remove_item_ids:
        with upstream(f"Removing items from collection {collection_id}"):
            await collections.remove_items(knowledge_store_id, collection_id, remove_item_ids)
    with upstream(f"Reading collection {collection_id}"):
        current = await collections.get(knowledge_store_id, collection_id)
    out = CollectionResult(
        knowledge_store_id=knowledge_store_id, collection=_collection_info(current), backend=state.backend
    )
    md = Markdown(f"Item collection {current.name or collection_id} updated")
    md.field("Added", len(add_item_ids or ())).field("Removed", len(remove_item_ids or ()))
    md.field("Items now", current.member_count)
    if current.member_count:
        md.next_step(f"Ask Jockey about just these items: {_ask_jockey(knowledge_store_id, collection_id)}.")
    return tool_result(out, md)


async def _collection_scope(state: AppState, knowledge_store_id: str, collection_id: str) -> list[str]:
    """The collection's item ids, for a search filter (the search API filters by item, not collection)."""
    ids: list[str] = []
    page = 1
    with upstream(f"Reading the items of collection {collection_id}"):
        while len(ids) < _COLLECTION_SCOPE:
            result = await state.client.knowledge.collections.items(
                knowledge_store_id, collection_id, page=page, page_limit=50
            )
            ids += [i.id for i in result.data]
            if not result.has_more or not result.data:
                break
            page += 1
    if not ids:
        args = {"knowledge_store_id": knowledge_store_id, "collection_id": collection_id}
        raise ToolError(
            f"Collection {collection_id} has no items, so there is nothing to search. Add some with "
            f"{call('update_item_collection', **args, add_item_ids=FILL)}."
        )
    return ids[:_COLLECTION_SCOPE]


_STORE_SEARCH = "a store search (search_knowledge_store)"


@tool(toolset="stores", title="Search a knowledge store", read_only=True, destructive=False, idempotent=True)
async def search_knowledge_store(
    ctx: Ctx,
    knowledge_store_id: Id,
    query: Annotated[str, Field(min_length=1, max_length=2000)],
    group_by: Annotated[
        Literal["none", "item"], Field(description="item: one hit per item, all its clips.")
    ] = "none",
    asset_types: list[Literal["video", "image"]] | None = None,
    item_ids: Annotated[ItemIds | None, Field(description="Only these items.")] = None,
    collection_id: Annotated[Id | None, Field(description="Only this collection's items.")] = None,
    modalities: Annotated[
        list[Literal["visual", "audio"]] | None,
        Field(min_length=1, description="For videos; default visual."),
    ] = None,
    include_metadata: Annotated[bool, Field(description="Add each item's system and user metadata.")] = False,
    page_size: Annotated[int, Field(ge=1, le=50)] = 10,
    page_token: Annotated[
        str | None, Field(max_length=500, description="next_page_token, same query.")
    ] = None,
) -> Annotated[CallToolResult, StoreSearchResult]:
    """Find moments across a knowledge store's ready items, grouped per item if asked, filtered by asset
    type, items or an item collection, with item metadata on request.

    Use it when you need the store's own hits (ranks, item ids, metadata); search_videos gives moments
    across an index or store, create_response an answer.
    """
    if not query.strip():
        raise ToolError("query is blank: give the words to search the store for (what is said or shown).")
    if item_ids and collection_id:
        raise ToolError("Give item_ids or collection_id, not both (a collection stands for its items).")
    if modalities and asset_types and "video" not in asset_types:
        raise ToolError("modalities apply to videos, but asset_types leaves videos out; drop one of them.")
    state = app_state(ctx)
    # What a page token is bound to; the narrowing arguments may be left out on the next call.
    search = {
        "knowledge_store_id": knowledge_store_id,
        "query": query,
        "group_by": None if group_by == "none" else group_by,
        "asset_types": sorted(set(asset_types)) if asset_types else None,
        "item_ids": sorted(set(item_ids)) if item_ids else None,
        "collection_id": collection_id,
        "modalities": sorted(set(modalities)) if modalities else None,
        "include_metadata": include_metadata or None,
    }
    if page_token:
        optional = frozenset(search) - {"knowledge_store_id", "query"}
        page_token = redeem(
            page_token, _STORE_SEARCH, search, tool="search_knowledge_store", optional=optional
        )
    scope = list(item_ids) if item_ids else None
    if collection_id and page_token is None:
        scope = await _collection_scope(state, knowledge_store_id, collection_id)
    filters: dict[str, Any] = {}
    if asset_types:
        filters["asset_type"] = {"in": list(dict.fromkeys(asset_types))}
    if scope:
        filters["item_id"] = {"in": scope}
    with upstream(f"Searching knowledge store {knowledge_store_id}"):
        found = await state.client.knowledge.search(
            knowledge_store_id,
            query,
            page_token=page_token,
            page_size=page_size,
            modalities=modalities,
            group_by=group_by,
            filter=filters or None,
            include_metadata=include_metadata or None,
        )
    hits = [
        StoreHit(
            rank=h.rank,
            item_id=h.item_id,
            asset_type=h.asset_type,
            matches=[
                StoreMatch(
                    start=m.start_sec, end=m.end_sec, modalities=m.modalities, transcription=m.transcription
                )
                for m in h.matches
            ],
            metadata=h.metadata,
        )
        for h in found.data
    ]
    next_token = issue(found.next_page_token, _STORE_SEARCH, search)
    out = StoreSearchResult(
        knowledge_store_id=knowledge_store_id,
        hits=hits,
        next_page_token=next_token,
        effective_search_options=found.effective_search_options,
        backend=state.backend,
    )

    def line(h: StoreHit) -> str:
        clips = ", ".join(f"{fmt_seconds(m.start)}–{fmt_seconds(m.end)}" for m in h.matches[:5])
        return f"- #{h.rank} `{h.item_id}` ({h.asset_type}){': ' + clips if clips else ''}"

    more = None
    if next_token:
        more = call(
            "search_knowledge_store",
            knowledge_store_id=knowledge_store_id,
            query=query,
            group_by=group_by,
            page_size=page_size,
            page_token=next_token,
        )
    md = Page(hits, more).render(
        Markdown(f"Knowledge-store search: {query!r} ({len(hits)} hit(s))"),
        "Hits",
        line,
        "No hits: check that the store has ready items (list_knowledge_store_items), or rephrase.",
    )
    return tool_result(out, md)


TOOLS: list[ToolSpec] = [
    update_knowledge_store,
    create_item_collection,
    list_item_collections,
    list_collection_items,
    update_item_collection,
    search_knowledge_store,
]
