"""An upstream that echoes the API key back (in error bodies, codes, stream errors, transport errors) must
not get it into a tool result, a log line or an exception message."""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx2
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.reliability.conftest import API_KEY, Seed, assert_actionable, faulted
from tl_mcp.redaction import SECRETS, LineMasker, Redactor, install_log_redaction
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


class _Chunks(httpx2.AsyncByteStream):
    """A body that arrives as a stream (a plain `content=` would be pre-read, unlike a real SSE answer),
    optionally breaking after its first chunk with a transport error that names the key."""

    def __init__(self, body: bytes, *, break_with: str | None = None) -> None:
        self._body = body
        self._break_with = break_with

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body
        if self._break_with is not None:
            raise httpx2.ReadError(self._break_with)


class EchoingUpstream(httpx2.AsyncBaseTransport):
    """The real sandbox, except a few routes answer with the caller's own key in them."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        key = request.headers.get("x-api-key", "")
        path, method = request.url.path, request.method
        if method == "GET" and path.endswith("/v1.3/indexes"):
            return httpx2.Response(500, json={"code": "internal_error", "message": f"bad key {key}!"})
        if method == "GET" and path.endswith("/v1.3/knowledge-stores"):
            return httpx2.Response(400, json={"code": f"key_{key}", "message": f"key={key}"})
        if method == "GET" and path.endswith("/items"):
            raise httpx2.ReadError(f"connection reset while talking with key {key}")
        if method == "GET" and path.endswith(("/videos", "/indexed-assets")):
            return httpx2.Response(200, content=f'{{"data": [{{"id": "{key}'.encode())
        if method == "POST" and path.endswith("/responses"):
            created = {
                "type": "response.created",
                "response": {"id": "resp_1", "status": "in_progress", "session_id": "sess_1", "output": []},
            }
            error = {"type": "error", "error": {"code": f"c_{key}", "message": f"upstream saw {key}"}}
            sse = "text/event-stream"
            if b"break" in request.content:
                only_start = f"event: response.created\ndata: {json.dumps(created)}\n\n".encode()
                stream = _Chunks(only_start, break_with=f"reset by peer holding {key}")
                return httpx2.Response(200, headers={"content-type": sse}, stream=stream)
            body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in (created, error))
            return httpx2.Response(200, headers={"content-type": sse}, stream=_Chunks(body.encode()))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_key_echoed_by_the_upstream_never_reaches_results_or_logs(
    seed: Seed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    calls = [
        ("list_indexes", {}),
        ("list_knowledge_stores", {}),
        ("list_knowledge_store_items", {"knowledge_store_id": seed.knowledge_store_id}),
        ("list_videos", {"index_id": seed.index_id}),
        ("create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": "apples?"}),
        ("create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": "break it"}),
    ]
    seen: list[str] = []
    with faulted(seed, tmp_path) as env:
        server = build_server(env.settings(), transport=EchoingUpstream())
        async with Client(server) as c:
            for name, args in calls:
                result = await c.call_tool(name, args)
                text = assert_actionable(name, result)
                seen.append(text + repr(result))
    joined = "\n".join(seen)
    assert API_KEY not in joined
    assert API_KEY not in caplog.text
    # The errors still say what happened, with the key masked.
    assert "***" in joined
    assert "upstream saw ***" in joined and "reset by peer holding ***" in joined


# ------------------------------------------------------------------ a hostile upstream over real HTTP

ROOT = Path(__file__).resolve().parents[2]
#: The MCP server's key: characters that base64, JSON and URL encodings all spell differently.
HOSTILE_KEY = "tlk_h0st/ile+key=" + "9f3c" * 8
#: Free-text fields the poisoning proxy appends the key to (ids and enums stay intact so calls work).
_TEXT_FIELDS = {"index_name", "name", "filename", "text", "delta", "message", "title", "description", "data"}
#: Where the poisoning proxy puts the key into a JSON text, spelt with JSON escapes (see `escaped_echoes`).
_ESCAPED = "@@escaped-key@@"


def escaped_echoes(key: str) -> list[str]:
    """The key as JSON text can spell it with escapes (each decodes back to the key): every character
    escaped in lower- or upper-case hex, every other one, a single one, and `\\/`."""

    def escape(char: str, upper: bool = False) -> str:
        return f"\\u{ord(char):04X}" if upper else f"\\u{ord(char):04x}"

    return [
        "".join(escape(c) for c in key),
        "".join(escape(c, upper=True) for c in key),
        "".join(escape(c, upper=i % 4 == 1) if i % 2 else c for i, c in enumerate(key)),
        key[:5] + escape(key[5], upper=True) + key[6:],
        key.replace("/", "\\/"),
    ]


def unescaped(text: str) -> str:
    """`text` with JSON's escapes of ASCII decoded, so a leak spelt with them is found too."""
    return re.sub(r"\\u00([0-7][0-9a-fA-F])", lambda m: chr(int(m[1], 16)), text).replace("\\/", "/")


