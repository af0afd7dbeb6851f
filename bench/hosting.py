"""Hosting many agents: start-up to the first `tools/list`, and streamable HTTP throughput with 32
concurrent clients, each against a bare `MCPServer` measured in the same run (the baseline).

- Start-up: a real `tl-mcp serve` over stdio (pointed at an API URL, so no embedded sandbox starts;
  nothing measured here reaches it) vs a bare `MCPServer` hello world, from spawning the process to
  the answer of `tools/list`, both from compiled bytecode (as installed). Runs alternate after an untimed
  warm-up round, and the medians are compared.
- Throughput: `tl-mcp serve --transport http` with one bearer token per client (32 clients of one token
  would meet the per-token limits, which is their point) vs a bare `MCPServer` with one cheap tool,
  both over loopback. tl-mcp's cheapest call is `wait_for_task` of a job id that is not this server's:
  answered locally (limits, metrics and id checks included), never upstream. p99 is reported, and the
  RSS each idle session adds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from bench.mcp_harness import (
    TL_MCP,
    free_port,
    load_average,
    percentile,
    workdir,
)

TARGET_STARTUP_RATIO = 1.5
TARGET_THROUGHPUT_RATIO = 0.9
CLIENTS = 32
BARE = '''
import sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
def ping(text: str = "") -> str:
    """Answer at once."""
    return "pong " + text


if sys.argv[1] == "stdio":
    server.run()
else:
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), json_response=False)
'''


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}


async def _first_listing(params: StdioServerParameters, log: Path) -> float:
    started = time.perf_counter()
    with log.open("a", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as c:
            tools = await c.list_tools()
    assert tools.tools, "a server with no tools"
    return time.perf_counter() - started


async def _startup(root: Path, sb_env: dict[str, str], rounds: int) -> dict[str, Any]:
    # An installed package starts from its compiled bytecode (pip writes it): so do both sides here, even
    # from a source checkout or with PYTHONDONTWRITEBYTECODE set, which would compile tl_mcp's modules on
    # every start and the SDK's (already compiled in site-packages) never. The untimed first round writes it.
    env = {k: v for k, v in _clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    bare = StdioServerParameters(command=sys.executable, args=[str(root / "bare.py"), "stdio"], env=env)
    ours = StdioServerParameters(command=str(TL_MCP), args=["serve"], env={**env, **sb_env})
    await _first_listing(bare, root / "bare.log")
    await _first_listing(ours, root / "serve.log")
    times: dict[str, list[float]] = {"bare": [], "tl_mcp": []}
    for _ in range(rounds):
        times["bare"].append(await _first_listing(bare, root / "bare.log"))
        times["tl_mcp"].append(await _first_listing(ours, root / "serve.log"))
    bare_s, ours_s = percentile(times["bare"], 0.5), percentile(times["tl_mcp"], 0.5)
    ratio = ours_s / bare_s
    return {
        "rounds": rounds,
        "bare_s": round(bare_s, 3),
        "tl_mcp_s": round(ours_s, 3),
        "ratio": round(ratio, 2),
        "target": TARGET_STARTUP_RATIO,
        "met": ratio <= TARGET_STARTUP_RATIO,
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@asynccontextmanager
async def _http_server(argv: list[str], env: dict[str, str], port: int, log: Path) -> AsyncIterator[int]:
    with log.open("ab") as out:
        proc = await anyio.open_process(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"{argv[0]} exited with {proc.returncode}; see {log}")
                if _listening(port):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not listen on {port} within 60 s; see {log}")
                await anyio.sleep(0.05)
            yield proc.pid
        finally:
            proc.terminate()
            with anyio.fail_after(10):
                await proc.wait()


@asynccontextmanager
async def _client(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    async with http, Client(streamable_http_client(url, http_client=http)) as c:
        yield c


async def _load(
    url: str, tokens: list[str | None], call: Callable[[Client], Any], calls_each: int, pid: int
) -> dict[str, Any]:
    latencies: list[float] = []
    opened = anyio.Event()
    go = anyio.Event()
    ready = 0
    before = _rss_kib(pid)
    idle_kib: list[int] = []

    async def one(token: str | None) -> None:
        nonlocal ready
        async with _client(url, token) as c:
            ready += 1
            if ready == len(tokens):
                opened.set()
            await go.wait()
            for _ in range(calls_each):
                started = time.perf_counter()
                await call(c)
                latencies.append((time.perf_counter() - started) * 1000)

    async with anyio.create_task_group() as tg:
        for token in tokens:
            tg.start_soon(one, token)
        await opened.wait()
        await anyio.sleep(0.2)
        idle_kib.append(_rss_kib(pid) - before)
        started, cpu = time.perf_counter(), _cpu_s(pid)
        go.set()
    elapsed = time.perf_counter() - started
    cpu = _cpu_s(pid) - cpu
    return {
        "calls": len(latencies),
        "elapsed_s": elapsed,
        "server_cpu_s": cpu,
        "latencies_ms": latencies,
        "rss_per_idle_session_kib": round(idle_kib[0] / len(tokens), 1),
    }


def _merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds together: calls over time for the rate, every latency for the percentiles."""
    latencies = [ms for run in runs for ms in run.pop("latencies_ms")]
    calls = sum(run["calls"] for run in runs)
    return {
        "rounds": len(runs),
        "calls": calls,
        "calls_per_s": round(calls / sum(run["elapsed_s"] for run in runs), 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        # Where the time goes: the server's own CPU per call (the clients' is the same for both).
        "server_cpu_ms_per_call": round(1000 * sum(run["server_cpu_s"] for run in runs) / calls, 3),
        "rss_per_idle_session_kib": max(run["rss_per_idle_session_kib"] for run in runs),
    }


async def _throughput(root: Path, sb_env: dict[str, str], calls_each: int, rounds: int) -> dict[str, Any]:
    tokens = [f"bench-token-{i:02d}-" + "x" * 16 for i in range(CLIENTS)]
    bare_port, our_port = free_port(), free_port()
    our_env = {
        **_clean_env(),
        **sb_env,
        "TL_MCP_AUTH_TOKENS": ",".join(tokens),
        "TL_MCP_TRANSPORT": "http",
        "TL_MCP_PORT": str(our_port),
    }

    async def ping(c: Client) -> None:
        result = await c.call_tool("ping", {"text": "x"})
        assert not result.is_error

    async def cheap(c: Client) -> None:
        result = await c.call_tool("wait_for_task", {"id": "job_bench.nope", "wait_s": 0})
        assert result.is_error, "a job id that is not this server's is refused"

    bare_argv = [sys.executable, str(root / "bare.py"), "http", str(bare_port)]
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "tl_mcp": []}
    async with (
        _http_server(bare_argv, _clean_env(), bare_port, root / "bare-http.log") as bare_pid,
        _http_server([str(TL_MCP), "serve"], our_env, our_port, root / "serve-http.log") as our_pid,
    ):
        # Rounds alternate, so drift in the machine's load hits both servers alike.
        for _ in range(rounds):
            runs["bare"].append(
                await _load(f"http://127.0.0.1:{bare_port}/mcp", [None] * CLIENTS, ping, calls_each, bare_pid)
            )
            runs["tl_mcp"].append(
                await _load(f"http://127.0.0.1:{our_port}/mcp", list(tokens), cheap, calls_each, our_pid)
            )
    bare, ours = _merged(runs["bare"]), _merged(runs["tl_mcp"])
    ratio = ours["calls_per_s"] / bare["calls_per_s"]
    return {
        "clients": CLIENTS,
        "bare": bare,
        "tl_mcp": ours,
        "ratio": round(ratio, 2),
        "target": TARGET_THROUGHPUT_RATIO,
        "met": ratio >= TARGET_THROUGHPUT_RATIO,
    }


async def _measure(quick: bool) -> dict[str, Any]:
    with workdir() as root:
        (root / "bare.py").write_text(BARE)
        # Nothing measured here reaches the API: a URL where nothing listens makes sure of it.
        sb_env = {
            "TWELVELABS_API_KEY": "tlk_bench_" + "0" * 24,
            "TWELVELABS_BASE_URL": f"http://127.0.0.1:{free_port()}/v1.3",
            "TL_MCP_BACKEND": "sandbox",
            "TL_MCP_SANDBOX_DIR": str(root / "state"),
            "TL_MCP_LOG_LEVEL": "WARNING",
        }
        startup = await _startup(root, sb_env, rounds=1 if quick else 7)
        throughput = await _throughput(root, sb_env, calls_each=2 if quick else 25, rounds=1 if quick else 4)
    return {
        "startup": startup,
        "throughput": throughput,
        "met": startup["met"] and throughput["met"],
        "load_average": load_average(),
    }


def run(quick: bool = False) -> dict[str, Any]:
    if not TL_MCP.exists():
        raise RuntimeError(f"{TL_MCP} is missing: install the package first (pip install -e .)")
    return anyio.run(_measure, quick)
