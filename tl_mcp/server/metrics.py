"""`/metrics` in the Prometheus text format, and what feeds it.

One registry per process (Prometheus scrapes a process): tool calls by tool and outcome with their
latency, requests to the TwelveLabs API with theirs and the retries, calls refused by a limit, jobs
running and SSE streams open. Labels are tool names from the catalogue, HTTP methods and status
classes only: never a principal, an id or an argument, which would leak callers' data and grow
without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"
#: Tool calls run from milliseconds (a listing) to minutes (a Jockey answer held by wait_s).
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REGISTRY = CollectorRegistry(auto_describe=True)
TOOL_CALLS = Counter(
    "tl_mcp_tool_calls",
    "Tool calls by tool and outcome (ok, error, limited, protocol_error).",
    ["tool", "outcome"],
    registry=REGISTRY,
)
TOOL_SECONDS = Histogram(
    "tl_mcp_tool_call_seconds", "Tool call latency.", ["tool"], buckets=_CALL_BUCKETS, registry=REGISTRY
)
UPSTREAM_REQUESTS = Counter(
    "tl_mcp_upstream_requests",
    "Requests to the TwelveLabs API by method and status class (2xx, 4xx, 5xx, error, limited).",
    ["method", "status"],
    registry=REGISTRY,
)
UPSTREAM_SECONDS = Histogram(
    "tl_mcp_upstream_request_seconds",
    "Latency of requests to the TwelveLabs API, to the response headers.",
    ["method"],
    buckets=_CALL_BUCKETS,
    registry=REGISTRY,
)
UPSTREAM_RETRIES = Counter(
    "tl_mcp_upstream_retries", "Requests to the TwelveLabs API repeated after a failure.", registry=REGISTRY
)
LIMITED = Counter(
    "tl_mcp_limited", "Calls refused by a per-token limit.", ["kind", "reason"], registry=REGISTRY
)
RUNNING_JOBS = Gauge("tl_mcp_running_jobs", "Jobs running in this process.", registry=REGISTRY)
ACTIVE_STREAMS = Gauge(
    "tl_mcp_active_streams", "SSE response streams open on the MCP endpoint.", registry=REGISTRY
)


def watch_running_jobs(count: Callable[[], int]) -> None:
    """Read the running jobs when scraped (the latest server built in this process is the one served)."""
    RUNNING_JOBS.set_function(count)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


async def counting_sleep(seconds: float) -> None:
    """The retry policy's sleep: each one is a retry about to happen."""
    import anyio

    UPSTREAM_RETRIES.inc()
    await anyio.sleep(seconds)


class StreamGauge:
    """ASGI middleware: counts the SSE responses open right now."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        streaming = False

        async def watch(message: Message) -> None:
            nonlocal streaming
            if message["type"] == "http.response.start" and not streaming:
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                    streaming = True
                    ACTIVE_STREAMS.inc()
            await send(message)

        try:
            await self._app(scope, receive, watch)
        finally:
            if streaming:
                ACTIVE_STREAMS.dec()


def observe_upstream(method: str, started: float, response: httpx2.Response | None) -> None:
    status = "error" if response is None else status_class(response.status_code)
    UPSTREAM_REQUESTS.labels(method, status).inc()
    UPSTREAM_SECONDS.labels(method).observe(time.perf_counter() - started)
