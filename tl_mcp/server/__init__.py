"""The tl-mcp MCP server: tools by toolset, resources, prompts, jobs, and the HTTP deployment."""

from tl_mcp.server.app import build_server
from tl_mcp.server.http import build_http_app, serve_http

__all__ = ["build_http_app", "build_server", "serve_http"]
