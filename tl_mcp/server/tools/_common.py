"""Pieces shared by the toolset modules: argument types, the wait bound, and small formatting helpers."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tl_mcp.server.state import AppState

Ctx = Context[AppState, Any]

#: No tool call blocks longer than this, whatever the caller asks; longer work continues as a job.
MAX_WAIT_S = 300.0
DEFAULT_WAIT_S = 45.0
#: How often upstream work (indexing, store items, embedding tasks) is polled.
POLL_S = 2.0

Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]

WaitS = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT_S,
        description=(
            "Seconds to wait before returning. If the work is not done by then, the result has "
            'status "in_progress" and a job_id for wait_for_task; the work continues meanwhile.'
        ),
    ),
]


def http_url(value: str, what: str = "url") -> str:
    if not value.startswith(("https://", "http://")):
        raise ToolError(f"{what} must be an http(s) URL, got {value[:60]!r}.")
    return value


def one_of(what: str, **options: object) -> str:
    """The name of the single option given; bad combinations never reach the network."""
    given = [name for name, value in options.items() if value not in (None, "", [])]
    if len(given) != 1:
        names = ", ".join(options)
        raise ToolError(f"{what}: give exactly one of {names} (got {', '.join(given) or 'none'}).")
    return given[0]


def display_name(value: str, what: str = "name") -> str:
    """A name people will read in listings: not blank, no control characters (caught before the network)."""
    if not value.strip():
        raise ToolError(f"{what} must contain a visible character; give a short descriptive {what}.")
    bad = sorted({f"U+{ord(ch):04X}" for ch in value if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0})
    if bad:
        raise ToolError(
            f"{what} contains control characters ({', '.join(bad[:5])}); remove them and call again."
        )
    return value
