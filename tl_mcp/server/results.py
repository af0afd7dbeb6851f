"""Every tool result's shape: the result models' bases, the one builder, the markdown layout, call hints.

Tools declare `-> Annotated[CallToolResult, SomeModel]` with `SomeModel` a `ToolResult` (a `JobResult` for
work that runs as a job, a `Listing` for a page of a list); the SDK then advertises `SomeModel` as the
output schema and validates `structured_content` against it, while `tool_result` keeps control of the text
and image blocks. A list's rows and its next-page call travel as a `Page`, which renders them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import BaseModel, model_validator

from tl_mcp.config import BackendKind
from tl_mcp.redaction import display_url

#: A JSON value with a typed schema (a bare `Any` gives clients an untyped `{}` schema).
Json = dict[str, Any] | list[Any] | str | int | float | bool | None

T = TypeVar("T")
#: The statuses a job's result can have; `in_progress` is the one that carries a job id.
S = TypeVar("S", bound=str)
JobStatus = Literal["completed", "in_progress"]


class ToolResult(BaseModel):
    """What every tool returns as structured content: its own fields, and which API answered."""

    backend: BackendKind


class JobResult(ToolResult, Generic[S]):
    """The result of work that runs as a job: finished, or `in_progress` with what arrived so far (the
    partial) and the `job_id` that `wait_for_task` continues from."""

    status: S
    #: Only an in-progress result carries it: a finished one has nothing left to continue.
    job_id: str | None = None
    #: What `wait_for_task` brings, as the next-step hint of an in-progress result says it.
    awaited: ClassVar[str] = "for the rest"

    @model_validator(mode="after")
    def _handle_only_in_progress(self) -> JobResult[S]:
        if not self.in_progress:
            self.job_id = None
        return self

    @property
    def in_progress(self) -> bool:
        return self.status == "in_progress"

    def titled(self, title: str) -> str:
        return f"{title} (in progress)" if self.in_progress else title

    def wait_step(self) -> str:
        """The next step of an in-progress result: the one way every job result says how to go on."""
        return f"Call {call('wait_for_task', id=self.job_id)} {self.awaited}."


class Listing(ToolResult):
    """A page of a list tool's rows (the rows are the tool's own field)."""

    page: int
    total_pages: int | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and the call that fetches the next one (None on the last page)."""

    rows: Sequence[T]
    next_call: str | None = None

    def render(
        self, md: Markdown, section: str, line: Callable[[T], str], empty: str, *, more: str = "More"
    ) -> Markdown:
        """The rows as a section of `md` (or what to do when there are none), and the next page's call."""
        md.section(section, [line(row) for row in self.rows] or [empty])
        if self.next_call:
            md.next_step(f"{more}: {self.next_call}.")
        return md


def tool_result(
    data: ToolResult, text: str | Markdown, *, images: Sequence[ImageContent] = ()
) -> CallToolResult:
    """A successful call's result: markdown, then any images, plus `data` as structured content."""
    body = text.render() if isinstance(text, Markdown) else text
    content: list[ContentBlock] = [TextContent(type="text", text=body), *images]
    return CallToolResult(content=content, structured_content=data.model_dump(mode="json", by_alias=True))


def relayed_result(data: ToolResult, outcome: CallToolResult) -> CallToolResult:
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
    a hint never names an argument the tool lacks or a value it would refuse. A value holding a URL with
    credentials prints `…` too: masked it would not work, and whole it would repeat them.
    """
    parts = [
        f"{k}={'…' if v is FILL or _holds_credentials(v) else json.dumps(v, ensure_ascii=False)}"
        for k, v in args.items()
        if v is not None
    ]
    return f"{tool}({', '.join(parts)})"


def _holds_credentials(value: object) -> bool:
    if isinstance(value, str):
        return display_url(value) != value
    return isinstance(value, list | tuple) and any(_holds_credentials(v) for v in value)


def fmt_seconds(value: float | None) -> str:
    """`83.5` → `1:23.5`: readable timestamps in text; structured content keeps raw seconds."""
    if value is None:
        return "?"
    minutes, seconds = divmod(max(value, 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    sec = f"{seconds:04.1f}" if seconds % 1 else f"{int(seconds):02d}"
    return f"{hours}:{minutes:02d}:{sec}" if hours else f"{minutes}:{sec}"
