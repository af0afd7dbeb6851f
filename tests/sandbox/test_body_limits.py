"""Request bodies are bounded while they stream: a chunked body with no declared length is cut off once it
passes the limit, before it fills memory (JSON) or the disk (uploads). Attacked the way a hostile client
would, against `tl-mcp sandbox` as a real process, with a client that stops on its own after a bound."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.processes import TL_MCP, free_port, running

MIB = 1024 * 1024
JSON_LIMIT = 1 * MIB
UPLOAD_LIMIT = 2 * MIB
#: The hostile client gives up after this much (and then ends the body properly), so the test is bounded
#: whatever the server does; well past every limit plus the loopback socket buffers.
CLIENT_BOUND = 48 * MIB


@dataclass
class Sandbox:
    port: int
    proc_io: Path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    tmp = tmp_path_factory.mktemp("limits")
    port = free_port()
    env = {
        **os.environ,
        "TL_MCP_SANDBOX_ANALYZERS": "none",
        "TL_MCP_SANDBOX_MAX_JSON_BYTES": str(JSON_LIMIT),
        "TL_MCP_SANDBOX_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
    }
    env.pop("TL_MCP_SANDBOX_API_KEYS", None)
    args = [str(TL_MCP), "sandbox", "--port", str(port), "--data-dir", str(tmp / "data")]
    ready = f"http://127.0.0.1:{port}/v1.3/health"
    with running(args, env, tmp / "sandbox.log", ready, headers={"x-api-key": "tlk_hostile"}):
        pid = _listener_pid(port)
        yield Sandbox(port, Path(f"/proc/{pid}/io"))


def _listener_pid(port: int) -> int:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return int(out.stdout.split("pid=", 1)[1].split(",", 1)[0])


def _written(proc_io: Path) -> int:
    """Bytes the process passed to write(2): its spooled uploads, files and logs (not socket reads)."""
    for line in proc_io.read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no wchar in {proc_io}")


@dataclass
class Outcome:
    sent: int
    status: int
    body: bytes


def _chunked_post(
    port: int, path: str, content_type: str, first: bytes, filler: bytes, last: bytes
) -> Outcome:
    """POST `first`, then `filler` repeated, then `last`, chunked, until the server answers or the client
    bound is reached; then read whatever the server says."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-api-key: tlk_hostile\r\n"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n" % len(data) + data + b"\r\n"

    sent = 0
    response = b""
    with sock:
        sock.sendall(head + chunk(first))
        sent += len(first)
        sock.settimeout(5)
        try:
            while sent < CLIENT_BOUND:
                sock.sendall(chunk(filler))
                sent += len(filler)
            sock.sendall(chunk(last) + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading: what it answered is waiting to be read
        try:
            while piece := sock.recv(65536):
                response += piece
                if b"\r\n\r\n" in response and response.rstrip().endswith(b"}"):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    assert response, f"no response after {sent} bytes were sent"
    status = int(response.split(b" ", 2)[1])
    return Outcome(sent, status, response.split(b"\r\n\r\n", 1)[1])


def test_a_json_body_that_never_ends_is_cut_off_at_the_limit(sandbox: Sandbox) -> None:
    before = _written(sandbox.proc_io)
    started = time.monotonic()
    out = _chunked_post(
        sandbox.port, "/v1.3/indexes", "application/json", b'{"index_name": "', b"x" * 65536, b'"}'
    )
    assert out.status == 413, out
    assert b'"code":"request_too_large"' in out.body and str(JSON_LIMIT).encode() in out.body, out.body
    # Refused while streaming: the client never got near its own bound, and quickly.
    assert out.sent < JSON_LIMIT + 16 * MIB, out.sent
    assert time.monotonic() - started < 10
    assert _written(sandbox.proc_io) - before < MIB
    # The server is fine afterwards and created nothing.
    listed = _chunked_post(sandbox.port, "/v1.3/indexes", "application/json", b"", b"", b"")
    assert listed.status == 400  # an empty body: the ordinary error, not a stuck connection


def test_a_declared_oversized_json_body_is_refused_before_it_is_read(sandbox: Sandbox) -> None:
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1.3/indexes HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\nContent-Type: application/json\r\n"
            f"Content-Length: {512 * MIB}\r\n\r\n".encode()
        )
        response = b""
        while piece := sock.recv(65536):  # the server closes once it has answered
            response += piece
    assert response.startswith(b"HTTP/1.1 413"), response
    assert b"request_too_large" in response


def test_a_chunked_oversized_upload_is_refused_while_streaming(sandbox: Sandbox) -> None:
    boundary = "hostileboundary"
    first = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="method"\r\n\r\ndirect\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    before = _written(sandbox.proc_io)
    out = _chunked_post(
        sandbox.port,
        "/v1.3/assets",
        f"multipart/form-data; boundary={boundary}",
        first,
        b"\0" * 65536,
        f"\r\n--{boundary}--\r\n".encode(),
    )
    assert out.status == 400 and b'"code":"video_filesize_too_large"' in out.body, out
    assert str(UPLOAD_LIMIT).encode() in out.body and b"multipart-uploads" in out.body
    assert out.sent < UPLOAD_LIMIT + 16 * MIB, out.sent
    # What was spooled to disk stays near the limit, not the CLIENT_BOUND the client was ready to send.
    assert _written(sandbox.proc_io) - before < UPLOAD_LIMIT + 2 * MIB
