"""Streaming a Jockey answer through MCP: `create_response` (in-process and over stdio) against the raw
`/responses` SSE stream read with bare httpx2 (the baseline), on one standalone sandbox.

Measured per path: time to the first text (first progress notification / first SSE delta), total time,
how many notifications carried the text against how many deltas the stream had (the relay merges deltas
that arrive within `COALESCE_S`), and whether the notification messages joined equal the final text.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx2
from mcp import Client

from bench.mcp_harness import (
    Sandbox,
    call_ok,
    load_average,
    sandbox_process,
    seed_library,
    settings_for,
    stdio_transport,
    summary,
    workdir,
)
from tl_mcp.server import build_server
from tl_mcp.server.jobs.relay import COALESCE_S

QUESTION = "Summarize the video scene by scene: what is shown and what do the captions say?"
#: The relay holds the first delta up to COALESCE_S on purpose; allow that plus transport slack.
TARGET_FIRST_OVERHEAD_MS = COALESCE_S * 1000 + 50.0
#: Once the answer is complete the relay flushes at once, so the whole call costs little more than the stream.
TARGET_TOTAL_OVERHEAD_MS = 25.0


def _final_text(response: dict[str, Any]) -> str:
    return "".join(
        part.get("text", "")
        for item in response.get("output", [])
        if item.get("type") == "message"
        for part in item.get("content", [])
        if part.get("type") == "output_text"
    )


async def raw_stream(http: httpx2.AsyncClient, sb: Sandbox, store_id: str) -> dict[str, Any]:
    body = {
        "knowledge_store_id": store_id,
        "input": [{"type": "message", "role": "user", "content": QUESTION}],
        "stream": True,
    }
    headers = {"x-api-key": sb.api_key, "accept": "text/event-stream"}
    deltas: list[str] = []
    first: float | None = None
    final: str | None = None
    started = time.perf_counter()
    async with http.stream("POST", f"{sb.base_url}/responses", json=body, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if event.get("type") == "response.output_text.delta":
                first = first if first is not None else time.perf_counter()
                deltas.append(event.get("delta", ""))
            elif event.get("type") == "response.completed":
                final = _final_text(event.get("response", {}))
    total = time.perf_counter() - started
    if first is None or final is None:
        raise RuntimeError("the /responses stream had no text delta or no response.completed event")
    return {
        "first_ms": (first - started) * 1000,
        "total_ms": total * 1000,
        "pieces": len(deltas),
        "joined_equals_final": "".join(deltas) == final,
        "chars": len(final),
    }


async def mcp_stream(client: Client, store_id: str) -> dict[str, Any]:
    texts: list[str] = []
    first: float | None = None
    last_text_progress = 0.0

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        # Text notifications carry progress == characters so far (see tl_mcp.server.jobs.relay); notes and
        # heartbeats only nudge progress up by a fraction, so they never match this rule.
        nonlocal first, last_text_progress
        if message and progress == last_text_progress + len(message):
            first = first if first is not None else time.perf_counter()
            texts.append(message)
            last_text_progress = progress

    started = time.perf_counter()
    answer = await call_ok(
        client,
        "create_response",
        {"knowledge_store_id": store_id, "input": QUESTION, "wait_s": 120},
        progress_callback=on_progress,
    )
    total = time.perf_counter() - started
    if answer.get("status") != "completed" or first is None:
        raise RuntimeError(f"create_response did not stream a completed answer: {str(answer)[:300]}")
    return {
        "first_ms": (first - started) * 1000,
        "total_ms": total * 1000,
        "pieces": len(texts),
        "joined_equals_final": "".join(texts) == answer["text"],
        "chars": len(answer["text"]),
    }


async def _measure(rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "inproc": [], "stdio": []}
    with workdir() as root, sandbox_process(root) as sb:
        media = root / "media"
        media.mkdir()
        with anyio.fail_after(120 + 30 * rounds):
            async with (
                httpx2.AsyncClient(timeout=httpx2.Timeout(60.0)) as http,
                Client(build_server(settings_for(sb, root / "state", media))) as inproc,
                Client(stdio_transport(sb, root / "state-stdio", media)) as stdio,
            ):
                seed = await seed_library(inproc, media)
                store = seed.knowledge_store_id
                # One unmeasured turn per path warms connections, imports and the sandbox's caches.
                await raw_stream(http, sb, store)
                await mcp_stream(inproc, store)
                await mcp_stream(stdio, store)
                for _ in range(rounds):
                    runs["baseline"].append(await raw_stream(http, sb, store))
                    runs["inproc"].append(await mcp_stream(inproc, store))
                    runs["stdio"].append(await mcp_stream(stdio, store))
    out: dict[str, Any] = {"rounds": rounds, "coalesce_s": COALESCE_S}
    for name, results in runs.items():
        out[name] = {
            "first": summary([r["first_ms"] for r in results]),
            "total": summary([r["total_ms"] for r in results]),
            "pieces_mean": sum(r["pieces"] for r in results) / len(results),
            "chars_mean": sum(r["chars"] for r in results) / len(results),
            "joined_equals_final": all(r["joined_equals_final"] for r in results),
        }
    base = out["baseline"]
    for name in ("inproc", "stdio"):
        path = out[name]
        path["first_overhead_p50_ms"] = path["first"]["p50_ms"] - base["first"]["p50_ms"]
        path["total_overhead_p50_ms"] = path["total"]["p50_ms"] - base["total"]["p50_ms"]
        path["total_ratio_p50"] = path["total"]["p50_ms"] / base["total"]["p50_ms"]
        path["coalescing_ratio"] = base["pieces_mean"] / max(path["pieces_mean"], 1e-9)
    out["targets"] = {
        "first_overhead_p50_ms": TARGET_FIRST_OVERHEAD_MS,
        "total_overhead_p50_ms": TARGET_TOTAL_OVERHEAD_MS,
        "joined_equals_final": True,
    }
    out["met"] = all(
        out[n]["first_overhead_p50_ms"] < TARGET_FIRST_OVERHEAD_MS
        and out[n]["total_overhead_p50_ms"] < TARGET_TOTAL_OVERHEAD_MS
        and out[n]["joined_equals_final"]
        for n in ("inproc", "stdio")
    ) and bool(base["joined_equals_final"])
    out["load_average"] = load_average()
    return out


def run(*, rounds: int = 10) -> dict[str, Any]:
    return anyio.run(_measure, rounds)
