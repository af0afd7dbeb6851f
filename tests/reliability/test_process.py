"""The stdio server as a real process: it exits cleanly when stdin closes or on SIGTERM, its embedded
sandbox port is closed afterwards, and a client vanishing mid-Jockey-call does not wedge it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import API_KEY, Env, Seed, faulted
from tl_mcp.sandbox.config import FaultRule

EXIT_BOUND_S = 20.0
PORT_LINE = re.compile(r"embedded sandbox listening on http://127\.0\.0\.1:(\d+)/")


class StdioServer:
    """`python -m tl_mcp.cli serve` with newline-delimited JSON-RPC on its pipes; stderr collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tl_mcp.cli", "serve", "--log-level", "INFO"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.stderr: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._pump_err, daemon=True).start()
        threading.Thread(target=self._pump_out, daemon=True).start()
        self._next_id = 0

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._lock:
                self.stderr.append(raw.decode("utf-8", "replace"))

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._lock:
                self.messages.append(json.loads(raw))

    @property
    def err_text(self) -> str:
        with self._lock:
            return "".join(self.stderr)

    def send(self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False) -> int:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            self._next_id += 1
            msg["id"] = self._next_id
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        return self._next_id

    def wait_for(self, predicate: Any, timeout: float = EXIT_BOUND_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for m in self.messages:
                    if predicate(m):
                        return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no matching message; stderr:\n{self.err_text[-3000:]}")

    def response(self, request_id: int, timeout: float = EXIT_BOUND_S) -> dict[str, Any]:
        return dict(self.wait_for(lambda m: m.get("id") == request_id, timeout))

    def handshake(self) -> None:
        rid = self.send(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "reliability-test", "version": "0"},
            },
        )
        assert "result" in self.response(rid), self.err_text
        self.send("notifications/initialized", notify=True)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait_exit(self) -> tuple[int, float]:
        started = time.monotonic()
        try:
            code = self.proc.wait(EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"server did not exit within {EXIT_BOUND_S} s; stderr:\n{self.err_text[-3000:]}"
            ) from None
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update(
        {
            "TL_MCP_BACKEND": "sandbox",
            "TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox"),
            "TL_MCP_SANDBOX_ANALYZERS": "none",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[StdioServer, int]]:
    server = StdioServer(_env(tmp_path))
    try:
        server.handshake()
        match = PORT_LINE.search(server.err_text)
        assert match, server.err_text
        yield server, int(match.group(1))
    finally:
        server.stop()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _assert_clean(server: StdioServer, code: int) -> None:
    err = server.err_text
    assert code == 0, f"exit code {code}; stderr:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]


def test_stdio_server_exits_cleanly_when_stdin_closes(embedded: tuple[StdioServer, int]) -> None:
    server, port = embedded
    rid = server.send("tools/call", {"name": "list_indexes", "arguments": {}})
    assert server.response(rid)["result"]["isError"] is False
    assert _port_open(port)
    server.close_stdin()
    code, took = server.wait_exit()
    _assert_clean(server, code)
    assert not _port_open(port), "the embedded sandbox still listens after the server exited"
    assert took < 10


def test_stdio_server_exits_cleanly_on_sigterm(embedded: tuple[StdioServer, int]) -> None:
    server, port = embedded
    server.proc.send_signal(signal.SIGTERM)
    code, took = server.wait_exit()
    _assert_clean(server, code)
    assert not _port_open(port)
    assert took < 10


@pytest.fixture
def slow_jockey(seed: Seed, tmp_path: Path) -> Iterator[Env]:
    rule = FaultRule(kind="stall", path="^/responses$", methods=("POST",), latency_s=30)
    with faulted(seed, tmp_path, rule, keepalive_interval_s=0.5) as env:
        yield env


def test_client_vanishing_mid_jockey_call_does_not_wedge_the_server(
    slow_jockey: Env, seed: Seed, tmp_path: Path
) -> None:
    env = _env(
        tmp_path,
        TWELVELABS_BASE_URL=slow_jockey.sandbox.base_url,
        TWELVELABS_API_KEY=API_KEY,
    )
    server = StdioServer(env)
    try:
        server.handshake()
        call = server.send(
            "tools/call",
            {
                "name": "create_response",
                "arguments": {
                    "knowledge_store_id": seed.knowledge_store_id,
                    "input": "apples?",
                    "wait_s": 60,
                },
                "_meta": {"progressToken": "p1"},
            },
        )
        # The call is under way (the stalled stream is open and sending keepalives), then the client goes.
        time.sleep(1.5)
        assert server.proc.poll() is None
        with server._lock:
            assert not [m for m in server.messages if m.get("id") == call], "the call should still be running"
        server.close_stdin()
        code, took = server.wait_exit()
    finally:
        server.stop()
    _assert_clean(server, code)
    assert took < 10, f"took {took:.1f} s to exit with a Jockey call in flight"
    assert API_KEY not in server.err_text
