"""Working a bulk ingest's plan (`tools/bulk.py`): each file uploaded at most once per content and
registered at most once per destination (across processes too: each is claimed by one at a time),
`concurrency` at a time.

Uploads are idempotent by content: every asset carries its content key (a SHA-256 of the file, or of
the URL) in `user_metadata`, and the ledger maps keys to assets, so content the backend already has is
reused. An upload the ledger only intended (the process died while sending it) is looked up upstream by
that key before anything is sent again; index and knowledge-store registrations are reconciled the same
way.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from tl_mcp.api import Page
from tl_mcp.api.errors import APIStatusError, NotFoundError, TwelveLabsError
from tl_mcp.redaction import display_url
from tl_mcp.server.bulk_plan import LEASE_S, RUNNER, alive
from tl_mcp.server.errors import explain
from tl_mcp.server.files import LocalFile
from tl_mcp.server.ingest_ledger import Plan, PlanFile
from tl_mcp.server.jobs.job import Job
from tl_mcp.server.state import AppState

#: The `user_metadata` key every bulk-ingested asset carries: its content key, found again after a crash.
#: The `user_metadata` key every bulk-ingested asset carries: its content key, found again after a crash.
CONTENT_TAG = "tl_mcp_content"
#: How often a file another process is uploading right now is looked at again.
_HELD_POLL_S = 0.5
#: Reconciling a lost upload or store item looks through at most this many pages of 50.
_SCAN_PAGES = 20
#: Files at least this big get byte progress notes while they upload, not only one when done.
_BYTE_NOTES_FROM = 8 * 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a plan's files come from (a folder, else each source is a URL) and go to."""

    folder: str | None
    index_id: str | None
    knowledge_store_id: str | None


class _Skip(Exception):
    """The file is not one the server may send (the file policy refused it, or it is empty)."""


async def run_plan(state: AppState, job: Job, plan: Plan, target: Target, concurrency: int) -> None:
    """Ingest every file of the plan not done yet, `concurrency` at a time, keeping the claims alive."""
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
            await _ingest_one(state, target, f, note)
            state.ingest.update_file(plan.plan_id, f)
            finished += 1
            said = f"{finished}/{total} {display_url(f.source)}: {f.status}"
            job.emit_note(
                said + (f" ({f.detail})" if f.detail else ""), progress=float(finished), total=float(total)
            )

    async def keep_claim() -> None:
        while True:
            await anyio.sleep(LEASE_S / 3)
            state.ingest.renew_plan(plan.plan_id, RUNNER, LEASE_S)
            state.ingest.renew_uploads(RUNNER, LEASE_S)

    async with anyio.create_task_group() as outer:
        outer.start_soon(keep_claim)
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        outer.cancel_scope.cancel()


async def _ingest_one(
    state: AppState,
    target: Target,
    f: PlanFile,
    note: Callable[[str], None],
) -> None:
    """Upload one file (or reuse the asset of its content) and register it; its outcome goes into `f`."""
    f.detail = None
    try:
        if target.folder is not None:
            asset_id, fresh = await _send_file(state, target.folder, f.source, note)
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
        if target.index_id or target.knowledge_store_id:
            await _register(state, target, f)
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
            if ledger.claim_upload(key, name, RUNNER, LEASE_S, alive) is None:
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
                ledger.release_upload(key, RUNNER)
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


async def _register(state: AppState, target: Target, f: PlanFile) -> None:
    """Index the file's asset and/or add it to the store, each at most once (reconciled after a crash)."""
    c, asset_id = state.client, f.asset_id
    assert asset_id
    asset = await c.assets.wait_ready(asset_id)
    if target.index_id:
        index_id = target.index_id

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
    if target.knowledge_store_id:
        store_id = target.knowledge_store_id

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
            claimed = ledger.claim_registration(asset_id, destination, RUNNER, LEASE_S, alive)
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
            ledger.release_registration(asset_id, destination, RUNNER)


def _lock(state: AppState, key: str) -> anyio.Lock:
    """This process's lock for `key`, kept while some file holds or awaits it."""
    lock = state.ingest_locks.get(key)
    if lock is None:
        lock = state.ingest_locks[key] = anyio.Lock()
    return lock
