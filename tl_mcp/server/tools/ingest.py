"""Toolset `ingest`: upload media (local files in allowed folders, or URLs); `wait_for_task` (in tasks.py)
waits for work to finish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Annotated, ClassVar, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from tl_mcp.api.errors import NotFoundError, TwelveLabsError
from tl_mcp.api.models import MetadataValue
from tl_mcp.redaction import display_url, mask_urls
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.files import LocalFile, refuse_referencing_name
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Resumed
from tl_mcp.server.jobs.portable import unknown_kind
from tl_mcp.server.results import FILL, JobResult, JobStatus, Markdown, call, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS, http_url, one_of
from tl_mcp.server.tools.metadata import MetadataArg, metadata_arg
from tl_mcp.server.tools.tasks import TERMINAL_BAD, follow, is_terminal
from tl_mcp.server.toolspec import ToolSpec, tool


class UploadResult(JobResult[JobStatus]):
    awaited: ClassVar[str] = "to follow it"

    asset_id: str | None = None
    asset_status: str | None = None
    filename: str | None = None
    size_bytes: int | None = None
    index_id: str | None = None
    indexed_asset_id: str | None = Field(
        default=None, description="Also the video_id used by search results."
    )
    indexing_status: str | None = None
    knowledge_store_id: str | None = None
    item_id: str | None = None
    item_status: str | None = None


@dataclass
class UploadProgress(JobProgress):
    """What an upload job knows; every field is one of `UploadResult`'s."""

    code: ClassVar[str] = "u"
    movable: ClassVar[bool] = True

    asset_id: str | None = None
    asset_status: str | None = None
    filename: str | None = None
    size_bytes: int | None = None
    index_id: str | None = None
    indexed_asset_id: str | None = None
    indexing_status: str | None = None
    knowledge_store_id: str | None = None
    item_id: str | None = None
    item_status: str | None = None

    def handles(self) -> list[str] | None:
        # Until every handle exists, the rest of the work (uploading, registering) is this process's.
        asset, index, indexed = self.asset_id, self.index_id, self.indexed_asset_id
        store, item = self.knowledge_store_id, self.item_id
        if not asset or (index and not indexed) or (store and not item):
            return None
        return [asset, index or "", indexed or "", store or "", item or ""]

    def result(
        self, status: Literal["completed", "in_progress"], job_id: str, state: AppState
    ) -> UploadResult:
        return UploadResult(
            status=status,
            job_id=job_id,
            backend=state.backend,
            **asdict(self),
        )


def upload_markdown(r: UploadResult) -> Markdown:
    md = Markdown("Upload in progress" if r.in_progress else "Upload finished")
    md.field("Asset", f"{r.asset_id} ({r.asset_status})" if r.asset_id else None)
    md.field("File", r.filename).field("Size", f"{r.size_bytes:,} bytes" if r.size_bytes else None)
    if r.index_id:
        md.field("Index", r.index_id).field("Indexed asset / video", r.indexed_asset_id)
        md.field("Indexing status", r.indexing_status)
    if r.knowledge_store_id:
        md.field("Knowledge store", r.knowledge_store_id).field("Item", r.item_id).field(
            "Item status", r.item_status
        )
    if r.in_progress:
        md.next_step(r.wait_step())
    else:
        pending = []
        if r.indexed_asset_id and not is_terminal(r.indexing_status):
            pending.append(call("wait_for_task", id=r.indexed_asset_id, index_id=r.index_id))
        if r.item_id and not is_terminal(r.item_status):
            pending.append(call("wait_for_task", id=r.item_id, knowledge_store_id=r.knowledge_store_id))
        for p in pending:
            md.next_step(f"Not ready yet: {p} waits until it can be searched or asked about.")
        if not pending and r.index_id:
            md.next_step(f"Search it: {call('search_videos', query=FILL, index_id=r.index_id)}.")
        if not pending and r.knowledge_store_id:
            ask = call("create_response", knowledge_store_id=r.knowledge_store_id, input=FILL)
            md.next_step(f"Ask about it: {ask}.")
    return md


def finished_upload(result: UploadResult) -> CallToolResult:
    """The final result of an upload job, or a `ToolError` when indexing or the store item failed."""
    for label, status in (
        ("Indexing", result.indexing_status),
        ("Knowledge-store item", result.item_status),
    ):
        if (status or "").lower() in TERMINAL_BAD:
            raise ToolError(
                f"{label} of asset {result.asset_id} ended with status {status}. Check the media file."
            )
    return tool_result(result, upload_markdown(result))


