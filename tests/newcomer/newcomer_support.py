"""Helpers for the newcomer tests: clean environments, free ports, and real `tl-mcp` server subprocesses."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Everything a spawned server or script must not inherit from the developer's shell.
_SCRUB_PREFIXES = ("TWELVELABS_", "TL_MCP_")
#: For tests of the client flow rather than of understanding: subtitles and exact words, no ML models.
FAST_SANDBOX = {"TL_MCP_SANDBOX_ANALYZERS": "none"}
#: The npm packages of independent clients (tests/clients/<name>/package.json + package-lock.json).
CLIENTS = ROOT / "tests" / "clients"


def clean_env(extra: Mapping[str, str] | None = None, *, home: Path | None = None) -> dict[str, str]:
    """The test process's environment without any TwelveLabs/tl-mcp setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    # Run from a checkout whether or not the project is installed into the interpreter.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not healthy after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class HttpServer:
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def start_http_server(
    command: Sequence[str], env: Mapping[str, str], log: Path, *, cwd: Path, port: int, token: str
) -> HttpServer:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = HttpServer(port=port, token=token, proc=proc, log=log)
    try:
        wait_healthy(port, proc, log)
    except BaseException:
        stop(proc)
        raise
    return server


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def npm_ci(folder: Path, *, timeout: float = 600) -> None:
    """`npm ci` in `folder` unless its node_modules was already installed from this very lockfile."""
    npm = shutil.which("npm")
    assert npm is not None
    lock = (folder / "package-lock.json").read_bytes()
    stamp = folder / "node_modules" / ".tl-mcp-lock-sha256"
    digest = hashlib.sha256(lock).hexdigest()
    # `npm ci` first deletes node_modules: a second test process (an xdist worker) installing the same
    # folder at once would pull it from under the first. One at a time, per folder; the stamp is re-read
    # under the lock, so the second finds the first's install and returns.
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    with (Path(tempfile.gettempdir()) / f"tl-mcp-npm-ci-{key}.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == digest:
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            env=clean_env({"npm_config_update_notifier": "false"}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"npm ci in {folder} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        stamp.write_text(digest)
