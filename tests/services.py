"""Real Redis and HAProxy (Debian's `redis-server` and `haproxy`, installed by .ci/run) on loopback ports.

A test that needs one skips, saying which package to install, only when its binary is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
import redis

from tests.e2e.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
#: The HAProxy configuration `deploy/compose.yaml` runs, which the replica tests run too.
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        pytest.skip(f"{name} is not installed: apt-get install {package} (.ci/run installs it)")
    return found


def persistent_keys(url: str) -> dict[str, str]:
    """The keys in the Redis at `url` that never expire (no TTL), each with its type."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    try:
        return {key: client.type(key) for key in client.scan_iter(count=1000) if client.ttl(key) == -1}
    finally:
        client.close()


def assert_every_key_expires(url: str) -> None:
    """Every key tl-mcp writes carries a TTL, so nothing a crashed or cut-off write left outlives its use.

    The keys it reports are removed, so one such write fails the one test that made it."""
    found = persistent_keys(url)
    if found:
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.delete(*found)
        client.close()
    assert not found, f"Redis keys without a TTL (a write that does not bound its key): {found}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextmanager
def redis_server(folder: Path, port: int | None = None) -> Iterator[str]:
    """A throwaway `redis-server` on a free loopback port, or on `port` to restart one (no persistence);
    yields its URL. A block that ends normally with the server still up ends with no key lacking a TTL."""
    exe = _binary("redis-server", "redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = (folder / "redis.log").open("wb")
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(folder)], stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        client = redis.Redis.from_url(url, socket_timeout=1)
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("redis-server did not come up:\n" + (folder / "redis.log").read_text())
            time.sleep(0.05)
        client.close()
        yield url
        if proc.poll() is None:
            assert_every_key_expires(url)
    finally:
        _stop(proc)
        log.close()


def haproxy_binary() -> str:
    return _binary("haproxy", "haproxy")


@contextmanager
def haproxy(folder: Path, servers: Mapping[str, int]) -> Iterator[str]:
    """`deploy/haproxy.cfg` in front of the replicas on `servers` (name → loopback port); yields its URL.

    The config reads its listen address and servers from the environment, as compose sets them.
    """
    exe = haproxy_binary()
    port = free_port()
    env = {"LB_LISTEN": f"127.0.0.1:{port}"}
    for name, server_port in servers.items():
        env[f"LB_{name.upper()}"] = f"127.0.0.1:{server_port}"
    log_path = folder / "haproxy.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [exe, "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("haproxy did not come up:\n" + log_path.read_text())
            time.sleep(0.1)
        yield url
    finally:
        _stop(proc)
        log.close()
