"""The tl-mcp MCP server: tools by toolset, resources, prompts, jobs, and the HTTP deployment."""

from typing import TYPE_CHECKING, Any

from tl_mcp.server.app import build_server

if TYPE_CHECKING:
    from tl_mcp.server.http import build_http_app, serve_http

__all__ = ["build_http_app", "build_server", "serve_http"]


def __getattr__(name: str) -> Any:
    # The HTTP deployment (its limits, Prometheus metrics, body guard) is imported by its first use: a stdio
    # server starts without it.
    if name in ("build_http_app", "serve_http"):
        from tl_mcp.server import http

        return getattr(http, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
