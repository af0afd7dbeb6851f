"""A bulk ingest's plan (`tools/bulk.py`): which files a call takes, the plan that names them in the
ingest ledger (`server/ingest_ledger.py`), and which process may work it.

The same call by the same principal names the same plan, so calling again after a restart resumes it;
a process claims a plan with a lease it renews, and a claim whose process is gone ends early.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import json
import os
import secrets
import socket
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from tl_mcp.redaction import display_url
from tl_mcp.server.ingest_ledger import Plan, PlanFile
from tl_mcp.server.state import AppState

MAX_FILES = 1000
#: How long a process's claim (on a plan, an upload or a registration) lasts without renewal; a dead
#: process's claim ends sooner when it ran on this host (its pid is gone).
LEASE_S = 60.0
#: How long one URL's host may take to resolve for the private-address check.
_RESOLVE_S = 5.0
_HOST = socket.gethostname()
#: This process, as the holder of claims: host, pid and a token (a pid can be reused).
RUNNER = f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def alive(runner: str) -> bool:
    """Whether the process holding a claim may still run: on another host we cannot tell (its lease
    decides), on this one its pid must exist and not be this process under another token."""
    host, _, rest = runner.partition(":")
    pid, _, _token = rest.partition(":")
    if host != _HOST or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return runner == RUNNER
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


def resumable(
    state: AppState, owner: str, spec: dict[str, object], index_id: str | None, store_id: str | None
) -> Plan | None:
    """The unfinished plan this call names, if a previous call (in any process) left one."""
    plan = state.ingest.plan(_plan_id(owner, spec, index_id, store_id))
    return plan if plan is not None and not plan.finished and plan.owner == owner else None


def new_plan(
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


class Globs:
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


async def refuse_private(urls: Sequence[str]) -> None:
    """A URL whose host is (or resolves to) a private, loopback or link-local address is refused, all of
    the list with it: TwelveLabs cannot fetch those, and a sandbox must not fetch its own network. A host
    that does not resolve here (in time) is left to the backend, which says so per file."""
    hosts: dict[tuple[str, int], str] = {}
    for url in urls:
        shown = display_url(url)[:200]
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ToolError(f"bulk_ingest refused: {shown!r} is not a valid URL ({exc}).") from None
        if not host:
            raise ToolError(f"bulk_ingest refused: {shown!r} has no host.")
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
                    f"bulk_ingest refused: {display_url(url)[:200]!r} points at {ip}, a private, loopback or "
                    "otherwise non-public address. Only public URLs can be fetched; upload local files with "
                    "folder=… instead. Nothing was uploaded."
                )
