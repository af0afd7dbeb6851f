"""The sandbox ASGI app: TwelveLabs v1.3 routes under /v1.3, x-api-key auth, TwelveLabs-shaped errors.

The whole sandbox is wired here, explicitly: :data:`ROUTES` lists every route module and :data:`WORKERS`
every kind of background job. Nothing registers itself on import; a new route module or job kind is added
to these tables.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tl_mcp.sandbox.answerers import warm_in_background
from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError
from tl_mcp.sandbox.faults import FaultInjector
from tl_mcp.sandbox.http import analyze as http_analyze
from tl_mcp.sandbox.http import analyze_batches as http_analyze_batches
from tl_mcp.sandbox.http import assets as http_assets
from tl_mcp.sandbox.http import embed as http_embed
from tl_mcp.sandbox.http import embed_v2 as http_embed_v2
from tl_mcp.sandbox.http import entities as http_entities
from tl_mcp.sandbox.http import indexed_assets as http_indexed_assets
from tl_mcp.sandbox.http import indexes as http_indexes
from tl_mcp.sandbox.http import media as http_media
from tl_mcp.sandbox.http import search as http_search
from tl_mcp.sandbox.http import tasks as http_tasks
from tl_mcp.sandbox.http import uploads as http_uploads
from tl_mcp.sandbox.jockey import routes as jockey_routes
from tl_mcp.sandbox.knowledge import ingest
from tl_mcp.sandbox.knowledge import routes as knowledge_routes
from tl_mcp.sandbox.perception import Analyzers
from tl_mcp.sandbox.store.jobs import Worker
from tl_mcp.sandbox.work import analyze as work_analyze
from tl_mcp.sandbox.work import asset as work_asset
from tl_mcp.sandbox.work import embed as work_embed
from tl_mcp.sandbox.work import index as work_index

log = logging.getLogger(__name__)

API_PREFIX = "/v1.3"
API_VERSION = "1.3"
#: Every kind of background work: the job queue runs ``jobs.kind`` rows with the worker of that kind.
WORKERS: dict[str, Worker[Engine]] = {
    "asset": Worker(work_asset.run, work_asset.failed),
    "index": Worker(work_index.run, work_index.failed),
    "embed": Worker(work_embed.run, work_embed.failed),
    "analyze": Worker(work_analyze.run, work_analyze.failed),
    ingest.JOB_KIND: Worker(ingest.run, ingest.failed),
}

#: Every route under /v1.3 (the health check is added in :func:`create_app`).
ROUTES: list[BaseRoute] = [
    *http_uploads.routes,
    *http_assets.routes,
    *http_media.routes,
    *http_indexes.routes,
    *http_indexed_assets.routes,
    *http_tasks.routes,
    *http_search.routes,
    *http_embed.routes,
    *http_embed_v2.routes,
    *http_analyze.routes,
    *knowledge_routes.routes,
    *jockey_routes.routes,
    *http_entities.routes,
    *http_analyze_batches.routes,
]

#: Paths served without an API key because they carry a signature instead.
SIGNED_PREFIXES = ("/uploads/", "/media/")


class ApiKeyAuth:
    """Require an accepted ``x-api-key`` on /v1.3 routes, except signed media/upload URLs and /health."""

    def __init__(self, app: ASGIApp, config: SandboxConfig, open_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.config = config
        self.open_prefixes = tuple(API_PREFIX + p for p in open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if (
            path.startswith(API_PREFIX)
            and not path.startswith(self.open_prefixes)
            and path != API_PREFIX + "/health"
        ):
            key = ""
            for name, value in scope.get("headers", []):
                if name == b"x-api-key":
                    key = value.decode("latin-1").strip()
                    break
            if not self.config.key_accepted(key):
                message = (
                    "The x-api-key header is missing; send your sandbox API key in it."
                    if not key
                    else "API Key is either invalid or expired; use a key listed in TL_MCP_SANDBOX_API_KEYS."
                )
                response = JSONResponse({"code": "api_key_invalid", "message": message}, 401)
                await response(scope, receive, send)
                return

        async def send_with_version(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-api-version", API_VERSION.encode())]
            await send(message)

        await self.app(scope, receive, send_with_version)


async def _health(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    return JSONResponse({"status": "ok", "analyzers": engine.analyzers.describe()})


def _url_secret(config: SandboxConfig) -> bytes:
    path = config.data_dir / "url-secret"
    if not path.exists():
        config.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_bytes()


def create_app(config: SandboxConfig, *, analyzers: Analyzers | None = None) -> Starlette:
    engine = Engine(config, analyzers, workers=WORKERS)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if config.api_keys:
            log.info("sandbox: %d API key(s) accepted", len(config.api_keys))
        else:
            log.warning("sandbox: TL_MCP_SANDBOX_API_KEYS is unset, so ANY non-empty x-api-key is accepted")
        if config.faults.enabled:
            log.warning("sandbox: fault injection is ON (%d rule(s))", len(config.faults.rules))
        engine.start()
        warm_in_background(config)
        try:
            yield
        finally:
            engine.stop()

    api: list[BaseRoute] = [Route("/health", _health, methods=["GET"]), *ROUTES]

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return JSONResponse(
                {"code": "resource_not_exist", "message": f"No route {request.method} {request.url.path}."},
                404,
            )
        if exc.status_code == 405:
            return JSONResponse(
                {
                    "code": "method_not_allowed",
                    "message": f"{request.method} is not allowed on {request.url.path}.",
                },
                405,
            )
        return JSONResponse({"code": "parameter_invalid", "message": str(exc.detail)}, exc.status_code)

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {
                "code": "internal_error",
                "message": f"The sandbox hit an internal error ({type(exc).__name__}).",
            },
            500,
        )

    handlers: dict[Any, Any] = {ApiError: api_error, HTTPException: http_error, Exception: crash}
    middleware = [Middleware(ApiKeyAuth, config=config, open_prefixes=SIGNED_PREFIXES)]
    if config.faults.enabled:
        middleware.insert(0, Middleware(FaultInjector, config=config.faults, prefix=API_PREFIX))
    app = Starlette(
        routes=[Mount(API_PREFIX, routes=api)],
        middleware=middleware,
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.url_secret = _url_secret(config)
    return app
