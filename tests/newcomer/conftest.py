"""What a newcomer meets first: the README, the demo, the examples, the container and the Inspector.

Servers here are real `tl-mcp` subprocesses on the embedded sandbox; none of them sees an API key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from newcomer_support import FAST_SANDBOX, HttpServer, clean_env, free_port, start_http_server, stop

from tl_mcp.samples import SampleInfo, make_sample_video


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleInfo:
    """One generated clip for every test here, in a folder of its own (the server's --allow-dir)."""
    media = tmp_path_factory.mktemp("media")
    return make_sample_video(media / "clip.mp4")


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory, sample: SampleInfo) -> Iterator[HttpServer]:
    """`tl-mcp serve --transport http` with a bearer token, as the README shows it."""
    tmp = tmp_path_factory.mktemp("http-server")
    port, token = free_port(), "newcomer-" + os.urandom(8).hex()
    command = [
        sys.executable,
        "-m",
        "tl_mcp.cli",
        "serve",
        "--transport",
        "http",
        "--port",
        str(port),
        "--auth-token",
        token,
        "--allow-dir",
        str(sample.path.parent),
        "--sandbox-dir",
        str(tmp / "sandbox"),
    ]
    env = clean_env(FAST_SANDBOX)
    server = start_http_server(command, env, tmp / "server.log", cwd=tmp, port=port, token=token)
    try:
        yield server
    finally:
        stop(server.proc)
