"""Toolset `library`: indexes, videos, knowledge stores and their items — list, inspect, create."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api.errors import NotFoundError, TwelveLabsError
from tl_mcp.api.models import IndexModel
from tl_mcp.metadata_limits import ITEM_METADATA_LIMITS
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.results import FILL, Listing, Markdown, Page, ToolResult, call, fmt_seconds, tool_result
from tl_mcp.server.state import app_state
from tl_mcp.server.tools._common import Ctx, Id, PageLimit, PageNumber, display_name, video_not_found
from tl_mcp.server.tools.metadata import FilterArg, MetadataArg, list_filters, metadata_arg
from tl_mcp.server.toolspec import ToolSpec, tool


class IndexInfo(BaseModel):
    index_id: str
    name: str | None = None
    models: list[str] = Field(default_factory=list)
    video_count: int | None = None
    total_duration: float | None = None
    created_at: str | None = None


class IndexList(Listing):
    indexes: list[IndexInfo]


class VideoInfo(BaseModel):
    video_id: str
    asset_id: str | None = None
    filename: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    status: str | None = None
    indexed_at: str | None = None
    user_metadata: dict[str, Any] | None = None


class VideoList(Listing):
    index_id: str
    videos: list[VideoInfo]


class TranscriptLine(BaseModel):
    start: float
    end: float
    text: str


class VideoDetail(ToolResult):
    index_id: str
    video: VideoInfo
    hls_url: str | None = None
    thumbnail_urls: list[str] | None = None
    transcript: list[TranscriptLine] | None = None


class StoreInfo(BaseModel):
    knowledge_store_id: str
    name: str | None = None
    description: str | None = None
    item_count: int | None = None
    created_at: str | None = None


class StoreList(Listing):
    knowledge_stores: list[StoreInfo]


class ItemInfo(BaseModel):
    item_id: str
    asset_id: str | None = None
    asset_type: str | None = None
    status: str | None = None
    created_at: str | None = None


class ItemList(Listing):
    knowledge_store_id: str
    items: list[ItemInfo]


class Created(ToolResult):
    id: str
    kind: Literal["index", "knowledge_store", "knowledge_store_item"]
    name: str | None = None
    status: str | None = None
    knowledge_store_id: str | None = None


def ingestion_config(enrichment: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """The store's `ingestion_config` for an enrichment given as text (a description of what to extract)
    or as a JSON Schema of the fields. Only the root is checked here; the API checks the rest (422)."""
    if enrichment is None:
        return None
    if isinstance(enrichment, str):
        if not enrichment.strip():
            raise ToolError(
                "enrichment must describe what to extract from each item, e.g. 'speakers, topics'."
            )
        return {"enrichment_config": {"type": "description", "description": enrichment}}
    if enrichment.get("type") != "object":
        raise ToolError(
            'enrichment as a JSON Schema must have "type": "object" at its root, with a "description" on '
            "every property; or give a plain-text description instead."
        )
    return {"enrichment_config": {"type": "json_schema", "json_schema": enrichment}}


def _video_info(v: Any) -> VideoInfo:
    meta = v.system_metadata
    return VideoInfo(
        video_id=v.id,
        asset_id=v.asset_id,
        filename=meta.filename if meta else None,
        duration=meta.duration if meta else None,
        width=meta.width if meta else None,
        height=meta.height if meta else None,
        status=getattr(v, "status", None),
        indexed_at=v.indexed_at,
        user_metadata=v.user_metadata,
    )


@tool(toolset="library", title="List search indexes", read_only=True, destructive=False, idempotent=True)
async def list_indexes(
    ctx: Ctx,
    name: Annotated[str | None, Field(max_length=200, description="Only indexes with this name.")] = None,
    page: PageNumber = 1,
    page_limit: PageLimit = 20,
) -> Annotated[CallToolResult, IndexList]:
    """List the search indexes with their ids, models and video counts.

    Use it to find the index_id that search_videos, classify_videos, list_videos and upload_asset need;
    create_index makes one.
    """
    state = app_state(ctx)
    with upstream("Listing indexes"):
        result = await state.client.indexes.list(page=page, page_limit=page_limit, name=name)
    infos = [
        IndexInfo(
            index_id=i.id,
            name=i.index_name,
            models=[m.model_name for m in i.models],
            video_count=i.video_count,
            total_duration=i.total_duration,
            created_at=i.created_at,
        )
        for i in result.data
    ]
    out = IndexList(indexes=infos, page=page, total_pages=result.page_info.total_page, backend=state.backend)
    more = call("list_indexes", name=name, page=page + 1, page_limit=page_limit)
    md = Page(infos, more if result.has_more else None).render(
        Markdown(f"Indexes ({len(infos)})"),
        "Indexes",
        lambda i: f"- `{i.index_id}` {i.name or ''} — {i.video_count or 0} video(s), {', '.join(i.models)}",
        "No indexes yet: create one with create_index.",
    )
    return tool_result(out, md)


@tool(toolset="library", title="Create a search index", read_only=False, destructive=False, idempotent=False)
async def create_index(
    ctx: Ctx,
    name: Annotated[str, Field(min_length=1, max_length=200, description="A unique, descriptive name.")],
    modalities: Annotated[
        list[Literal["visual", "audio"]], Field(min_length=1, description="What the index understands.")
    ] = ["visual", "audio"],  # noqa: B006 — pydantic copies defaults
) -> Annotated[CallToolResult, Created]:
    """Create a Marengo 3.0 search index to upload videos into and search.

    One per collection searched together; then upload_asset with its index_id. Jockey questions need a
    knowledge store instead.
    """
    state = app_state(ctx)
    display_name(name)
    with upstream(f"Creating index {name!r}"):
        index_id = await state.client.indexes.create(
            name, models=[IndexModel(model_name="marengo3.0", model_options=list(modalities))]
        )
    out = Created(id=index_id, kind="index", name=name, backend=state.backend)
    md = Markdown(f"Index created: {name}").field("Index id", f"`{index_id}`")
    md.next_step(f"Upload media into it: {call('upload_asset', path=FILL, index_id=index_id)} (or url=…).")
    return tool_result(out, md)


@tool(toolset="library", title="List videos in an index", read_only=True, destructive=False, idempotent=True)
async def list_videos(
    ctx: Ctx,
    index_id: Id,
    status: Annotated[
        list[Literal["ready", "pending", "queued", "indexing", "validating", "failed"]] | None,
        Field(min_length=1),
    ] = None,
    filter: FilterArg | None = None,
    page: PageNumber = 1,
    page_limit: PageLimit = 20,
) -> Annotated[CallToolResult, VideoList]:
    """List the videos of an index with their indexing status: video id, file name, duration.

    Use it to find a video_id for get_video, analyze_video or summarize_video, or to see what is still
    indexing (status) or what carries some metadata (filter).
    """
    state = app_state(ctx)
    filters = list_filters(filter) if filter else None
    with upstream(f"Listing videos of index {index_id}"):
        result = await state.client.indexed_assets.list(
            index_id, page=page, page_limit=page_limit, status=status, filters=filters
        )
    videos = [_video_info(v) for v in result.data]
    out = VideoList(
        index_id=index_id,
        videos=videos,
        page=page,
        total_pages=result.page_info.total_page,
        backend=state.backend,
    )
    more = call(
        "list_videos", index_id=index_id, status=status, filter=filter, page=page + 1, page_limit=page_limit
    )
    md = Page(videos, more if result.has_more else None).render(
        Markdown(f"Videos in {index_id} ({len(videos)})"),
        "Videos",
        lambda v: (
            f"- `{v.video_id}` {v.filename or ''} ({fmt_seconds(v.duration)}) {v.status or ''}".rstrip()
        ),
        "No videos match." if status or filter else "No videos yet: upload_asset with this index_id.",
    )
    return tool_result(out, md)


@tool(toolset="library", title="Get one video's details", read_only=True, destructive=False, idempotent=True)
async def get_video(
    ctx: Ctx,
    index_id: Id,
    video_id: Annotated[Id, Field(description="From list_videos or search results.")],
    include_transcript: bool = True,
) -> Annotated[CallToolResult, VideoDetail]:
    """Show one indexed video: file, duration, size, stream and thumbnail URLs, transcript.

    Use it after search_videos or list_videos, before analyzing or citing a video.
    """
    state = app_state(ctx)
    try:
        v = await state.client.videos.get(index_id, video_id, transcription=include_transcript)
    except NotFoundError as exc:
        raise ToolError(
            await video_not_found(state, f"Reading video {video_id}", index_id, video_id, exc)
        ) from None
    except TwelveLabsError as exc:
        raise ToolError(explain(f"Reading video {video_id}", exc)) from None
    transcript = (
        [TranscriptLine(start=t.start, end=t.end, text=t.value) for t in v.transcription]
        if v.transcription
        else None
    )
    out = VideoDetail(
        index_id=index_id,
        video=_video_info(v),
        hls_url=v.hls.video_url if v.hls else None,
        thumbnail_urls=v.hls.thumbnail_urls if v.hls else None,
        transcript=transcript if include_transcript else None,
        backend=state.backend,
    )
    info = out.video
    md = Markdown(f"Video {video_id}")
    md.field("File", info.filename).field("Duration", fmt_seconds(info.duration) if info.duration else None)
    md.field("Size", f"{info.width}×{info.height}" if info.width else None).field("Asset", info.asset_id)
    if transcript:
        md.section("Transcript", [f"- {fmt_seconds(t.start)} {t.text}" for t in transcript[:200]])
    md.next_step(f"Ask about it: {call('analyze_video', video_id=video_id, index_id=index_id, prompt=FILL)}.")
    return tool_result(out, md)


@tool(toolset="library", title="List knowledge stores", read_only=True, destructive=False, idempotent=True)
async def list_knowledge_stores(
    ctx: Ctx, page: PageNumber = 1, page_limit: PageLimit = 20
) -> Annotated[CallToolResult, StoreList]:
    """List the knowledge stores Jockey answers over, with ids and item counts.

    Use it to find the knowledge_store_id for create_response, search_videos or upload_asset;
    create_knowledge_store makes one.
    """
    state = app_state(ctx)
    with upstream("Listing knowledge stores"):
        result = await state.client.knowledge.stores.list(page=page, page_limit=page_limit)
    stores = [
        StoreInfo(
            knowledge_store_id=s.id,
            name=s.name,
            description=s.description,
            item_count=s.item_count,
            created_at=s.created_at,
        )
        for s in result.data
    ]
    out = StoreList(
        knowledge_stores=stores, page=page, total_pages=result.page_info.total_page, backend=state.backend
    )
    more = call("list_knowledge_stores", page=page + 1, page_limit=page_limit)
    md = Page(stores, more if result.has_more else None).render(
        Markdown(f"Knowledge stores ({len(stores)})"),
        "Stores",
        lambda s: f"- `{s.knowledge_store_id}` {s.name or ''} — {s.item_count or 0} item(s)",
        "No knowledge stores yet: create one with create_knowledge_store.",
    )
    return tool_result(out, md)


@tool(
    toolset="library", title="Create a knowledge store", read_only=False, destructive=False, idempotent=False
)
async def create_knowledge_store(
    ctx: Ctx,
    name: Annotated[str, Field(min_length=1, max_length=200)],
    description: Annotated[str | None, Field(max_length=2000, description="What the store holds.")] = None,
    enrichment: Annotated[
        str | dict[str, Any] | None,
        Field(description="What to extract per item: text, or a JSON Schema object."),
    ] = None,
) -> Annotated[CallToolResult, Created]:
    """Create a knowledge store: a collection of videos Jockey (create_response) reasons over.

    Then add media with upload_asset(knowledge_store_id=…) or add_to_knowledge_store.
    """
    state = app_state(ctx)
    display_name(name)
    with upstream(f"Creating knowledge store {name!r}"):
        store = await state.client.knowledge.stores.create(
            name, description=description, ingestion_config=ingestion_config(enrichment)
        )
    out = Created(id=store.id, kind="knowledge_store", name=name, backend=state.backend)
    md = Markdown(f"Knowledge store created: {name}").field("Knowledge store id", f"`{store.id}`")
    if enrichment is not None and state.backend == "sandbox":
        md.para(
            "The sandbox keeps the enrichment setting but does not run it: offline items get no extracted "
            "fields. The cloud applies it to every item added."
        )
    md.next_step(f"Add media: {call('upload_asset', path=FILL, knowledge_store_id=store.id)} (or url=…).")
    return tool_result(out, md)


@tool(
    toolset="library",
    title="Add an asset to a knowledge store",
    read_only=False,
    destructive=False,
    idempotent=False,
)
async def add_to_knowledge_store(
    ctx: Ctx,
    knowledge_store_id: Id,
    asset_id: Annotated[Id, Field(description="From upload_asset.")],
    asset_type: Annotated[Literal["video", "image"] | None, Field(description="Usually detected.")] = None,
    metadata: MetadataArg | None = None,
) -> Annotated[CallToolResult, Created]:
    """Add an uploaded asset to a knowledge store so Jockey can use it.

    The item is ready after processing (wait_for_task with the item id and knowledge_store_id).
    upload_asset uploads and adds in one step.
    """
    state = app_state(ctx)
    meta = metadata_arg(metadata, "metadata", ITEM_METADATA_LIMITS) if metadata else None
    with upstream(f"Adding asset {asset_id} to {knowledge_store_id}"):
        item = await state.client.knowledge.items.add(
            knowledge_store_id, asset_id=asset_id, asset_type=asset_type, metadata=meta
        )
    out = Created(
        id=item.id,
        kind="knowledge_store_item",
        status=item.status,
        knowledge_store_id=knowledge_store_id,
        backend=state.backend,
    )
    md = Markdown("Added to knowledge store").field("Item id", f"`{item.id}`").field("Status", item.status)
    md.next_step(
        f"Wait until ready: {call('wait_for_task', id=item.id, knowledge_store_id=knowledge_store_id)}."
    )
    return tool_result(out, md)


@tool(
    toolset="library", title="List knowledge-store items", read_only=True, destructive=False, idempotent=True
)
async def list_knowledge_store_items(
    ctx: Ctx,
    knowledge_store_id: Id,
    status: Annotated[
        list[Literal["queued", "pending", "processing", "ready", "failed"]] | None,
        Field(description="Only items with these statuses."),
    ] = None,
    page: PageNumber = 1,
    page_limit: PageLimit = 20,
) -> Annotated[CallToolResult, ItemList]:
    """List a knowledge store's items with their status.

    Use it to check that items are ready before asking Jockey, or to find item ids for selections and
    remove_from_knowledge_store.
    """
    state = app_state(ctx)
    with upstream(f"Listing items of {knowledge_store_id}"):
        result = await state.client.knowledge.items.list(
            knowledge_store_id, page=page, page_limit=page_limit, status=status
        )
    items = [
        ItemInfo(
            item_id=i.id,
            asset_id=i.asset_id,
            asset_type=i.asset_type,
            status=i.status,
            created_at=i.created_at,
        )
        for i in result.data
    ]
    out = ItemList(
        knowledge_store_id=knowledge_store_id,
        items=items,
        page=page,
        total_pages=result.page_info.total_page,
        backend=state.backend,
    )
    more = call(
        "list_knowledge_store_items",
        knowledge_store_id=knowledge_store_id,
        status=status,
        page=page + 1,
        page_limit=page_limit,
    )
    md = Page(items, more if result.has_more else None).render(
        Markdown(f"Items in {knowledge_store_id} ({len(items)})"),
        "Items",
        lambda i: f"- `{i.item_id}` asset {i.asset_id} — {i.status}",
        "No items.",
    )
    return tool_result(out, md)


TOOLS: list[ToolSpec] = [
    list_indexes,
    create_index,
    list_videos,
    get_video,
    list_knowledge_stores,
    create_knowledge_store,
    add_to_knowledge_store,
    list_knowledge_store_items,
]
