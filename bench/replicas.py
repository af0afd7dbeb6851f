"""The deployment topology (`deploy/`): HAProxy in front of 3 `tl-mcp serve` replicas sharing Redis,
against one sandbox process.

- Throughput: 32 clients (a token each) calling the same cheap tool as `hosting.py` through HAProxy,
  against one replica reached directly in the same run (the baseline).
- Relay: a finished Jockey job is read with `wait_for_task` on the replica that ran it and on another
  one (which relays it from Redis), alternating; the added p50 is the cost of the relay.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.hosting import CLIENTS, _clean_env, _http_server, _listening, _load, _merged
from bench.mcp_harness import TL_MCP, call_ok, free_port, load_average, percentile, sandbox_process, workdir
from bench.mcp_harness import seed_library as seed

TARGET_RELAY_P50_MS = 20.0
HAPROXY_CFG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy.cfg"
STATE_KEYS = "bench-state-key-" + "s" * 32


@contextmanager
def _redis(root: Path) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with (root / "redis.log").open("wb") as log:
        proc = subprocess.Popen([*args, "--dir", str(root)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while not _listening(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not come up; see {root / 'redis.log'}")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


@asynccontextmanager
async def _haproxy(root: Path, ports: list[int]) -> AsyncIterator[str]:
    exe = shutil.which("haproxy")
    if exe is None:
        raise RuntimeError("haproxy is not installed (apt-get install haproxy; .ci/run does)")
    port = free_port()
    env = {
        "LB_LISTEN": f"127.0.0.1:{port}",
        **{f"LB_REPLICA{i + 1}": f"127.0.0.1:{p}" for i, p in enumerate(ports)},
    }
    async with _http_server([exe, "-db", "-f", str(HAPROXY_CFG)], env, port, root / "haproxy.log"):
        url = f"http://127.0.0.1:{port}"
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        async with httpx2.AsyncClient() as http:
            # Measured once HAProxy routes to every replica (it checks each one every second).
            while len(seen) < len(ports):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy reached only {sorted(seen)}; see {root / 'haproxy.log'}")
                answer = await http.get(f"{url}/healthz")
                if answer.status_code == 200:
                    seen.add(answer.headers.get("x-tl-mcp-replica", ""))
                await anyio.sleep(0.05)
        yield url


@asynccontextmanager
async def _client(url: str, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with http, Client(streamable_http_client(url, http_client=http)) as c:
        yield c


async def _measure(quick: bool) -> dict[str, Any]:
    tokens = [f"bench-token-{i:02d}-" + "x" * 16 for i in range(CLIENTS)]
    rounds, calls_each, reads = (1, 2, 5) if quick else (3, 25, 60)
    with workdir() as root, sandbox_process(root) as sb, _redis(root) as redis_url:
        media = root / "media"
        media.mkdir()
        env = {
            **_clean_env(),
            "TWELVELABS_API_KEY": sb.api_key,
            "TWELVELABS_BASE_URL": sb.base_url,
            "TL_MCP_BACKEND": "sandbox",
            "TL_MCP_TRANSPORT": "http",
            "TL_MCP_AUTH_TOKENS": ",".join(tokens),
            "TL_MCP_STATE_KEYS": STATE_KEYS,
            "TL_MCP_REDIS_URL": redis_url,
            "TL_MCP_ALLOWED_DIRS": str(media),
            "TL_MCP_LOG_LEVEL": "WARNING",
        }
        ports = [free_port() for _ in range(3)]
        async with AsyncExitStack() as stack:
            pids = []
            for i, port in enumerate(ports):
                replica_env = {**env, "TL_MCP_PORT": str(port), "TL_MCP_SANDBOX_DIR": str(root / f"state{i}")}
                pids.append(
                    await stack.enter_async_context(
                        _http_server([str(TL_MCP), "serve"], replica_env, port, root / f"replica{i}.log")
                    )
                )
            lb = await stack.enter_async_context(_haproxy(root, ports))

            async def cheap(c: Client) -> None:
                result = await c.call_tool("wait_for_task", {"id": "job_bench.nope", "wait_s": 0})
                assert result.is_error

            runs: dict[str, list[dict[str, Any]]] = {"direct": [], "haproxy": []}
            for _ in range(rounds):
                direct = f"http://127.0.0.1:{ports[0]}/mcp"
                runs["direct"].append(await _load(direct, list(tokens), cheap, calls_each, pids[0]))
                runs["haproxy"].append(await _load(f"{lb}/mcp", list(tokens), cheap, calls_each, pids[0]))
            one, three = _merged(runs["direct"]), _merged(runs["haproxy"])
            # Measured on the first replica only, which serves a third of HAProxy's calls.
            for key in ("server_cpu_ms_per_call", "rss_per_idle_session_kib"):
                three.pop(key)

            first, second = (f"http://127.0.0.1:{p}/mcp" for p in ports[:2])
            async with _client(first, tokens[0]) as here, _client(second, tokens[0]) as there:
                library = await seed(here, media)
                started = await call_ok(
                    here,
                    "create_response",
                    {"knowledge_store_id": library.knowledge_store_id, "input": "Summarize.", "wait_s": 0},
                )
                job = started["job_id"]
                done = await call_ok(here, "wait_for_task", {"id": job, "wait_s": 60})
                assert done["status"] == "completed", done
                times: dict[str, list[float]] = {"local": [], "relayed": []}
                for _ in range(reads):
                    for name, c in (("local", here), ("relayed", there)):
                        t = time.perf_counter()
                        got = await call_ok(c, "wait_for_task", {"id": job, "wait_s": 0})
                        times[name].append((time.perf_counter() - t) * 1000)
                        assert got["status"] == "completed", (name, got)
        local, relayed = percentile(times["local"], 0.5), percentile(times["relayed"], 0.5)
    added = relayed - local
    ratio = three["calls_per_s"] / one["calls_per_s"]
    return {
        "replicas": 3,
        "clients": CLIENTS,
        "direct_one_replica": one,
        "haproxy_three_replicas": three,
        "throughput_ratio": round(ratio, 2),
        "relay": {
            "reads": reads,
            "local_p50_ms": round(local, 2),
            "relayed_p50_ms": round(relayed, 2),
            "added_p50_ms": round(added, 2),
            "target_ms": TARGET_RELAY_P50_MS,
        },
        "met": added <= TARGET_RELAY_P50_MS,
        "load_average": load_average(),
    }


def run(quick: bool = False) -> dict[str, Any]:
    if not TL_MCP.exists():
        raise RuntimeError(f"{TL_MCP} is missing: install the package first (pip install -e .)")
    return anyio.run(_measure, quick)
