"""The container health probe against a real listening socket."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from tl_mcp.healthcheck import probe


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_http_server_is_probed_on_its_port(port: int) -> None:
    ok, reason = probe(["tl-mcp", "serve", "--transport", "http", "--port", str(port)], {})
    assert ok, reason
    ok, _ = probe(["tl-mcp", "serve"], {"TL_MCP_TRANSPORT": "http", "TL_MCP_PORT": str(port)})
    assert ok


def test_http_server_down_is_unhealthy(port: int) -> None:
    ok, reason = probe(["tl-mcp", "--transport=http", "--port=1"], {}, timeout=1)
    assert not ok and "unreachable" in reason


def test_stdio_server_is_healthy_without_a_port() -> None:
    assert probe(["tl-mcp", "serve"], {})[0]
