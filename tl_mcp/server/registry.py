"""One registry for every tool: applies `--toolsets` and `--read-only` in one place.

The tool modules declare `ToolSpec`s (`toolspec.tool`); `all_tools` collects them from the modules
listed here and orders them by the toolset catalogue (`tl_mcp.toolsets`). `build_tools` turns the
selected specs into the SDK's tools, and is where every tool's arguments become strict (no `"3"` for an
integer, no unknown argument names) and its schemas and annotations are compacted (`schema`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import INVALID_PARAMS, CallToolResult
from pydantic import ConfigDict, PrivateAttr, ValidationError

from tl_mcp.config import Settings
from tl_mcp.server.apps import tool_meta
from tl_mcp.server.errors import invalid_arguments
from tl_mcp.server.schema import compact, compact_annotations, drop_unset
from tl_mcp.server.tools import (
    admin,
    analysis_tasks,
    analysis_tasks_manage,
    analyze,
    bulk,
    clips,
    embed,
    entities,
    ingest,
    jockey,
    library,
    metadata,
    search,
    stores,
    tasks,
)
from tl_mcp.server.toolspec import ToolSpec
from tl_mcp.toolsets import ALL_TOOLSETS

#: Every module that declares tools; a tool's toolset is what it declares, not where it lives.
_MODULES = (
    jockey,
    search,
    embed,
    ingest,
    tasks,
    library,
    analyze,
    clips,
    admin,
    bulk,
    metadata,
    stores,
    entities,
    analysis_tasks,
    analysis_tasks_manage,
)


def all_tools() -> list[ToolSpec]:
    """Every tool the server knows, in catalogue order, each toolset's in module order (the listing order
    clients see)."""
    declared = [spec for module in _MODULES for spec in module.TOOLS]
    return sorted(declared, key=lambda spec: ALL_TOOLSETS.index(spec.toolset))


def select_tools(specs: Sequence[ToolSpec], *, toolsets: Sequence[str], read_only: bool) -> list[ToolSpec]:
    """Toolsets choose what is on; read-only then removes anything that changes state, whatever was asked."""
    chosen = [s for s in specs if s.toolset in toolsets]
    if read_only:
        chosen = [s for s in chosen if s.read_only]
    return chosen


class _Tool(Tool):
    """The SDK's tool, with argument errors that say what to fix instead of pydantic's raw report."""

    # Building the strict argument model is a pydantic class per tool: done by the tool's first call, not
    # by start-up, since the listing needs only its schema.
    _strict_pending: bool = PrivateAttr(default=False)

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        if self._strict_pending:
            self.fn_metadata.arg_model = _strict(self.fn_metadata.arg_model)
            self._strict_pending = False
        try:
            result = await super().run(arguments, context, convert_result)
        except ToolError as exc:
            cause = exc.__cause__
            # Only argument validation leaves a ValidationError as the cause of an anticipated ToolError:
            # failures inside the body arrive wrapped (UnexpectedToolError, or a ToolError caused by one).
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            accepted = self.parameters.get("properties", {})
            message = invalid_arguments(self.name, cause, accepted)
            raise ToolError(f"Error executing tool {self.name}: {message}") from cause
        # The SDK has checked the full dump against the model; the client checks what it gets against the
        # advertised schema, which leaves out the nulls of fields that default to null.
        content = result.structured_content if isinstance(result, CallToolResult) else None
        if content is not None and not result.is_error and self.output_schema:
            result.structured_content = drop_unset(content, self.output_schema)
        return result


def build_tools(settings: Settings, specs: Sequence[ToolSpec] | None = None) -> list[Tool]:
    """The SDK tools for the selected specs, in listing order, ready for `MCPServer(tools=...)`."""
    selected = select_tools(
        all_tools() if specs is None else specs, toolsets=settings.toolsets, read_only=settings.read_only
    )
    return [sdk_tool(spec) for spec in selected]


def sdk_tool(spec: ToolSpec, *, shaped: bool = True) -> Tool:
    """`spec` as an SDK tool; `shaped=False` keeps the SDK's own argument model and schemas (the bench's
    baseline)."""
    made = _Tool.from_function(
        spec.fn,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        annotations=spec.annotations,
        meta=tool_meta(spec.name),
    )
    if not shaped:
        return made
    assert isinstance(made, _Tool)
    # The strict model's schema is the loose one's with unknown names refused: strictness is not in JSON
    # Schema, and the class keeps the loose model's name (its schema title).
    made.parameters = compact({**made.parameters, "additionalProperties": False}, "input")
    made._strict_pending = True
    made.annotations = compact_annotations(spec.annotations)
    meta = made.fn_metadata
    if meta.output_schema is not None:
        meta.output_schema = compact(meta.output_schema, "output")
    return made


def _strict(loose: type[ArgModelBase]) -> type[ArgModelBase]:
    class Arguments(loose):  # type: ignore[misc, valid-type]
        # JSON has numbers, strings and booleans: a string where a number belongs is the caller's
        # mistake to hear about, not to have guessed; an unknown name is most often a misspelt one.
        model_config = ConfigDict(strict=True, extra="forbid")

    Arguments.__name__ = Arguments.__qualname__ = loose.__name__
    return Arguments


def unknown_tools_are_protocol_errors(server: MCPServer[Any], settings: Settings) -> None:
    """`tools/call` of a name the server does not serve is JSON-RPC -32602, as the spec says.

    The SDK turns it into an `isError` result, which reads to a client as if the tool had run.
    """

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and ctx.request_id is not None:
            name = (ctx.params or {}).get("name")
            if isinstance(name, str):
                served = [t.name for t in await server.list_tools()]
                if name not in served:
                    raise MCPError(
                        INVALID_PARAMS, _unknown_tool(name, served, settings), data={"name": name[:100]}
                    )
        return await call_next(ctx)

    server.middleware.append(middleware)


def _unknown_tool(name: str, served: Sequence[str], settings: Settings) -> str:
    shown = name[:100]
    known = {s.name: s for s in all_tools()}
    if shown in known:
        spec = known[shown]
        why = (
            "--read-only hides every tool that changes anything"
            if settings.read_only and not spec.read_only and spec.toolset in settings.toolsets
            else f"its toolset {spec.toolset!r} is off (enable it with --toolsets or TL_MCP_TOOLSETS)"
        )
        return f"Tool {shown!r} is not served by this server: {why}. Served tools: {', '.join(served)}."
    return (
        f"Unknown tool: {shown!r}. Available tools: {', '.join(served)}. Call tools/list for their arguments."
    )
