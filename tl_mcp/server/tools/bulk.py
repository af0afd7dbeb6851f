"""Toolset `ingest`: `bulk_ingest`, many files (a folder in an allowed folder, or a list of URLs) in one job.

Each bulk ingest is a plan stored in the backend's ingest ledger (`server/ingest_ledger.py`): its files and
each one's state, so a server restarted mid-way resumes it when the same call comes again. Uploads are
idempotent by content: every asset carries its content key (a SHA-256 of the file, or of the URL) in
`user_metadata`, and the ledger maps keys to assets, so content the backend already has is reused. An
upload the ledger only intended (the process died while sending it) is looked up upstream by that key
before anything is sent again; index and knowledge-store registrations are reconciled the same way.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import json
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, ClassVar, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api import Page
from tl_mcp.api.errors import APIStatusError, NotFoundError, TwelveLabsError
from tl_mcp.server.errors import explain
from tl_mcp.server.files import LocalFile
from tl_mcp.server.ingest_ledger import Plan, PlanFile
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.manager import Job
from tl_mcp.server.principals import current_principal
from tl_mcp.server.results import FILL, JobResult, JobStatus, Markdown, call, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS, http_url, one_of
from tl_mcp.server.tools.ingest import check_destinations
from tl_mcp.server.toolspec import ToolSpec, tool

#: The `user_metadata` key every bulk-ingested asset carries: its content key, found again after a crash.
CONTENT_TAG = "tl_mcp_content"
MAX_FILES = 1000
MAX_CONCURRENCY = 8
#: How long a process's claim on a plan lasts without renewal; a dead process's claim ends sooner
#: when it ran on this host (its pid is gone).
LEASE_S = 60.0
#: How often a file another process is uploading right now is looked at again.
_HELD_POLL_S = 0.5
#: Reconciling a lost upload or store item looks through at most this many pages of 50.
_SCAN_PAGES = 20
_SHOWN = 30
#: Files at least this big get byte progress notes while they upload, not only one when done.
_BYTE_NOTES_FROM = 8 * 1024 * 1024
#: How long one URL's host may take to resolve for the private-address check.
_RESOLVE_S = 5.0
_HOST = socket.gethostname()
#: This process, as the holder of plan claims: host, pid and a token (a pid can be reused).
_RUNNER = f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"

T = TypeVar("T")
Glob = Annotated[str, Field(min_length=1, max_length=200)]


class BulkFile(BaseModel):
    #: The path inside the folder, or the URL.
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
                        source=f.source,
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
            plan = _resumable(state, owner, spec, index_id, knowledge_store_id)
            if plan is None:
                globs = _Globs(include or [], exclude or [])
                chosen = globs.check(opened.files(limit=20 * MAX_FILES, keep=globs), root)
                plan = _new_plan(state, owner, spec, index_id, knowledge_store_id, chosen)
    else:
        assert urls is not None
        root = None
        unique = list(dict.fromkeys(urls))
        for url in unique:
            http_url(url, "each of urls")
        await _refuse_private(unique)
        spec = {"urls": sorted(unique)}
        plan = _resumable(state, owner, spec, index_id, knowledge_store_id) or _new_plan(
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
            await _run_plan(state, job, progress, concurrency)
            # Finished before released: no process ever finds this plan unfinished and free once done.
            state.ingest.finish_plan(plan.plan_id)
            plan.finished = True
        finally:
            state.ingest.release_plan(plan.plan_id, _RUNNER)
        return render("completed", job.id)

    held = state.ingest.claim_plan(plan.plan_id, _RUNNER, LEASE_S, _alive)
    if held is not None:
        holder, holder_job = held
        running = state.jobs.get(holder_job) if holder == _RUNNER and holder_job else None
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
        state.ingest.release_plan(plan.plan_id, _RUNNER)
        raise
    state.ingest.renew_plan(plan.plan_id, _RUNNER, LEASE_S, job_id=job.id)
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


def _alive(runner: str) -> bool:
    """Whether the process holding a claim may still run: on another host we cannot tell (its lease
    decides), on this one its pid must exist and not be this process under another token."""
    host, _, rest = runner.partition(":")
    pid, _, _token = rest.partition(":")
    if host != _HOST or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return runner == _RUNNER
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _plan_id(owner: str, spec: dict[str, object], index_id: str | None, store_id: str | None) -> str:
    """The same call by the same principal names the same plan, so calling again resumes it."""
    material = json.dumps(
        {"owner": owner, "spec": spec, "index_id": index_id, "knowledge_store_id": store_id}, sort_keys=True
    )
    return "bulk_" + hashlib.sha256(material.encode()).hexdigest()[:20]


def _resumable(
    state: AppState, owner: str, spec: dict[str, object], index_id: str | None, store_id: str | None
) -> Plan | None:
    """The unfinished plan this call names, if a previous call (in any process) left one."""
    plan = state.ingest.plan(_plan_id(owner, spec, index_id, store_id))
    return plan if plan is not None and not plan.finished and plan.owner == owner else None


def _new_plan(
    state: AppState,
    owner: str,
    spec: dict[str, object],
    index_id: str | None,
    store_id: str | None,
    sources: Sequence[str],
) -> Plan:
    if len(sources) > MAX_FILES:
        raise ToolError(
            f"bulk_ingest: {len(sources):,} files match, more than the {MAX_FILES:,} one call takes. Narrow "
            "the folder or the include patterns and ingest it in parts; nothing was uploaded."
        )
    plan = Plan(
        plan_id=_plan_id(owner, spec, index_id, store_id),
        owner=owner,
        spec=spec,
        files=[PlanFile(position=i, source=src) for i, src in enumerate(sources)],
    )
    state.ingest.save_plan(plan)
    return plan


def _matches(rel: str, pattern: str) -> bool:
    target = rel if "/" in pattern else PurePosixPath(rel).name
    return fnmatch.fnmatchcase(target, pattern)


class _Globs:
    """The include/exclude patterns as the filter of a folder's listing (so only the files they take count
    against its limit), remembering a few of the files seen for an error that shows what is there."""

    def __init__(self, include: list[str], exclude: list[str]) -> None:
        self.include, self.exclude = include, exclude
        self.seen = 0
        self.examples: list[str] = []

    def __call__(self, rel: str) -> bool:
        self.seen += 1
        if len(self.examples) < 5:
            self.examples.append(rel)
        return (not self.include or any(_matches(rel, g) for g in self.include)) and not any(
            _matches(rel, g) for g in self.exclude
        )

    def check(self, chosen: list[str], root: str) -> list[str]:
        """`chosen`, the files taken; ToolError (nothing changed) when they are none."""
        if chosen:
            return chosen
        if not self.seen:
            raise ToolError(
                f"bulk_ingest: {root} has no files (hidden files and links are not taken); nothing was "
                "uploaded."
            )
        raise ToolError(
            f"bulk_ingest: include={self.include} exclude={self.exclude} match none of the {self.seen} "
            f"files in {root} (e.g. {', '.join(self.examples)}); nothing was uploaded. A pattern without "
            "'/' matches the file name (e.g. *.mp4, case-sensitive); with '/' it matches the path inside "
            "the folder."
        )


async def _refuse_private(urls: Sequence[str]) -> None:
    """A URL whose host is (or resolves to) a private, loopback or link-local address is refused, all of
    the list with it: TwelveLabs cannot fetch those, and a sandbox must not fetch its own network. A host
    that does not resolve here (in time) is left to the backend, which says so per file."""
    hosts: dict[tuple[str, int], str] = {}
    for url in urls:
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ToolError(f"bulk_ingest refused: {url[:200]!r} is not a valid URL ({exc}).") from None
        if not host:
            raise ToolError(f"bulk_ingest refused: {url[:200]!r} has no host.")
        hosts.setdefault((host, port), url)

    def addresses(host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        try:
            return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        except (OSError, UnicodeError):
            return []

    for (host, port), url in hosts.items():
        found: list[str] = []
        with anyio.move_on_after(_RESOLVE_S):
            found = await anyio.to_thread.run_sync(addresses, host, port, abandon_on_cancel=True)
        for raw in found:
            ip = ipaddress.ip_address(raw.split("%")[0])
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            if not (mapped or ip).is_global:
                raise ToolError(
                    f"bulk_ingest refused: {url[:200]!r} points at {ip}, a private, loopback or otherwise "
                    "non-public address. Only public URLs can be fetched; upload local files with folder=… "
                    "instead. Nothing was uploaded."
                )


class _Skip(Exception):
    """The file is not one the server may send (the file policy refused it, or it is empty)."""


async def _run_plan(state: AppState, job: Job, progress: BulkProgress, concurrency: int) -> None:
    """Ingest every file of the plan not done yet, `concurrency` at a time, keeping the claim alive."""
    plan = progress.plan
    todo = iter([f for f in plan.files if f.status in ("pending", "failed")])
    total = len(plan.files)
    finished = sum(1 for f in plan.files if f.status not in ("pending", "failed"))
    job.emit_note(
        f"{total - finished} of {total} files to ingest", progress=float(finished), total=float(total)
    )

    def note(message: str) -> None:
        job.emit_note(message, progress=float(finished), total=float(total))

    async def worker() -> None:
        nonlocal finished
        for f in todo:
            await _ingest_one(state, progress, f, note)
            state.ingest.update_file(plan.plan_id, f)
            finished += 1
            said = f"{finished}/{total} {f.source}: {f.status}"
            job.emit_note(
                said + (f" ({f.detail})" if f.detail else ""), progress=float(finished), total=float(total)
            )

    async def keep_claim() -> None:
        while True:
            await anyio.sleep(LEASE_S / 3)
            state.ingest.renew_plan(plan.plan_id, _RUNNER, LEASE_S)
            state.ingest.renew_uploads(_RUNNER, LEASE_S)

    async with anyio.create_task_group() as outer:
        outer.start_soon(keep_claim)
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        outer.cancel_scope.cancel()


async def _ingest_one(
    state: AppState,
    progress: BulkProgress,
    f: PlanFile,
    note: Callable[[str], None],
) -> None:
    """Upload one file (or reuse the asset of its content) and register it; its outcome goes into `f`."""
    f.detail = None
    try:
        if progress.folder is not None:
            asset_id, fresh = await _send_file(state, progress.folder, f.source, note)
        else:
            asset_id, fresh = await _send_url(state, f.source)
    except _Skip as exc:
        f.status, f.detail = "skipped", str(exc)
        return
    except TwelveLabsError as exc:
        f.status, f.detail = "failed", explain("Upload", exc)
        return
    except OSError as exc:
        f.status, f.detail = "failed", f"Reading the file failed: {exc.strerror or exc}"
        return
    f.asset_id = asset_id
    try:
        if progress.index_id or progress.knowledge_store_id:
            await _register(state, progress, f)
    except TwelveLabsError as exc:
        f.status, f.detail = "failed", explain(f"Registering asset {asset_id}", exc)
        return
    f.status = "uploaded" if fresh else "reused"


async def _send_file(
    state: AppState, folder: str, source: str, note: Callable[[str], None]
) -> tuple[str, bool]:
    try:
        local = state.files.open(f"{folder}/{source}")
    except ToolError as exc:
        # Its first sentence says what is wrong with this file; the rest (why such files are refused) is
        # the same for every file and in the README, so a folder of them stays a short listing.
        reason = str(exc).removeprefix("Local path refused: ")
        raise _Skip(reason.split(". ", 1)[0].rstrip(".") + ".") from None
    with local:
        if local.size == 0:
            raise _Skip("the file is empty")
        key = "sha256:" + await anyio.to_thread.run_sync(_digest, local)

        size, next_note = local.size, local.size // 4

        def on_bytes(sent: int, _total: int | None) -> None:
            nonlocal next_note
            # Small files are told only when done; a big one also at each quarter on the way.
            if size >= _BYTE_NOTES_FROM and next_note <= sent < size:
                note(f"{source}: {sent:,} of {size:,} bytes sent")
                next_note = sent + size // 4

        async def send() -> str:
            asset = await state.client.assets.upload(
                local.file, filename=local.name, user_metadata={CONTENT_TAG: key}, progress=on_bytes
            )
            return asset.id

        return await _upload_once(state, key, local.name, send)


async def _send_url(state: AppState, url: str) -> tuple[str, bool]:
    key = "url:" + hashlib.sha256(url.encode()).hexdigest()
    # Named here rather than by the backend, so a lost upload can be looked up by the same name.
    name = unquote(PurePosixPath(urlsplit(url).path).name) or "download"

    async def send() -> str:
        asset = await state.client.assets.create_from_url(
            url, filename=name, user_metadata={CONTENT_TAG: key}
        )
        return asset.id

    return await _upload_once(state, key, name, send)


def _digest(local: LocalFile) -> str:
    """SHA-256 of the open file, by positional reads (the upload reads it the same way afterwards)."""
    h = hashlib.sha256()
    offset, fd = 0, local.file.fileno()
    while chunk := os.pread(fd, 1 << 20, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


async def _upload_once(
    state: AppState,
    key: str,
    name: str,
    send: Callable[[], Awaitable[str]],
) -> tuple[str, bool]:
    """(asset id, whether it was sent by this plan) for content `key`; sent only if the backend lacks it."""
    ledger = state.ingest
    # Two files with the same content (in this plan or another running now) must not both be sent: the
    # second waits and reuses the first.
    async with _lock(state, key):
        while True:
            entry = ledger.upload(key)
            if entry is not None and entry.state == "done":
                if entry.asset_id and await _exists(state, entry.asset_id):
                    return entry.asset_id, False
                ledger.forget_upload(key)
                continue
            if ledger.claim_upload(key, name, _RUNNER, LEASE_S, _alive) is None:
                break
            # Another process is sending this content now (or just finished): wait for its answer.
            await anyio.sleep(_HELD_POLL_S)
        if entry is not None:
            # A process died while sending it: the backend may have it, under the tag it was sent with.
            found = await _find_tagged(state, key, entry.filename or name)
            if found is not None:
                ledger.record_upload(key, found, name)
                return found, True
        try:
            asset_id = await send()
        except BaseException as exc:
            if isinstance(exc, APIStatusError) and exc.status is not None and exc.status < 500:
                # Refused, so nothing was created: no later call needs to look for it upstream.
                ledger.forget_upload(key)
            else:
                # Whether it arrived is unknown: the intent stays for the next sender to reconcile, which
                # need not wait for this process.
                ledger.release_upload(key, _RUNNER)
            raise
        ledger.record_upload(key, asset_id, name)
        return asset_id, True


async def _exists(state: AppState, asset_id: str) -> bool:
    return await _found(state.client.assets.get(asset_id))


async def _found(fetch: Awaitable[object]) -> bool:
    """Whether the upstream object exists (a 404 says it was deleted); other errors propagate."""
    try:
        await fetch
    except NotFoundError:
        return False
    return True


async def _first(fetch: Callable[[int], Awaitable[Page[T]]], hit: Callable[[T], bool]) -> T | None:
    """The first entry of a paged list that `hit` takes, looking through at most `_SCAN_PAGES` pages."""
    for page_no in range(1, _SCAN_PAGES + 1):
        page = await fetch(page_no)
        found = next((entry for entry in page.data if hit(entry)), None)
        if found is not None or not page.has_more:
            return found
    return None


async def _find_tagged(state: AppState, key: str, name: str) -> str | None:
    asset = await _first(
        lambda n: state.client.assets.list(n, 50, filename=name),
        # A failed one (e.g. a multipart upload cut short) is no upload to adopt: it is sent again.
        lambda a: (a.user_metadata or {}).get(CONTENT_TAG) == key and a.status != "failed",
    )
    return asset.id if asset else None


async def _register(state: AppState, progress: BulkProgress, f: PlanFile) -> None:
    """Index the file's asset and/or add it to the store, each at most once (reconciled after a crash)."""
    c, asset_id = state.client, f.asset_id
    assert asset_id
    asset = await c.assets.wait_ready(asset_id)
    if progress.index_id:
        index_id = progress.index_id

        async def index() -> str:
            return await c.indexed_assets.create(index_id, asset_id)

        async def still_indexed(ref: str) -> bool:
            return await _found(c.indexed_assets.get(index_id, ref))

        async def indexed() -> str | None:
            found = await _first(
                lambda n: c.assets.indexings(asset_id, n, 50),
                lambda x: bool(x.index and x.index.id == index_id),
            )
            return found.id if found else None

        f.indexed_asset_id = await _register_once(
            state, asset_id, f"index:{index_id}", index, indexed, still_indexed
        )
    if progress.knowledge_store_id:
        store_id = progress.knowledge_store_id

        async def add() -> str:
            return (await c.knowledge.items.add(store_id, asset_id=asset_id)).id

        async def still_added(ref: str) -> bool:
            return await _found(c.knowledge.items.get(store_id, ref))

        async def added() -> str | None:
            found = await _first(
                lambda n: c.knowledge.items.list(store_id, n, 50), lambda i: i.asset_id == asset_id
            )
            return found.id if found else None

        f.item_id = await _register_once(state, asset.id, f"store:{store_id}", add, added, still_added)


