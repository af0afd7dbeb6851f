"""One registry for every tool: applies `--toolsets` and `--read-only` in one place.

Each toolset module builds `ToolSpec`s with the `tool(...)` decorator; annotations are derived from
explicit flags that every tool must state, so no tool can ship without them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from tl_mcp.config import ALL_TOOLSETS, Settings

ToolFn = Callable[..., Any]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    toolset: str
    title: str
    description: str
    fn: ToolFn
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            title=self.title,
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


def tool(
    *,
    toolset: str,
    title: str,
    read_only: bool,
    destructive: bool,
    idempotent: bool,
    open_world: bool = True,
) -> Callable[[ToolFn], ToolSpec]:
    """Declare a tool; its docstring is the description the model reads, so write it as a prompt."""
    if toolset not in ALL_TOOLSETS:
        raise ValueError(f"unknown toolset {toolset!r}")
    if read_only and destructive:
        raise ValueError("a read-only tool cannot be destructive")

    def wrap(fn: ToolFn) -> ToolSpec:
        doc = inspect.cleandoc(fn.__doc__ or "")
        if not doc:
            raise ValueError(f"tool {fn.__name__} needs a docstring: it is the description the model reads")
        return ToolSpec(
            name=fn.__name__,
            toolset=toolset,
            title=title,
            description=doc,
            fn=fn,
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent,
            open_world=open_world,
        )

    return wrap


def all_tools() -> list[ToolSpec]:
    """Every tool the server knows, in toolset order (the listing order clients see)."""
    from tl_mcp.server.tools import admin, analyze, embed, ingest, jockey, library, search

    modules = {
        "jockey": jockey,
        "search": search,
        "embed": embed,
        "ingest": ingest,
        "library": library,
        "analyze": analyze,
        "admin": admin,
    }
    specs: list[ToolSpec] = []
    for toolset in ALL_TOOLSETS:
        module_tools: Sequence[ToolSpec] = modules[toolset].TOOLS
        for spec in module_tools:
            if spec.toolset != toolset:
                raise ValueError(f"{spec.name} is declared in {toolset}.py but tagged {spec.toolset}")
            specs.append(spec)
    return specs


def select_tools(specs: Sequence[ToolSpec], *, toolsets: Sequence[str], read_only: bool) -> list[ToolSpec]:
    """Toolsets choose what is on; read-only then removes anything that changes state, whatever was asked."""
    chosen = [s for s in specs if s.toolset in toolsets]
    if read_only:
        chosen = [s for s in chosen if s.read_only]
    return chosen


def register_tools(
    server: MCPServer[Any], settings: Settings, specs: Sequence[ToolSpec] | None = None
) -> list[str]:
    selected = select_tools(
        all_tools() if specs is None else specs, toolsets=settings.toolsets, read_only=settings.read_only
    )
    for spec in selected:
        server.add_tool(
            spec.fn,
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=spec.annotations,
        )
    return [s.name for s in selected]