async def follow_indexing(state: AppState, job: Job, progress: UploadProgress) -> str | None:
    """Watch the upload's indexed asset until indexing ends; `progress.indexing_status` stays current."""
    assert progress.index_id and progress.indexed_asset_id
    index_id, indexed_id = progress.index_id, progress.indexed_asset_id

    async def fetch() -> str | None:
        progress.indexing_status = (await state.client.indexed_assets.get(index_id, indexed_id)).status
        return progress.indexing_status

    watching = call("wait_for_task", id=indexed_id, index_id=index_id)
    return await follow(job, "Indexing", fetch, lambda s: s, policy=state.client.poll, watching=watching)


async def follow_item(state: AppState, job: Job, progress: UploadProgress) -> str | None:
    """Watch the upload's store item until it is ready or failed; `progress.item_status` stays current."""
    assert progress.knowledge_store_id and progress.item_id
    store_id, item_id = progress.knowledge_store_id, progress.item_id

    async def fetch() -> str | None:
        progress.item_status = (await state.client.knowledge.items.get(store_id, item_id)).status
        return progress.item_status

    watching = call("wait_for_task", id=item_id, knowledge_store_id=store_id)
    return await follow(
        job, "Knowledge-store item", fetch, lambda s: s, policy=state.client.poll, watching=watching
    )


@tool(toolset="ingest", title="Upload a video or image", read_only=False, destructive=False, idempotent=False)
async def upload_asset(
    ctx: Ctx,
    path: Annotated[str | None, Field(description="Absolute path of a file in an allowed folder.")] = None,
    url: Annotated[str | None, Field(max_length=4000, description="Public http(s) URL of the media.")] = None,
    index_id: Annotated[Id | None, Field(description="Also index it here.")] = None,
    knowledge_store_id: Annotated[
        Id | None, Field(description="Also add it to this knowledge store.")
    ] = None,
    filename: Annotated[str | None, Field(min_length=1, max_length=255, description="Name to store.")] = None,
    user_metadata: MetadataArg | None = None,
    wait: Annotated[bool, Field(description="Wait until indexing / the store item is ready.")] = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, UploadResult]:
    """Upload a video or image, then index it and/or add it to a knowledge store.

    Use it to bring media in before searching or asking about it; the upload streams byte progress.
    Local paths must be in a folder the server allows (--allow-dir / TL_MCP_ALLOWED_DIRS); else a URL.
    Indexing takes a while: wait=true waits, or follow the next steps (wait_for_task). No index or
    store yet: create_index, create_knowledge_store.
    """
    state = app_state(ctx)
    source = one_of("upload_asset", path=path, url=url)
    if filename:
        refuse_referencing_name(filename, "filename")
    if url:
        http_url(url)
    meta = metadata_arg(user_metadata, "user_metadata") if user_metadata else None
    local = state.files.open(path) if source == "path" and path else None
    size = local.size if local else None
    if local is not None and size == 0:
        local.close()
        raise ToolError(f"{path} is empty; nothing to upload.")
    name = filename or (local.name if local else None)
    await check_destinations(state, index_id, knowledge_store_id)

    progress = UploadProgress(
        filename=name, size_bytes=size, index_id=index_id, knowledge_store_id=knowledge_store_id
    )

    def partial(job: Job) -> CallToolResult:
        result = progress.result("in_progress", job.id, state)
        return tool_result(result, upload_markdown(result))

    async def work(job: Job) -> CallToolResult:
        try:
            asset_id = await _upload(state, job, progress, local=local, url=url, meta=meta)
        finally:
            if local is not None:
                local.close()
        if index_id or knowledge_store_id:
            await _wait_asset(state, job, progress, asset_id)
        with upstream(f"Registering asset {asset_id}"):
            if index_id:
                # On the video too: that is the metadata search filters and list_videos see.
                progress.indexed_asset_id = await state.client.indexed_assets.create(
                    index_id, asset_id, user_metadata=meta
                )
                progress.indexing_status = "pending"
                job.emit_note(f"Indexing started in {index_id}: {progress.indexed_asset_id}")
            if knowledge_store_id:
                item = await state.client.knowledge.items.add(
                    knowledge_store_id, asset_id=asset_id, metadata=meta
                )
                progress.item_id, progress.item_status = item.id, item.status
                job.emit_note(f"Added to knowledge store {knowledge_store_id}: item {item.id}")
            if wait and index_id:
                await follow_indexing(state, job, progress)
            if wait and knowledge_store_id:
                await follow_item(state, job, progress)
        return finished_upload(progress.result("completed", job.id, state))

    try:
        job = state.jobs.start(
            "upload", f"upload of {name or display_url(url or '')}", work, partial, progress
        )
    except BaseException:
        if local is not None:
            local.close()
        raise
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