def leaked_forms(key: str) -> dict[str, str]:
    """The key as an echo could spell it, computed independently of tl_mcp.redaction: raw, percent-encoded
    and the inner characters of its base64 at each alignment (standard and URL-safe)."""
    forms = {"raw": key, "percent": quote(key, safe=""), "plus": quote_plus(key)}
    for offset in range(3):
        inner = base64.b64encode(bytes(offset) + key.encode()).decode()[offset + 2 : -3]
        forms[f"b64+{offset}"] = inner
        forms[f"b64url+{offset}"] = inner.replace("+", "-").replace("/", "_")
    return forms


class PoisoningProxy:
    """A loopback TwelveLabs stand-in: forwards to the real sandbox, then puts the caller's key into every
    answer: free-text fields and URLs, every header (request id included), SSE event names, a response
    object the client cannot read, one unreadable JSON body, thumbnail bytes, and a 429 or 503 (with
    Retry-After: 0, the key in its body in raw, base64 and percent forms) before the first answer to
    each GET path."""

    def __init__(self, sandbox: EmbeddedSandbox) -> None:
        self.sandbox = sandbox
        self.upstream = sandbox.base_url.removesuffix("/v1.3")
        self.poisoned = 0
        self._echoes = itertools.cycle(escaped_echoes(HOSTILE_KEY))
        self._faulted: set[str] = set()
        app = Starlette(
            routes=[Route("/{path:path}", self._proxy, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
        )
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> PoisoningProxy:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {
            "x-request-id": f"req-{HOSTILE_KEY}",
            "x-echo": HOSTILE_KEY,
            "x-echo-b64": base64.b64encode(HOSTILE_KEY.encode()).decode(),
        }
        if content_type:
            headers["content-type"] = content_type
        return headers

    def _poison(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._poison(v) for v in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, str) and v.startswith(self.upstream):
                v = v.replace(self.upstream, self.base)
                v += ("&" if "?" in v else "?") + "echo=" + quote(HOSTILE_KEY, safe="")
            elif isinstance(v, str) and k in _TEXT_FIELDS:
                v = f"{v} [{HOSTILE_KEY}] [{_ESCAPED}]"
            else:
                v = self._poison(v)
            out[k] = v
        self.poisoned += 1
        return out

    def _dumps(self, value: Any) -> str:
        """JSON text of `value`, each escaped-key placeholder spelt the next way of `escaped_echoes`."""
        return re.sub(re.escape(_ESCAPED), lambda _: next(self._echoes), json.dumps(value))

    def _poison_sse(self, body: str) -> Iterator[bytes]:
        unreadable = {
            "type": "response.in_progress",
            "response": {"id": HOSTILE_KEY, "status": [HOSTILE_KEY]},
        }
        events = [f"event: response.in_progress\ndata: {json.dumps(unreadable)}\n\n"]
        for block in body.split("\n\n"):
            lines = []
            for line in block.splitlines():
                if line.startswith("event: "):
                    line = f"{line}.{HOSTILE_KEY}"  # disagrees with the payload type: logged at INFO
                elif line.startswith("data: {"):
                    line = "data: " + self._dumps(self._poison(json.loads(line[6:])))
                lines.append(line)
            if lines:
                events.append("\n".join(lines) + "\n\n")
        text = "".join(events).encode()
        # Small chunks, so the key is split between chunks again and again.
        for i in range(0, len(text), 7):
            yield text[i : i + 7]

    async def _proxy(self, request: Request) -> Response:
        path = request.url.path
        if request.method == "GET" and path not in self._faulted and "/thumbs/" not in path:
            self._faulted.add(path)
            status = 429 if len(self._faulted) % 2 else 503
            b64 = base64.b64encode(HOSTILE_KEY.encode()).decode()
            body = {
                "code": f"busy_{HOSTILE_KEY}",
                "message": f"slow down {HOSTILE_KEY} ({b64}, {quote(HOSTILE_KEY, safe='')}, {_ESCAPED})",
            }
            headers = {**self._headers("application/json"), "retry-after": "0"}
            return Response(self._dumps(body), status, headers=headers)
        headers = {k: v for k, v in request.headers.items() if k in ("content-type", "accept")}
        if "x-api-key" in request.headers:
            assert request.headers["x-api-key"] == HOSTILE_KEY
            headers["x-api-key"] = self.sandbox.api_key
        async with httpx2.AsyncClient(timeout=120) as client:
            upstream = await client.request(
                request.method,
                self.upstream + path,
                params=list(request.query_params.multi_items()),
                content=await request.body(),
                headers=headers,
            )
        ctype = upstream.headers.get("content-type", "")
        if "event-stream" in ctype:
            return StreamingResponse(self._poison_sse(upstream.text), headers=self._headers(ctype))
        if ctype.startswith("image/"):
            return Response(
                upstream.content + HOSTILE_KEY.encode(), upstream.status_code, self._headers(ctype)
            )
        if "ndjson" in ctype:
            lines = [
                self._dumps(self._poison(json.loads(line))) for line in upstream.text.splitlines() if line
            ]
            return Response("\n".join(lines) + "\n", upstream.status_code, self._headers(ctype))
        if "json" in ctype and upstream.content:
            data = self._poison(upstream.json())
            if request.method == "GET" and path.count("/") == 3 and path.startswith("/v1.3/indexes/"):
                data["created_at"] = {"echo": _ESCAPED}  # an index the client cannot read
            return Response(self._dumps(data), upstream.status_code, self._headers("application/json"))
        return Response(upstream.content, upstream.status_code, self._headers(ctype or None))


async def test_a_hostile_upstream_echoing_the_key_everywhere_leaks_it_nowhere(
    seed: Seed, tmp_path: Path
) -> None:
    forms = leaked_forms(HOSTILE_KEY)
    stderr_path = tmp_path / "server.stderr"
    seen: list[str] = []
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(repr((value, total, message)))

    with (
        faulted(seed, tmp_path) as env,
        PoisoningProxy(env.sandbox) as proxy,
        stderr_path.open("w") as errlog,
    ):
        server_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TL_MCP_", "TWELVELABS_"))},
            "PYTHONPATH": str(ROOT),
            "TWELVELABS_API_KEY": HOSTILE_KEY,
            "TWELVELABS_BASE_URL": f"{proxy.base}/v1.3",
            "TL_MCP_BACKEND": "cloud",
            "TL_MCP_SANDBOX_DIR": str(tmp_path / "state"),
        }
        args = ["-m", "tl_mcp.cli", "serve", "--log-level", "DEBUG", "--toolsets", "all"]
        args += ["--allow-dir", str(seed.media)]
        params = StdioServerParameters(command=sys.executable, args=args, env=server_env)
        async with Client(stdio_client(params, errlog=errlog)) as c:

            async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                result = await c.call_tool(name, arguments, progress_callback=on_progress)
                seen.append(f"{name}: {result!r}")
                # Every call does its work (deletes of what is not there are idempotent): the secret is
                # hunted in real answers, not only in error messages.
                assert not result.is_error, (name, result)
                return result.structured_content or {}

            await call("list_indexes", {})
            made = await call("create_index", {"name": "poisoned"})
            await call("list_videos", {"index_id": seed.index_id})
            await call(
                "get_video",
                {"index_id": seed.index_id, "video_id": seed.video_id, "include_transcript": True},
            )
            found = await call(
                "search_videos",
                {"query": "quarterly sales report", "index_id": seed.index_id, "include_thumbnails": 1},
            )
            await call(
                "classify_videos",
                {
                    "index_id": seed.index_id,
                    "classes": [{"name": "bars", "prompts": ["quarterly sales report"]}],
                },
            )
            await call("create_embedding", {"text": "fresh apples"})
            store = await call("create_knowledge_store", {"name": "poisoned store"})
            await call("list_knowledge_stores", {})
            await call("list_knowledge_store_items", {"knowledge_store_id": seed.knowledge_store_id})
            upload = await call("upload_asset", {"path": str(seed.media / "clip.mp4"), "wait_s": 0})
            if upload.get("job_id"):
                await call("wait_for_task", {"id": upload["job_id"], "wait_s": 30})
            await call(
                "add_to_knowledge_store",
                {"knowledge_store_id": store.get("id", ""), "asset_id": seed.asset_id},
            )
            await call("analyze_video", {"prompt": "what is shown?", "asset_id": seed.asset_id})
            await call("summarize_video", {"asset_id": seed.asset_id})
            answer = await call(
                "create_response",
                {"knowledge_store_id": seed.knowledge_store_id, "input": "how much did revenue grow?"},
            )
            if answer.get("session_id"):
                await call("continue_session", {"session_id": answer["session_id"], "input": "and then?"})
            await call(
                "remove_from_knowledge_store", {"knowledge_store_id": store.get("id", ""), "item_id": "nope"}
            )
            await call("delete_knowledge_store", {"knowledge_store_id": store.get("id", "")})
            if upload.get("asset_id"):
                await call("delete_asset", {"asset_id": upload["asset_id"]})
            await call("delete_video", {"index_id": made.get("id", ""), "video_id": "nope"})
            await call("delete_index", {"index_id": made.get("id", "")})
            for uri in (
                "twelvelabs://indexes",
                f"twelvelabs://indexes/{seed.index_id}",
                f"twelvelabs://indexes/{seed.index_id}/videos/{seed.video_id}",
                "twelvelabs://knowledge-stores",
                f"twelvelabs://knowledge-stores/{seed.knowledge_store_id}",
            ):
                try:
                    seen.append(f"{uri}: {await c.read_resource(uri)!r}")
                except Exception as exc:  # an unreadable index is an error, and its message counts too
                    seen.append(f"{uri}: {exc!r}")
    logs = stderr_path.read_text()
    everything = {"results": "\n".join(seen), "progress": "\n".join(progress), "logs": logs}
    leaks = [
        (where, form)
        for where, text in everything.items()
        for form, value in forms.items()
        if value in text or value in unescaped(text)
    ]
    assert not leaks, leaks
    # The attack really happened, and what it carried is still there, masked.
    assert proxy.poisoned > 50 and len(proxy._faulted) > 5
    assert "[***] [***]" in everything["results"] and "[***] [***]" in everything["progress"]
    assert "retrying in" in logs and "req-***" in logs and "SSE event name" in logs
    assert "unreadable response object" in logs
    assert found.get("moments") and "echo=***" in found["moments"][0]["thumbnail_url"]
    assert "contains a secret" in logs  # the thumbnail the proxy put the key into was not returned


def test_a_key_split_across_stream_chunks_is_masked_and_whole_lines_are_never_held_back() -> None:
    redactor = Redactor([HOSTILE_KEY])
    for spelling in [HOSTILE_KEY, *escaped_echoes(HOSTILE_KEY)]:
        event = f'event: response.output_text.delta\ndata: {{"delta": "{spelling}"}}\n\n'.encode()
        for cut in range(1, len(event)):
            masker = LineMasker(redactor)
            out = masker.feed(event[:cut]) + masker.feed(event[cut:])
            # The whole event is out as soon as its last byte is in: a stream is never a line late.
            assert out == event.replace(spelling.encode(), b"***"), (spelling, cut)
            assert masker.flush() == b""
    # A long line without a break only keeps back what could still be the start of the key.
    masker = LineMasker(redactor)
    assert masker.feed(b"x" * 5000) == b"x" * (5000 - redactor.longest + 1)
    assert masker.feed(HOSTILE_KEY.encode()[:10]) + masker.feed(
        HOSTILE_KEY.encode()[10:]
    ) + masker.flush() == (b"x" * (redactor.longest - 1) + b"***")


def test_the_log_filter_masks_messages_arguments_and_tracebacks() -> None:
    SECRETS.add(HOSTILE_KEY)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.log_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    b64 = base64.b64encode(b"Basic user:" + HOSTILE_KEY.encode()).decode()
    try:
        install_log_redaction(logger)
        logger.warning("echoed %s and %r", HOSTILE_KEY, {"auth": b64})
        try:
            raise ValueError(f"upstream said {quote(HOSTILE_KEY, safe='')}")
        except ValueError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "ValueError: upstream said ***" in text and "echoed *** and" in text, text
    leaks = [form for form, value in leaked_forms(HOSTILE_KEY).items() if value in text]
    assert not leaks, (leaks, text)
