"""Shared plumbing for the MCP-layer benchmarks: a standalone sandbox process, a seeded library, timing.

The sandbox runs as its own process (``python -m tl_mcp.sandbox``) so its request handling never shares
a GIL or an event loop with what is being measured; the baseline client, the in-process MCP server and
the ``tl-mcp serve`` subprocess all reach the very same sandbox over loopback.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from tl_mcp.config import Settings

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
TL_MCP = Path(sys.executable).with_name("tl-mcp")


def free_port() -> int:
    """A loopback port free right now (the sandbox binds it a moment later; a clash fails loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Sandbox:
    base_url: str
    api_key: str
    data_dir: Path
    pid: int


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)


@contextmanager
def sandbox_process(root: Path, **env_extra: str) -> Iterator[Sandbox]:
    """`python -m tl_mcp.sandbox` on a free port with analyzers off (ingest is not what is measured)."""
    key = f"tlk_bench_{secrets.token_hex(12)}"
    port = free_port()
    data_dir = root / "sandbox-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update({"TL_MCP_SANDBOX_API_KEYS": key, "TL_MCP_SANDBOX_ANALYZERS": "none", **env_extra})
    log = (root / "sandbox.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tl_mcp.sandbox", "--port", str(port), "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}/v1.3"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {proc.returncode}; see {root / 'sandbox.log'}")
            try:
                if httpx2.get(f"{base_url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not answer within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield Sandbox(base_url, key, data_dir, proc.pid)
    finally:
        _stop(proc)
        log.close()


def server_env(sb: Sandbox, state_dir: Path, media: Path) -> dict[str, str]:
    """Environment for a `tl-mcp serve` (or Settings) that talks to `sb` like any remote API."""
    return {
        "TWELVELABS_API_KEY": sb.api_key,
        "TWELVELABS_BASE_URL": sb.base_url,
        "TL_MCP_BACKEND": "sandbox",
        "TL_MCP_SANDBOX_DIR": str(state_dir / "sandbox"),
        "TL_MCP_ALLOWED_DIRS": str(media),
        "TL_MCP_LOG_LEVEL": "WARNING",
    }


def settings_for(sb: Sandbox, state_dir: Path, media: Path) -> Settings:
    return Settings.from_sources(env=server_env(sb, state_dir, media))


def _open_log(state_dir: Path) -> TextIO:
    state_dir.mkdir(parents=True, exist_ok=True)
    return (state_dir / "serve.log").open("w", encoding="utf-8")


@asynccontextmanager
async def stdio_transport(sb: Sandbox, state_dir: Path, media: Path) -> AsyncIterator[Any]:
    """A real `tl-mcp serve` subprocess over stdio; its stderr goes to a log file beside its state.

    The log file is explicit because the SDK's default (sys.stderr, bound at import) may be a closed
    capture buffer under pytest.
    """
    if not TL_MCP.exists():
        raise RuntimeError(f"{TL_MCP} is missing: install the package first (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update(server_env(sb, state_dir, media))
    params = StdioServerParameters(command=str(TL_MCP), args=["serve"], env=env)
    with _open_log(state_dir) as log:
        async with stdio_client(params, errlog=log) as streams:
            yield streams


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def call_ok(client: Client, name: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result = await client.call_tool(name, args, **kw)
    if result.is_error or not isinstance(result.structured_content, dict):
        raise RuntimeError(f"{name} failed: {text_of(result)[:500]}")
    return result.structured_content


@dataclass(frozen=True)
class Seed:
    media: Path
    index_id: str
    knowledge_store_id: str


def sample_video(media: Path) -> Path:
    """The project's sample clip (scenes with text, subtitles), made once per media folder."""
    from tl_mcp.samples import make_sample_video

    path = media / "clip.mp4"
    if not path.exists():
        make_sample_video(path, speech=False)
    return path


async def seed_library(client: Client, media: Path) -> Seed:
    """An index and a knowledge store holding the sample clip, ready to search and ask about."""
    clip = sample_video(media)
    index = await call_ok(client, "create_index", {"name": "bench"})
    store = await call_ok(client, "create_knowledge_store", {"name": "bench"})
    up = await call_ok(
        client,
        "upload_asset",
        {
            "path": str(clip),
            "index_id": index["id"],
            "knowledge_store_id": store["id"],
            "wait": True,
            "wait_s": 120,
        },
    )
    if up.get("status") != "completed":
        raise RuntimeError(f"seeding did not finish: {up}")
    return Seed(media, index["id"], store["id"])


@contextmanager
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tl-mcp-bench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "runs": len(values_ms),
        "p50_ms": statistics.median(values_ms),
        "p95_ms": percentile(values_ms, 0.95),
        "min_ms": min(values_ms),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