async def check_destinations(state: AppState, index_id: str | None, knowledge_store_id: str | None) -> None:
    """A wrong index or store is refused before a byte is sent: afterwards it would leave an orphan asset."""
    c = state.client
    checks: list[tuple[str, str, Callable[[str], Awaitable[object]], str]] = []
    if index_id:
        checks.append(
            ("index", index_id, c.indexes.get, "list_indexes shows the indexes; create_index makes one")
        )
    if knowledge_store_id:
        checks.append(
            (
                "knowledge store",
                knowledge_store_id,
                c.knowledge.stores.get,
                "list_knowledge_stores shows the stores; create_knowledge_store makes one",
            )
        )
    for what, ident, fetch, where in checks:
        try:
            await fetch(ident)
        except NotFoundError:
            raise ToolError(
                f"Upload refused: there is no {what} {ident}, so nothing was uploaded. {where}."
            ) from None
        except TwelveLabsError as exc:
            raise ToolError(explain(f"Checking {what} {ident} before the upload", exc)) from None


async def _upload(
    state: AppState,
    job: Job,
    progress: UploadProgress,
    *,
    local: LocalFile | None,
    url: str | None,
    meta: dict[str, MetadataValue] | None,
) -> str:
    """Send the media; the new asset's id."""
    filename, size = progress.filename, progress.size_bytes
    step = max((size or 0) // 50, 64 * 1024)
    last_sent = -step

    def on_bytes(sent: int, total: int | None) -> None:
        nonlocal last_sent
        if sent - last_sent >= step or (total is not None and sent >= total):
            last_sent = sent
            of = f" of {total:,}" if total else ""
            job.emit_note(
                f"Uploaded {sent:,}{of} bytes", progress=float(sent), total=float(total) if total else None
            )

    try:
        if local is not None:
            job.emit_note(
                f"Uploading {local.name} ({size:,} bytes)", progress=0.0, total=float(size or 0) or None
            )
            asset = await state.client.assets.upload(
                local.file, filename=filename, progress=on_bytes, user_metadata=meta
            )
        else:
            assert url is not None
            job.emit_note("Creating the asset from the URL")
            asset = await state.client.assets.create_from_url(url, filename=filename, user_metadata=meta)
    except TwelveLabsError as exc:
        raise ToolError(explain("Upload", exc)) from None
    except (OSError, ValueError) as exc:
        raise ToolError(f"Upload failed: {exc}.") from None
    progress.asset_id, progress.asset_status = asset.id, asset.status
    job.emit_note(f"Asset {asset.id}: {asset.status or 'created'}")
    return asset.id


async def _wait_asset(state: AppState, job: Job, progress: UploadProgress, asset_id: str) -> None:
    """Indexing and knowledge stores want a ready asset; processing is short, so wait for it here."""

    why: str | None = None

    async def fetch() -> str | None:
        nonlocal why
        asset = await state.client.assets.get(asset_id)
        why = asset.error.message if asset.error else None
        return asset.status

    with upstream(f"Checking asset {asset_id}"):
        status = await follow(
            job,
            f"Asset {asset_id}",
            fetch,
            lambda s: s,
            policy=state.client.poll,
            watching=call("wait_for_task", id=asset_id, kind="asset"),
            known=progress.asset_status,
        )
    progress.asset_status = status
    if (status or "").lower() in TERMINAL_BAD:
        reason = mask_urls(why.strip().rstrip(".")) if why else "the media could not be processed"
        raise ToolError(
            f"Asset {asset_id} ended with status {status}: {reason}. Nothing was indexed or added; check "
            "that the file or URL is a readable video or image (a URL must be reachable by the API), then "
            "upload it again."
        )


def resume_upload(state: Callable[[], AppState], job_id: str, fields: list[str]) -> Resumed:
    """An upload started on another replica, from its portable id: follow its handles upstream."""
    if len(fields) != 5:
        raise unknown_kind(job_id)
    asset_id, index_id, indexed_id, store_id, item_id = fields
    app = state()
    progress = UploadProgress(
        asset_id=asset_id,
        index_id=index_id or None,
        indexed_asset_id=indexed_id or None,
        knowledge_store_id=store_id or None,
        item_id=item_id or None,
    )

    def partial(job: Job) -> CallToolResult:
        r = progress.result("in_progress", job_id, app)
        return tool_result(r, upload_markdown(r))

    async def work(job: Job) -> CallToolResult:
        with upstream(f"Following asset {asset_id}"):
            asset = await app.client.assets.get(asset_id)
            progress.asset_status, progress.filename = asset.status, asset.filename
            progress.size_bytes = asset.size
            if progress.indexed_asset_id:
                await follow_indexing(app, job, progress)
            if progress.item_id:
                await follow_item(app, job, progress)
        return finished_upload(progress.result("completed", job_id, app))

    return Resumed("upload", f"upload of asset {asset_id}", work, partial, progress)


TOOLS: list[ToolSpec] = [upload_asset]
