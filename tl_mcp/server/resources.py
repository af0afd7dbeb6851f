"""Read-only views for clients that browse: indexes, videos, knowledge stores, and the workflow guide."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources as importlib_resources
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)
from pydantic_core import to_jsonable_python

from tl_mcp.api.errors import NotFoundError, TwelveLabsError
from tl_mcp.server.errors import explain
from tl_mcp.server.state import AppState, StateHolder, app_state
from tl_mcp.server.thumbnails import THUMBNAIL_TEMPLATE

JSON = "application/json"
MAX_LISTED = 50  # the API caps page_limit at 50


def guide_text() -> str:
    return importlib_resources.files("tl_mcp.server").joinpath("guide.md").read_text("utf-8")


def _dump(value: Any) -> str:
    return json.dumps(to_jsonable_python(value, exclude_none=True), indent=2, ensure_ascii=False)


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """API errors inside the block become resource errors that say what to do; a 404 stays a not-found."""
    try:
        yield
    except TwelveLabsError as exc:
        error = ResourceNotFoundError if isinstance(exc, NotFoundError) else ResourceError
        raise error(explain(what, exc)) from None


async def list_index_ids(state: AppState) -> list[tuple[str, str]]:
    page = await state.client.indexes.list(page=1, page_limit=50)
    return [(i.id, i.index_name or "") for i in page.data]


async def list_store_ids(state: AppState) -> list[tuple[str, str]]:
    page = await state.client.knowledge.stores.list(page=1, page_limit=50)
    return [(s.id, s.name or "") for s in page.data]


def register_resources(server: MCPServer[AppState], holder: StateHolder) -> None:
    @server.resource(
        "twelvelabs://guide",
        name="guide",
        title="How to use the TwelveLabs tools",
        description="Workflow guide: upload → wait → search/ask; sessions; job handles; thumbnails; errors.",
        mime_type="text/markdown",
    )
    def guide() -> str:
        return guide_text()

    @server.resource(
        "twelvelabs://indexes",
        name="indexes",
        title="Search indexes",
        description="Every search index (id, name, models, video count).",
        mime_type=JSON,
    )
    async def indexes() -> str:
        state = holder.get()
        with _reading("Listing indexes"):
            page = await state.client.indexes.list(page=1, page_limit=MAX_LISTED)
        return _dump({"backend": state.backend, "indexes": page.data})

    @server.resource(
        "twelvelabs://indexes/{index_id}",
        name="index",
        title="One search index with its videos",
        description="An index's settings and the first page of its videos.",
        mime_type=JSON,
    )
    async def index(index_id: str, ctx: Context[AppState, Any]) -> str:
        state = app_state(ctx)
        with _reading(f"Reading index {index_id}"):
            info = await state.client.indexes.get(index_id)
            videos = await state.client.videos.list(index_id, page=1, page_limit=MAX_LISTED)
        return _dump({"index": info, "videos": videos.data})

    @server.resource(
        "twelvelabs://indexes/{index_id}/videos/{video_id}",
        name="video",
        title="One indexed video",
        description="A video's metadata, and its transcript when the index has one.",
        mime_type=JSON,
    )
    async def video(index_id: str, video_id: str, ctx: Context[AppState, Any]) -> str:
        state = app_state(ctx)
        with _reading(f"Reading video {video_id} in index {index_id}"):
            info = await state.client.videos.get(index_id, video_id, transcription=True)
        return _dump(info)

    @server.resource(
        "twelvelabs://knowledge-stores",
        name="knowledge-stores",
        title="Knowledge stores",
        description="Every knowledge store Jockey can answer over (id, name, item count).",
        mime_type=JSON,
    )
    async def stores() -> str:
        state = holder.get()
        with _reading("Listing knowledge stores"):
            page = await state.client.knowledge.stores.list(page=1, page_limit=MAX_LISTED)
        return _dump({"backend": state.backend, "knowledge_stores": page.data})

    @server.resource(
        "twelvelabs://knowledge-stores/{knowledge_store_id}",
        name="knowledge-store",
        title="One knowledge store with its items",
        description="A knowledge store and the first page of its items with their status.",
        mime_type=JSON,
    )
    async def store(knowledge_store_id: str, ctx: Context[AppState, Any]) -> str:
        state = app_state(ctx)
        with _reading(f"Reading knowledge store {knowledge_store_id}"):
            info = await state.client.knowledge.stores.get(knowledge_store_id)
            items = await state.client.knowledge.items.list(knowledge_store_id, page=1, page_limit=MAX_LISTED)
        return _dump({"knowledge_store": info, "items": items.data})

    @server.resource(
        THUMBNAIL_TEMPLATE,
        name="thumbnail",
        title="The picture of a moment",
        description="JPEG of the scene at `seconds` of a video, asset or knowledge-store item: the "
        "thumbnail_uri of search moments and Jockey citations. Served by the sandbox backend, also by a "
        "later server on the same sandbox data; on the TwelveLabs cloud use the moment's thumbnail_url.",
        mime_type="image/jpeg",
    )
    async def thumbnail(media_id: str, seconds: str, ctx: Context[AppState, Any]) -> bytes:
        state = app_state(ctx)
        if state.backend != "sandbox":
            raise ResourceError(
                "Thumbnail resources are served by the sandbox backend only: the TwelveLabs cloud has no "
                "picture-by-time route. Use the moment's thumbnail_url (a signed link, valid about an hour), "
                "or search again for a fresh one."
            )
        try:
            at = float(seconds)
        except ValueError:
            at = float("nan")
        if not 0 <= at < float("inf"):
            raise ResourceError(
                f"{seconds!r} is not a time in seconds (0 or more): e.g. "
                f"twelvelabs://thumbnails/{media_id}/12.5."
            )
        with _reading(f"Reading the thumbnail of {media_id} at {at:g} s"):
            return await state.client.assets.sandbox_thumbnail(media_id, at)

    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if argument.name not in ("index_id", "knowledge_store_id"):
            return None
        try:
            state = holder.get()
            pairs = await (list_index_ids(state) if argument.name == "index_id" else list_store_ids(state))
        except (TwelveLabsError, RuntimeError):
            return Completion(values=[])
        prefix = argument.value or ""
        values = [i for i, name in pairs if i.startswith(prefix) or name.lower().startswith(prefix.lower())]
        return Completion(values=values[:100], total=len(values), has_more=len(values) > 100)
