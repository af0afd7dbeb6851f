"""Memory and speed of `upload_asset` on a large file through a real `tl-mcp serve` (stdio).

Peak RSS of the server process during the upload is compared with its RSS at rest just before (baseline):
streaming from disk should keep growth constant, whatever the file size. Throughput is compared with a
raw httpx2 upload of the same file to the same standalone sandbox using the same multipart-session
protocol (the file is above the client's multipart threshold), read from disk in 1 MiB pieces.

The file is sparse and all zeros, so the sandbox cannot probe it as media: that only affects what happens
after the bytes arrived, which is not measured here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client

from bench.mcp_harness import Sandbox, call_ok, load_average, sandbox_process, stdio_transport, workdir
from tl_mcp.api.resources.assets import DEFAULT_MULTIPART_THRESHOLD

MIB = 1024 * 1024
TARGET_GROWTH_MIB = 64.0
#: MCP throughput must stay within this fraction of the raw upload's.
TARGET_THROUGHPUT_RATIO = 0.8
_READ = MIB


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _server_pid(timeout_s: float = 10.0) -> int:
    """The `tl-mcp serve` child this process spawned (the stdio client does not expose it)."""
    me = os.getpid()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me and b"serve" in argv and any(a.endswith(b"tl-mcp") for a in argv):
                return int(entry)
        time.sleep(0.05)
    raise RuntimeError("could not find the tl-mcp serve subprocess")


class _Sampler:
    """Polls a process's RSS on a thread (the event loop is busy driving the upload)."""

    def __init__(self, pid: int, every_s: float = 0.01) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, _rss_kib(self.pid))
                self.samples += 1
            except OSError:
                return
            self._stop.wait(self.every_s)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _make_sparse(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)


async def _file_pieces(path: Path, offset: int, length: int) -> AsyncIterator[bytes]:
    # Plain blocking reads: a 1 MiB read from the page cache is far shorter than a thread hop, and the
    # baseline should be the cheapest reasonable way to stream a file.
    with path.open("rb") as f:
        f.seek(offset)
        left = length
        while left:
            piece = f.read(min(_READ, left))
            if not piece:
                raise RuntimeError(f"{path} ended early")
            left -= len(piece)
            yield piece


async def raw_upload(sb: Sandbox, path: Path, size: int) -> str:
    """The multipart-session protocol with bare httpx2: create, PUT each part streamed, report it."""
    headers = {"x-api-key": sb.api_key}
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(120.0)) as http:
        r = await http.post(
            f"{sb.base_url}/assets/multipart-uploads",
            json={"filename": path.name, "type": "video", "total_size": size},
            headers=headers,
        )
        r.raise_for_status()
        session = r.json()
        urls = {u["chunk_index"]: u["url"] for u in session["upload_urls"]}
        chunk, total = int(session["chunk_size"]), int(session["total_chunks"])
        for index in range(1, total + 1):
            if index not in urls:
                more = await http.post(
                    f"{sb.base_url}/assets/multipart-uploads/{session['upload_id']}/presigned-urls",
                    json={"start": index, "count": 50},
                    headers=headers,
                )
                more.raise_for_status()
                urls.update({u["chunk_index"]: u["url"] for u in more.json()["upload_urls"]})
            offset = (index - 1) * chunk
            length = min(chunk, size - offset)
            put = await http.put(
                urls[index],
                content=_file_pieces(path, offset, length),
                headers={"content-length": str(length)},
            )
            put.raise_for_status()
            report = await http.post(
                f"{sb.base_url}/assets/multipart-uploads/{session['upload_id']}",
                json={
                    "completed_chunks": [
                        {
                            "chunk_index": index,
                            "proof": put.headers["etag"],
                            "proof_type": "etag",
                            "chunk_size": length,
                        }
                    ]
                },
                headers=headers,
            )
            report.raise_for_status()
        return str(session["asset_id"])


async def _measure(size: int) -> dict[str, Any]:
    if size <= DEFAULT_MULTIPART_THRESHOLD:
        raise ValueError(
            f"the file must be larger than the multipart threshold ({DEFAULT_MULTIPART_THRESHOLD} bytes)"
        )
    with workdir() as root, sandbox_process(root) as sb:
        media = root / "media"
        media.mkdir()
        big = media / "big.mp4"
        _make_sparse(big, size)
        with anyio.fail_after(60 + size / MIB):
            # The baseline runs before and after the MCP upload and its faster run counts, so a warm-up or
            # a load spike cannot flatter the MCP path.
            raw_runs: list[float] = []
            started = time.perf_counter()
            raw_asset = await raw_upload(sb, big, size)
            raw_runs.append(time.perf_counter() - started)
            async with Client(stdio_transport(sb, root / "state", media)) as c:
                pid = await anyio.to_thread.run_sync(_server_pid)
                # One real call first, so the at-rest RSS includes the warmed-up client and tool code.
                await call_ok(c, "list_indexes", {})
                rest_kib = _rss_kib(pid)
                hwm_before_kib = _rss_kib(pid, "VmHWM")
                notes = 0

                async def on_progress(p: float, total: float | None, message: str | None) -> None:
                    nonlocal notes
                    notes += 1

                with _Sampler(pid) as sampler:
                    started = time.perf_counter()
                    up = await call_ok(
                        c, "upload_asset", {"path": str(big), "wait_s": 300}, progress_callback=on_progress
                    )
                    while up.get("status") == "in_progress":
                        waited = await call_ok(
                            c,
                            "wait_for_task",
                            {"id": up["job_id"], "wait_s": 300},
                            progress_callback=on_progress,
                        )
                        up = waited["result"] or {}
                    mcp_s = time.perf_counter() - started
                hwm_after_kib = _rss_kib(pid, "VmHWM")
            started = time.perf_counter()
            await raw_upload(sb, big, size)
            raw_runs.append(time.perf_counter() - started)
            raw_s = min(raw_runs)
    if up.get("status") != "completed" or not up.get("asset_id"):
        raise RuntimeError(f"upload_asset did not complete: {up}")
    peak_kib = max(sampler.peak_kib, hwm_after_kib if hwm_after_kib > hwm_before_kib else 0)
    mib = size / MIB
    result: dict[str, Any] = {
        "file_mib": mib,
        "rss_at_rest_mib": rest_kib / 1024,
        "peak_rss_mib": peak_kib / 1024,
        "rss_growth_mib": (peak_kib - rest_kib) / 1024,
        "rss_samples": sampler.samples,
        "hwm_rose": hwm_after_kib > hwm_before_kib,
        "progress_notifications": notes,
        "mcp_s": mcp_s,
        "raw_s": raw_s,
        "raw_runs_s": raw_runs,
        "mcp_mib_s": mib / mcp_s,
        "raw_mib_s": mib / raw_s,
        "throughput_ratio": raw_s / mcp_s,
        "asset_ids": [raw_asset, up["asset_id"]],
        "targets": {"rss_growth_mib": TARGET_GROWTH_MIB, "throughput_ratio": TARGET_THROUGHPUT_RATIO},
        "load_average": load_average(),
    }
    result["met"] = (
        result["rss_growth_mib"] < TARGET_GROWTH_MIB and result["throughput_ratio"] >= TARGET_THROUGHPUT_RATIO
    )
    return result


def run(*, size_mib: int = 1024) -> dict[str, Any]:
    return anyio.run(_measure, size_mib * MIB)
