"""Slow and numerous clients (slowloris) against both HTTP servers as real processes: the MCP server
(`tl-mcp serve --transport http`) and the standalone sandbox (`tl-mcp sandbox`). Each runs with a small
connection cap, a 2 s read timeout and a lowered open-file limit; the attack opens more trickling
connections than either allows, and the health check must keep answering while the log stays quiet."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.e2e.processes import free_port, running
from tl_mcp.http_guard import ConnectionLimits, RateLimitFilter, uvicorn_config

ROOT = Path(__file__).resolve().parents[2]
CAP = 50
READ_TIMEOUT_S = 2.0
NOFILE = 200
#: More slow connections than the cap, and than the open-file limit leaves room for.
ATTACKERS = 150
#: A connection may live this long past its read timeout (loop turns, a loaded machine).
SLACK_S = 3.0
#: Everything the server logged during the attack, at most.
LOG_BUDGET = 20_000

_WITH_NOFILE = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE})); "
    "sys.argv = ['tl-mcp', *sys.argv[1:]]; runpy.run_module('tl_mcp.cli', run_name='__main__')"
)


@dataclass
class Server:
    port: int
    health: str
    headers: dict[str, str]
    log: Path
    body_path: str


@pytest.fixture(scope="module", params=["mcp", "sandbox"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(request.param)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TL_MCP_", "TWELVELABS_"))}
    env |= {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "TL_MCP_SANDBOX_ANALYZERS": "none"}
    args = [sys.executable, "-c", _WITH_NOFILE]
    if request.param == "mcp":
        env |= {
            "TL_MCP_MAX_CONNECTIONS": str(CAP),
            "TL_MCP_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
            "TL_MCP_SANDBOX_DIR": str(tmp / "sandbox"),
        }
        args += ["serve", "--transport", "http", "--port", str(port)]
        srv = Server(port, f"http://127.0.0.1:{port}/healthz", {}, tmp / "server.log", "/mcp")
    else:
        env |= {
            "TL_MCP_SANDBOX_MAX_CONNECTIONS": str(CAP),
            "TL_MCP_SANDBOX_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        }
        args += ["sandbox", "--port", str(port), "--data-dir", str(tmp / "sandbox")]
        key = {"x-api-key": "tlk_slow"}
        srv = Server(port, f"http://127.0.0.1:{port}/v1.3/health", key, tmp / "server.log", "/v1.3/indexes")
    with running(args, env, srv.log, srv.health, headers=srv.headers):
        yield srv


def _open_slow(port: int, first: bytes) -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        sock.sendall(first)
    except OSError:
        return None  # refused outright: as good as closed
    sock.setblocking(False)
    return sock


def _closed(sock: socket.socket) -> bool:
    try:
        sock.recv(65536)  # EOF, or the 503 of a refused connection: the server is done with it either way
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_trickled_headers_are_cut_off_and_health_answers_throughout(server: Server) -> None:
    log_before = server.log.stat().st_size
    started = time.monotonic()
    opened: list[tuple[float, socket.socket]] = []
    lifetimes: list[float] = []
    health: list[int | str] = []
    head = f"GET /x HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Slow: ".encode()
    with httpx2.Client(timeout=5, headers=server.headers) as client:
        deadline = started + READ_TIMEOUT_S + SLACK_S + 4
        while time.monotonic() < deadline:
            if len(opened) + len(lifetimes) < ATTACKERS:
                for _ in range(25):
                    sock = _open_slow(server.port, head)
                    if sock is None:
                        lifetimes.append(0.0)
                    else:
                        opened.append((time.monotonic(), sock))
            still: list[tuple[float, socket.socket]] = []
            for since, sock in opened:
                if _closed(sock):
                    lifetimes.append(time.monotonic() - since)
                    sock.close()
                    continue
                try:
                    sock.send(b"a")  # one more header byte: never the end of the headers
                except BlockingIOError:
                    pass
                except OSError:
                    lifetimes.append(time.monotonic() - since)
                    sock.close()
                    continue
                still.append((since, sock))
            opened = still
            try:
                # A fresh connection each time, as a load balancer probes: an idle kept-alive one is
                # what the cap closes first when slow connections crowd in.
                health.append(client.get(server.health, headers={"connection": "close"}).status_code)
            except httpx2.HTTPError as exc:
                health.append(type(exc).__name__)
            if not opened and len(lifetimes) >= ATTACKERS:
                break
            time.sleep(0.25)
    for since, sock in opened:
        lifetimes.append(time.monotonic() - since)
        sock.close()
    open_too_long = [round(t, 1) for t in lifetimes if t > READ_TIMEOUT_S + SLACK_S]
    assert not open_too_long, f"{len(open_too_long)} slow connections outlived the read timeout"
    assert len(lifetimes) == ATTACKERS
    assert health and all(status == 200 for status in health), health
    logged = server.log.stat().st_size - log_before
    assert logged < LOG_BUDGET, server.log.read_text()[-3000:]


def test_a_stalled_body_is_cut_off(server: Server) -> None:
    head = (
        f"POST {server.body_path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nx-api-key: tlk_slow\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        "Content-Length: 1000\r\n\r\n{"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT_S + SLACK_S + 5)
    with sock:
        started = time.monotonic()
        sock.sendall(head)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < READ_TIMEOUT_S + SLACK_S
    # The server is fine afterwards.
    assert httpx2.get(server.health, headers=server.headers, timeout=5).status_code == 200


def test_accept_errors_are_logged_once_per_interval_with_a_count() -> None:
    # What asyncio does on every failed accept() when the process is out of file descriptors.
    uvicorn_config(object(), ConnectionLimits(CAP, READ_TIMEOUT_S))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("asyncio").addHandler(handler)
    loop = asyncio.new_event_loop()
    try:
        for _ in range(500):
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many")}
            )
    finally:
        loop.close()
        logging.getLogger("asyncio").removeHandler(handler)
    text = stream.getvalue()
    assert text.count("socket.accept() out of system resource") == 1, text[:2000]
    assert len(text) < 2000


def test_the_rate_limit_reports_what_it_held_back() -> None:
    now = [0.0]
    limiter = RateLimitFilter(interval_s=10, clock=lambda: now[0])
    logger = logging.getLogger("tests.rate_limited")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(limiter)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for second in range(25):
            now[0] = float(second)
            for _ in range(100):
                logger.warning("accept failed on fd %d", 7)
            logger.info("ordinary line %d", second)  # below WARNING: never held back
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(limiter)
    lines = stream.getvalue().splitlines()
    warnings = [line for line in lines if line.startswith("accept failed")]
    assert warnings == [
        "accept failed on fd 7",
        "accept failed on fd 7 [999 more like this in the last 10 s not logged]",
        "accept failed on fd 7 [999 more like this in the last 10 s not logged]",
    ]
    assert sum(line.startswith("ordinary line") for line in lines) == 25
