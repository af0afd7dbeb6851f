"""Raw Server-Sent Events over httpx2, for tests that must see the wire: event ids, `retry:`, priming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@dataclass(frozen=True)
class Event:
    id: str | None
    data: str
    retry: int | None

    @property
    def message(self) -> dict[str, Any] | None:
        """The JSON-RPC message, or None for a priming event (an id with empty data)."""
        return json.loads(self.data) if self.data else None


async def events(response: httpx2.Response) -> AsyncIterator[Event]:
    """Parses the stream as the SSE spec says: fields until a blank line, multi-line data joined by LF."""
    event_id: str | None = None
    retry: int | None = None
    data: list[str] = []
    seen = False
    async for line in response.aiter_lines():
        if not line:
            if seen:
                yield Event(event_id, "\n".join(data), retry)
            event_id, retry, data, seen = None, None, [], False
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        seen = True
        if name == "id":
            event_id = value
        elif name == "data":
            data.append(value)
        elif name == "retry" and value.isdigit():
            retry = int(value)


def rpc(method: str, params: dict[str, Any], request_id: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        body["id"] = request_id
    return body


def tool_call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tools/call that asks for progress (the token is the request id, as the SDK client does)."""
    return rpc(
        "tools/call",
        {"name": name, "arguments": arguments, "_meta": {"progressToken": request_id}},
        request_id,
    )


async def open_session(
    http: httpx2.AsyncClient, url: str, token: str, version: str = "2025-11-25"
) -> dict[str, str]:
    """Initialize a stateful session over raw HTTP; the headers every later request of it carries."""
    auth = {**HEADERS, "authorization": f"Bearer {token}"}
    hello = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    opened = await http.post(url, json=rpc("initialize", hello, 0), headers=auth)
    assert opened.status_code == 200, opened.text
    session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": version}
    initialized = await http.post(url, json=rpc("notifications/initialized", {}), headers=session)
    assert initialized.status_code == 202, initialized.text
    return session
