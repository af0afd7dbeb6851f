"""What the MCP layer adds to a call: `search_videos` and `list_indexes` through an in-process MCP client and
through a real `tl-mcp serve` over stdio, against the same operation on `TwelveLabsClient` (the baseline).

All three reach one standalone sandbox. Calls are interleaved round-robin (baseline, in-process, stdio,
then the next round), so drift in machine load hits every path alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import Client

from bench.mcp_harness import (
    call_ok,
    load_average,
    sandbox_process,
    seed_library,
    settings_for,
    stdio_transport,
    summary,
    workdir,
)
from tl_mcp.api import TwelveLabsClient
from tl_mcp.server import build_server

QUERY = "ocean waves chapter three"
TARGET_INPROC_MS = 5.0
TARGET_STDIO_MS = 15.0
Op = Callable[[], Awaitable[object]]


async def _rounds(
    paths: dict[str, Op], *, budget_s: float, min_runs: int, max_runs: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in paths}
    deadline = time.perf_counter() + budget_s
    runs = 0
    while runs < max_runs and (runs < min_runs or time.perf_counter() < deadline):
        for name, op in paths.items():
            started = time.perf_counter()
            await op()
            times[name].append((time.perf_counter() - started) * 1000)
        runs += 1
    return times


async def _measure(quick: bool) -> dict[str, Any]:
    budget_s = 0.5 if quick else 20.0
    min_runs, max_runs, warmup = (15, 200, 3) if quick else (200, 5000, 20)
    with workdir() as root, sandbox_process(root) as sb:
        media = root / "media"
        media.mkdir()
        settings = settings_for(sb, root / "state", media)
        with anyio.fail_after(300 if not quick else 120):
            async with (
                TwelveLabsClient(sb.api_key, sb.base_url) as api,
                Client(build_server(settings)) as inproc,
                Client(stdio_transport(sb, root / "state-stdio", media)) as stdio,
            ):
                seed = await seed_library(inproc, media)
                search_args = {"query": QUERY, "index_id": seed.index_id, "limit": 10}

                async def base_search() -> object:
                    return await api.search.query(
                        seed.index_id,
                        query_text=QUERY,
                        search_options=("visual", "audio"),
                        group_by="clip",
                        page_limit=10,
                    )

                async def base_list() -> object:
                    return await api.indexes.list(page=1, page_limit=20)

                def tool(client: Client, name: str, args: dict[str, Any]) -> Op:
                    async def op() -> object:
                        return await call_ok(client, name, args)

                    return op

                found = await call_ok(inproc, "search_videos", search_args)
                if not found["moments"]:
                    raise RuntimeError("the seeded index returned no moments; the search bench needs some")
                out: dict[str, Any] = {"moments": len(found["moments"])}
                for op_name, base, tool_name, args in (
                    ("search_videos", base_search, "search_videos", search_args),
                    ("list_indexes", base_list, "list_indexes", {}),
                ):
                    paths = {
                        "baseline": base,
                        "inproc": tool(inproc, tool_name, args),
                        "stdio": tool(stdio, tool_name, args),
                    }
                    await _rounds(paths, budget_s=0, min_runs=warmup, max_runs=warmup)
                    times = await _rounds(paths, budget_s=budget_s, min_runs=min_runs, max_runs=max_runs)
                    stats = {name: summary(values) for name, values in times.items()}
                    b50 = stats["baseline"]["p50_ms"]
                    for name in ("inproc", "stdio"):
                        stats[name]["overhead_p50_ms"] = stats[name]["p50_ms"] - b50
                        stats[name]["overhead_p95_ms"] = stats[name]["p95_ms"] - stats["baseline"]["p95_ms"]
                        stats[name]["ratio_p50"] = stats[name]["p50_ms"] / b50
                    out[op_name] = stats
    out["targets"] = {"inproc_overhead_p50_ms": TARGET_INPROC_MS, "stdio_overhead_p50_ms": TARGET_STDIO_MS}
    out["met"] = all(
        out[op]["inproc"]["overhead_p50_ms"] < TARGET_INPROC_MS
        and out[op]["stdio"]["overhead_p50_ms"] < TARGET_STDIO_MS
        for op in ("search_videos", "list_indexes")
    )
    out["load_average"] = load_average()
    return out


def run(*, quick: bool = False) -> dict[str, Any]:
    return anyio.run(_measure, quick)