async def _register_once(
    state: AppState,
    asset_id: str,
    destination: str,
    create: Callable[[], Awaitable[str]],
    find: Callable[[], Awaitable[str | None]],
    exists: Callable[[str], Awaitable[bool]],
) -> str:
    """The id of the asset's registration in `destination`: the recorded one while it still exists
    upstream, one a lost answer made (`find`), or a new one (`create`)."""
    ledger = state.ingest
    # One asset reached by two files (or two plans) at once is registered by the first, found by the second.
    async with _lock(state, f"{destination}|{asset_id}"):
        # Another process registering it right now is waited for; its result is then found, not repeated.
        while True:
            claimed = ledger.claim_registration(asset_id, destination, _RUNNER, LEASE_S, _alive)
            if claimed is not None:
                break
            await anyio.sleep(_HELD_POLL_S)
        attempted, ref = claimed
        try:
            if ref and await exists(ref):
                return ref
            if attempted and not ref and (found := await find()) is not None:
                ledger.record_registration(asset_id, destination, found)
                return found
            ledger.intend_registration(asset_id, destination)
            ref = await create()
            ledger.record_registration(asset_id, destination, ref)
            return ref
        finally:
            ledger.release_registration(asset_id, destination, _RUNNER)


def _lock(state: AppState, key: str) -> anyio.Lock:
    """This process's lock for `key`, kept while some file holds or awaits it."""
    lock = state.ingest_locks.get(key)
    if lock is None:
        lock = state.ingest_locks[key] = anyio.Lock()
    return lock


TOOLS: list[ToolSpec] = [bulk_ingest]
