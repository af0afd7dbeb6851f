"""The README's coverage table (capability → tool → cloud/sandbox) leaves no capability unexplained."""

from __future__ import annotations

from tl_mcp.server.coverage import COVERAGE, coverage_table
from tl_mcp.server.registry import all_tools

#: The official TwelveLabs MCP server's 24 tools (shared/reference/anchors.md §1).
OFFICIAL_TOOLS = {
    "create-index",
    "list-indexes",
    "delete-index",
    "start-video-indexing-task",
    "get-indexed-asset",
    "get-video-indexing-tasks",
    "list-videos",
    "search",
    "sync-analyse-video",
    "async-analyse-video",
    "get-analyse-task",
    "list-analyse-tasks",
    "delete-analyse-task",
    "start-video-embeddings-task",
    "get-video-embeddings-tasks",
    "retrieve-video-embeddings",
    "create-asset",
    "delete-asset",
    "create-entity-collection",
    "list-entity-collections",
    "delete-entity-collection",
    "create-entity",
    "list-entities",
    "delete-entity",
}


def test_every_tool_named_exists_and_every_tool_has_a_row() -> None:
    ours = {spec.name for spec in all_tools()}
    named = {tool for row in COVERAGE for tool in row.tools}
    assert named <= ours, f"rows name tools that do not exist: {sorted(named - ours)}"
    assert ours <= named, f"tools with no coverage row: {sorted(ours - named)}"


def test_every_official_tool_is_answered_by_a_row() -> None:
    answered = {tool for row in COVERAGE for tool in row.official}
    assert answered <= OFFICIAL_TOOLS, sorted(answered - OFFICIAL_TOOLS)
    assert answered >= OFFICIAL_TOOLS, f"no row answers {sorted(OFFICIAL_TOOLS - answered)}"


def test_a_row_with_no_tool_says_why() -> None:
    for row in COVERAGE:
        assert row.tools or row.how, row.capability
        assert row.cloud and row.sandbox, row.capability
        if not row.tools:
            assert "yes" not in (row.cloud, row.sandbox), f"{row.capability}: no tool, yet it says yes"


def test_the_table_has_one_line_per_row() -> None:
    table = coverage_table()
    assert len(table.strip().splitlines()) == len(COVERAGE) + 2
    assert "`retrieve-video-embeddings`" in table
