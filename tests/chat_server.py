"""A real loopback HTTP server speaking the OpenAI chat-completions streaming protocol, for tests and
benches: the network boundary to a model endpoint (Ollama, llama.cpp's server, LM Studio, vLLM).

What it answers is up to the test: ``reply(body) -> list of content tokens``; every request body is kept,
with the time each of its tokens was written. ``hang_up_after`` makes it stop after that many tokens and
close the connection without ``[DONE]``, as a server that dies mid-answer does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], list[str]]
#: An evidence line as the sandbox writes it: "[2] (subtitles) what was said"; the model cites it as [2].
EVIDENCE_LINE = re.compile(r"^(\[\d+\]) \(([^)]*)\) (.*)$", re.MULTILINE)


class ChatServer:
    def __init__(self, reply: Reply, *, token_delay_s: float = 0.02) -> None:
        self.reply = reply
        self.token_delay_s = token_delay_s
        self.requests: list[dict[str, Any]] = []
        #: For each request, when (time.monotonic) each token was written and flushed.
        self.sent_at: list[list[float]] = []
        self.hang_up_after: int | None = None
        self.url = ""

    @staticmethod
    def evidence(body: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(number, source, text) of each evidence line the sandbox sent; the number ("[2]") is how the model
        cites that line."""
        return EVIDENCE_LINE.findall(body["messages"][-1]["content"])


def tokens(text: str) -> list[str]:
    """Word-sized pieces that join back to ``text``, as a model streams them."""
    return re.findall(r"\S+\s*|\s+", text)


@contextmanager
def serve(server: ChatServer) -> Iterator[ChatServer]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.requests.append(body)
            sent_at: list[float] = []
            server.sent_at.append(sent_at)
            pieces = server.reply(body)
            if server.hang_up_after is not None:
                pieces = pieces[: server.hang_up_after]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for piece in pieces:
                    chunk = {
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": piece}}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    sent_at.append(time.monotonic())
                    time.sleep(server.token_delay_s)
                if server.hang_up_after is None:
                    self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sandbox stopped reading: it set the model's answer aside, or timed out

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
