"""Bytes of `tools/list` for the default tools, per part, as the SDK sends them (compact UTF-8 JSON).

Two baselines: the same tools as the SDK would advertise them without `tl_mcp.server.schema` (computed in
this run, so it follows every field anyone adds), and the figure recorded on main before the listing was
shrunk (commit 6dc690d, where the descriptions were longer too). The target is on the recorded figure,
per tool (new default tools get the same budget each).
"""

from __future__ import annotations

from typing import Any

from mcp.types import ListToolsResult, Tool

from tl_mcp.config import Settings
from tl_mcp.server.registry import all_tools, sdk_tool, select_tools
from tl_mcp.server.schema import size

TARGET_RATIO = 0.5
#: Measured on main at 6dc690d (17 default tools), the same way as below.
RECORDED_TOOLS = 17
RECORDED = {"total": 56_935, "descriptions": 7_697, "input_schemas": 19_018, "output_schemas": 25_751}


def _listing(shaped: bool) -> dict[str, int]:
    settings = Settings.from_sources(env={})
    specs = select_tools(all_tools(), toolsets=settings.toolsets, read_only=settings.read_only)
    tools = []
    for spec in specs:
        made = sdk_tool(spec, shaped=shaped)
        tools.append(
            Tool(
                name=made.name,
                title=made.title,
                description=made.description,
                input_schema=made.parameters,
                output_schema=made.output_schema,
                annotations=made.annotations,
                meta=made.meta,
            )
        )
    wire = ListToolsResult(tools=tools).model_dump_json(by_alias=True, exclude_none=True)
    return {
        "tools": len(tools),
        "total": len(wire.encode()),
        "descriptions": sum(len(t.description.encode()) for t in tools if t.description),
        "input_schemas": sum(size(t.input_schema) for t in tools),
        "output_schemas": sum(size(t.output_schema) for t in tools if t.output_schema),
    }


def run() -> dict[str, Any]:
    now = _listing(shaped=True)
    unshrunk = _listing(shaped=False)
    parts = ("total", "descriptions", "input_schemas", "output_schemas")
    return {
        "tools": now["tools"],
        "bytes": {p: now[p] for p in parts},
        "same_run_unshrunk": {p: unshrunk[p] for p in parts},
        "recorded_baseline": RECORDED,
        # Per tool: the recorded figure is for 17 tools; tools added since get the same budget each.
        "ratio_vs_recorded": {
            p: round((now[p] / now["tools"]) / (RECORDED[p] / RECORDED_TOOLS), 3) for p in parts
        },
        "ratio_vs_unshrunk": {p: round(now[p] / unshrunk[p], 3) for p in parts},
        "targets": {"ratio_vs_recorded": TARGET_RATIO},
    }
