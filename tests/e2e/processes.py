"""Running the installed `tl-mcp` as real processes: free ports, readiness, and a clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2

TL_MCP = Path(sys.executable).with_name("tl-mcp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    ready_url: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`args` as a process logging to `log_path`, entered once `ready_url` answers 200; SIGTERM on exit
    (unless the block ended it already, e.g. with SIGKILL).

    A process that dies or stays unready for 60 s fails the test with its log, so a broken start says why.
    """
    log = log_path.open("wb")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(ready_url, timeout=1, headers=dict(headers or {})).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(args[1:3])} did not come up:\n" + log_path.read_text())
            time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
