"""Toolset `ingest`: `bulk_ingest`, many files (a folder in an allowed folder, or a list of URLs) in one job.

Each bulk ingest is a plan stored in the backend's ingest ledger (`server/ingest_ledger.py`): its files and
each one's state, so a server restarted mid-way resumes it when the same call comes again. This module is
the tool and its result; `server/bulk_plan.py` chooses the files and claims the plan, and
`server/bulk_send.py` works it (each content uploaded once, each registration made once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.redaction import display_url
from tl_mcp.server import bulk_plan
from tl_mcp.server.bulk_plan import LEASE_S, MAX_FILES, RUNNER
from tl_mcp.server.bulk_send import Target, run_plan
from tl_mcp.server.ingest_ledger import Plan
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job
from tl_mcp.server.principals import current_principal
from tl_mcp.server.results import FILL, JobResult, JobStatus, Markdown, call, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS, http_url, one_of
from tl_mcp.server.tools.ingest import check_destinations
from tl_mcp.server.toolspec import ToolSpec, tool

MAX_CONCURRENCY = 8
_SHOWN = 30
Glob = Annotated[str, Field(min_length=1, max_length=200)]


class BulkFile(BaseModel):
    #: The path inside the folder, or the URL (its credentials masked).
    source: str
    asset_id: str | None = None
    #: Also the video_id in search results.
    indexed_asset_id: str | None = None
    item_id: str | None = None
    #: Why it was skipped or failed.
    detail: str | None = None


class BulkResult(JobResult[JobStatus]):
    awaited: ClassVar[str] = "to follow the rest"

    plan_id: str
    total: int
    pending: int
    uploaded: list[BulkFile]
    #: The backend had this content already: not sent again.
    reused: list[BulkFile]
    skipped: list[BulkFile]
    failed: list[BulkFile]


@dataclass
class BulkProgress(JobProgress):
    """The plan being worked; a bulk job stays in this process (its work is sending local bytes)."""

    plan: Plan
    folder: str | None
    index_id: str | None
    knowledge_store_id: str | None

    def result(self, status: Literal["completed", "in_progress"], job_id: str, state: AppState) -> BulkResult:
        rows: dict[str, list[BulkFile]] = {"uploaded": [], "reused": [], "skipped": [], "failed": []}
        for f in self.plan.files:
            if f.status in rows:
                rows[f.status].append(
                    BulkFile(
                        source=display_url(f.source),
                        asset_id=f.asset_id,
                        indexed_asset_id=f.indexed_asset_id,
                        item_id=f.item_id,
                        detail=f.detail,
                    )
                )
        return BulkResult(
            status=status,
            job_id=job_id,
            backend=state.backend,
            plan_id=self.plan.plan_id,
            total=len(self.plan.files),
            pending=sum(1 for f in self.plan.files if f.status == "pending"),
            **rows,
        )


def bulk_markdown(r: BulkResult, p: BulkProgress, again: str) -> Markdown:
    md = Markdown(r.titled("Bulk ingest"))
    md.field("Plan", r.plan_id).field("Folder", p.folder)
    md.field("Index", p.index_id).field("Knowledge store", p.knowledge_store_id)
    md.field(
        "Files",
        f"{r.total} in all: {len(r.uploaded)} uploaded, {len(r.reused)} reused, {len(r.skipped)} skipped, "
        f"{len(r.failed)} failed, {r.pending} to go",
    )
    for title, rows in (
        ("Uploaded", r.uploaded),
        ("Reused (already uploaded before, not sent again)", r.reused),
        ("Skipped", r.skipped),
        ("Failed", r.failed),
    ):
        if not rows:
            continue
        lines = [_line(row) for row in rows[:_SHOWN]]
        if len(rows) > _SHOWN:
            lines.append(f"- … and {len(rows) - _SHOWN} more (all are in the structured result)")
        md.section(f"{title}: {len(rows)}", lines)
    if r.in_progress:
        md.next_step(r.wait_step())
        md.next_step(f"If the server restarts meanwhile, {again} resumes this plan where it stopped.")
        return md
    if r.failed:
        md.next_step(f"Retry the failed files: {again} (what is done already is reused, not sent again).")
    first = next((row for row in r.uploaded + r.reused if row.indexed_asset_id), None)
    if first and p.index_id:
        check = call("wait_for_task", id=first.indexed_asset_id, index_id=p.index_id)
        md.next_step(f"Indexing goes on upstream: {check} follows one file; then search the index.")
        md.next_step(f"Search them: {call('search_videos', query=FILL, index_id=p.index_id)}.")
    if p.knowledge_store_id and any(row.item_id for row in r.uploaded + r.reused):
        ask = call("create_response", knowledge_store_id=p.knowledge_store_id, input=FILL)
        md.next_step(f"Ask about them once their items are ready: {ask}.")
    return md


def _line(row: BulkFile) -> str:
    ids = ", ".join(
        f"{label} {value}"
        for label, value in (
            ("asset", row.asset_id),
            ("video", row.indexed_asset_id),
            ("item", row.item_id),
        )
        if value
    )
    text = f"- {row.source}" + (f": {ids}" if ids else "")
    return text + (f" — {row.detail}" if row.detail else "")


@tool(
    toolset="ingest", title="Upload many files or URLs", read_only=False, destructive=False, idempotent=True
)
async def bulk_ingest(
    ctx: Ctx,
    folder: Annotated[str | None, Field(description="Absolute path in an allowed folder.")] = None,
    include: Annotated[
        list[Glob] | None,
        Field(max_length=20, description='Files to take, e.g. ["*.mp4"]; default all.'),
    ] = None,
    exclude: Annotated[list[Glob] | None, Field(max_length=20, description="Files to leave out.")] = None,
    urls: Annotated[
        list[Annotated[str, Field(max_length=4000)]] | None,
        Field(max_length=MAX_FILES, description="Public URLs, instead of a folder."),
    ] = None,
    index_id: Annotated[Id | None, Field(description="Also index each here.")] = None,
    knowledge_store_id: Annotated[Id | None, Field(description="Also add each to this store.")] = None,
    concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY, description="Uploads at once.")] = 4,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, BulkResult]:
    """Upload a folder or a list of URLs as one job, instead of many upload_asset calls.

    Content uploaded before is reused, not sent again. The same call again resumes after a restart and
    retries failures. A glob with "/" matches the path in the folder, else the file name.
    """
    state = app_state(ctx)
    one_of("bulk_ingest", folder=folder, urls=urls)
    if urls and (include or exclude):
        raise ToolError("bulk_ingest: include and exclude filter a folder's files; leave them out with urls.")
    await check_destinations(state, index_id, knowledge_store_id)
    owner = current_principal()
    if folder is not None:
        with state.files.folder(folder) as opened:
            root = str(opened.path)
            spec: dict[str, object] = {
                "folder": root,
                "include": sorted(include or []),
                "exclude": sorted(exclude or []),
            }
            plan = bulk_plan.resumable(state, owner, spec, index_id, knowledge_store_id)
            if plan is None:
                globs = bulk_plan.Globs(include or [], exclude or [])
                chosen = globs.check(opened.files(limit=20 * MAX_FILES, keep=globs), root)
                plan = bulk_plan.new_plan(state, owner, spec, index_id, knowledge_store_id, chosen)
    else:
        assert urls is not None
        root = None
        unique = list(dict.fromkeys(urls))
        for url in unique:
            http_url(url, "each of urls")
        await bulk_plan.refuse_private(unique)
        spec = {"urls": sorted(unique)}
        plan = bulk_plan.resumable(state, owner, spec, index_id, knowledge_store_id) or bulk_plan.new_plan(
            state, owner, spec, index_id, knowledge_store_id, unique
        )
    again = call(
        "bulk_ingest",
        folder=folder,
        include=include,
        exclude=exclude,
        # A long list is not repeated in a hint: the same list, in any order, names the same plan.
        urls=None if urls is None else (urls if len(urls) <= 3 else FILL),
        index_id=index_id,
        knowledge_store_id=knowledge_store_id,
    )
    progress = BulkProgress(plan, root, index_id, knowledge_store_id)

    def render(status: Literal["completed", "in_progress"], job_id: str) -> CallToolResult:
        result = progress.result(status, job_id, state)
        return tool_result(result, bulk_markdown(result, progress, again))

    async def work(job: Job) -> CallToolResult:
        try:
            await run_plan(state, job, plan, Target(root, index_id, knowledge_store_id), concurrency)
            # Finished before released: no process ever finds this plan unfinished and free once done.
            state.ingest.finish_plan(plan.plan_id)
            plan.finished = True
        finally:
            state.ingest.release_plan(plan.plan_id, RUNNER)
        return render("completed", job.id)

    held = state.ingest.claim_plan(plan.plan_id, RUNNER, LEASE_S, bulk_plan.alive)
    if held is not None:
        holder, holder_job = held
        running = state.jobs.get(holder_job) if holder == RUNNER and holder_job else None
        if running is None:
            raise ToolError(
                f"Plan {plan.plan_id} is being worked on by another tl-mcp process (on "
                f"{holder.split(':')[0]}), so this call started nothing. Call again once it has finished; "
                f"if that process has stopped, its claim ends within {LEASE_S:.0f} s."
            )
        return await state.jobs.run(running, ctx.report_progress, wait_s=wait_s)
    try:
        job = state.jobs.start(
            "bulk",
            f"bulk ingest of {len(plan.files)} files",
            work,
            lambda j: render("in_progress", j.id),
            progress,
        )
    except BaseException:
        state.ingest.release_plan(plan.plan_id, RUNNER)
        raise
    state.ingest.renew_plan(plan.plan_id, RUNNER, LEASE_S, job_id=job.id)
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


TOOLS: list[ToolSpec] = [bulk_ingest]
