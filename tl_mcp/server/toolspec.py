"""A tool's declaration: `@tool(...)` on a documented function makes a `ToolSpec`.

Annotations are derived from explicit flags that every tool must state, so no tool can ship without
them. Kept apart from the registry so that the tool modules it collects import nothing that imports them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.types import ToolAnnotations

from tl_mcp.toolsets import ALL_TOOLSETS

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
        # The title travels once, as the tool's own `title`: a copy here would double it in tools/list.
        return ToolAnnotations(
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
