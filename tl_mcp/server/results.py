"""The one result builder every tool uses: a short markdown text for the model plus structured content.

Tools declare `-> Annotated[CallToolResult, SomeModel]`; the SDK then advertises `SomeModel` as the output
schema and validates `structured_content` against it, while we keep control of the text and image blocks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import BaseModel

#: A JSON value with a typed schema (a bare `Any` gives clients an untyped `{}` schema).
Json = dict[str, Any] | list[Any] | str | int | float | bool | None


def tool_result(
    data: BaseModel, text: str | Markdown, *, images: Sequence[ImageContent] = ()
) -> CallToolResult:
    """A successful call's result: markdown, then any images, plus `data` as structured content."""
    body = text.render() if isinstance(text, Markdown) else text
    content: list[ContentBlock] = [TextContent(type="text", text=body), *images]
    return CallToolResult(content=content, structured_content=data.model_dump(mode="json", by_alias=True))


def relayed_result(data: BaseModel, outcome: CallToolResult) -> CallToolResult:
    """Another call's result told again (a job's, by `wait_for_task`): its text and images, `data` as
    structured content."""
    return CallToolResult(
        content=outcome.content, structured_content=data.model_dump(mode="json", by_alias=True)
    )


class Markdown:
    """Stable markdown layout shared by all tools: `# title`, bold fields, `##` sections, next-step hints."""

    def __init__(self, title: str) -> None:
        self._lines: list[str] = [f"# {title}", ""]
        self._next: list[str] = []

    def field(self, label: str, value: object) -> Markdown:
        if value is not None and value != "":
            self._lines.append(f"- **{label}:** {value}")
        return self

    def para(self, text: str) -> Markdown:
        if self._lines[-1] != "":
            self._lines.append("")
        self._lines.extend([text, ""])
        return self

    def section(self, title: str, lines: Iterable[str] = ()) -> Markdown:
        if self._lines[-1] != "":
            self._lines.append("")
        self._lines.append(f"## {title}")
        self._lines.extend(lines)
        self._lines.append("")
        return self

    def next_step(self, hint: str) -> Markdown:
        self._next.append(hint)
        return self

    def render(self) -> str:
        lines = list(self._lines)
        if self._next:
            if lines[-1] != "":
                lines.append("")
            lines.append("## Next steps")
            lines.extend(f"- {hint}" for hint in self._next)
        return "\n".join(lines).strip() + "\n"


#: An argument of a suggested call that the caller fills in (a question, a query, a file).
FILL: Final = ...


def call(tool: str, **args: object) -> str:
    """A call to suggest, spelled the one way every hint spells it: `tool(a="x", n=2, flag=true, q=…)`.

    Values are JSON (what the caller sends back), `FILL` prints `…`, and None leaves the argument out, so
    a hint never names an argument the tool lacks or a value it would refuse.
    """
    parts = [
        f"{k}={'…' if v is FILL else json.dumps(v, ensure_ascii=False)}"
        for k, v in args.items()
        if v is not None
    ]
    return f"{tool}({', '.join(parts)})"


def fmt_seconds(value: float | None) -> str:
    """`83.5` → `1:23.5`: readable timestamps in text; structured content keeps raw seconds."""
    if value is None:
        return "?"
    minutes, seconds = divmod(max(value, 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    sec = f"{seconds:04.1f}" if seconds % 1 else f"{int(seconds):02d}"
    return f"{hours}:{minutes:02d}:{sec}" if hours else f"{minutes}:{sec}"
