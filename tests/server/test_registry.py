"""The registry: toolset selection, read-only override, and the metadata every tool must carry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from tl_mcp.config import Settings
from tl_mcp.server import build_server
from tl_mcp.server.registry import all_tools, sdk_tool, select_tools
from tl_mcp.server.results import JobResult, Json, ToolResult, tool_result
from tl_mcp.server.schema import compact_annotations
from tl_mcp.server.toolspec import tool
from tl_mcp.toolsets import ALL_TOOLSETS

SNAPS = Path(__file__).parent / "toolsnaps"


class Out(BaseModel):
    n: int


def _names(**flags: object) -> list[str]:
    server = build_server(Settings.from_sources(env={}, **flags))  # type: ignore[arg-type]
    return [t.name for t in anyio.run(server.list_tools)]


def test_admin_is_off_by_default_and_on_when_asked() -> None:
    default = _names()
    assert "delete_index" not in default and "create_response" in default
    assert "delete_index" in _names(toolsets="all")
    assert _names(toolsets="admin") == [s.name for s in all_tools() if s.toolset == "admin"]


def test_toolsets_choose_tools() -> None:
    assert _names(toolsets="search,jockey") == [
        "create_response",
        "continue_session",
        "search_videos",
        "classify_videos",
    ]


def test_read_only_overrides_everything_including_admin() -> None:
    names = _names(toolsets="all", read_only=True)
    specs = {s.name: s for s in all_tools()}
    assert names and all(specs[n].read_only for n in names)
    for writer in (
        "upload_asset",
        "create_index",
        "create_knowledge_store",
        "delete_index",
        "add_to_knowledge_store",
    ):
        assert writer not in names
    assert "search_videos" in names and "wait_for_task" in names


def test_select_tools_is_the_single_filter() -> None:
    specs = all_tools()
    assert select_tools(specs, toolsets=ALL_TOOLSETS, read_only=False) == specs
    assert select_tools(specs, toolsets=(), read_only=False) == []


def _as_the_spec_reads(ann: ToolAnnotations) -> tuple[bool, bool | None, bool | None, bool]:
    """(read-only, destructive, idempotent, open-world) with the spec's defaults applied; the destructive
    and idempotent hints mean nothing on a read-only tool (None)."""
    read_only = ann.read_only_hint is True
    destructive = None if read_only else ann.destructive_hint is not False
    idempotent = None if read_only else ann.idempotent_hint is True
    return read_only, destructive, idempotent, ann.open_world_hint is not False


def test_every_tool_has_title_annotations_description_and_output_schema() -> None:
    server = build_server(Settings.from_sources(env={}, toolsets="all"))
    tools = anyio.run(server.list_tools)
    assert len(tools) == len(all_tools()) == 46
    specs = {s.name: s for s in all_tools()}
    for t in tools:
        assert t.title, t.name
        ann = t.annotations
        assert ann is not None, t.name
        # readOnlyHint is always stated (clients decide approval on it); the others wherever the spec's
        # defaults would read them wrong, so a client applying the spec gets every declared flag.
        assert isinstance(ann.read_only_hint, bool), t.name
        spec = specs[t.name]
        declared = (
            spec.read_only,
            None if spec.read_only else spec.destructive,
            None if spec.read_only else spec.idempotent,
            spec.open_world,
        )
        assert _as_the_spec_reads(ann) == declared, t.name
        assert t.output_schema and t.output_schema.get("type") == "object", t.name
        assert "backend" in t.output_schema["properties"], t.name
        # Descriptions are prompts: a purpose line, then when to use it / hints.
        assert t.description and len(t.description.splitlines()) >= 3, t.name
        assert t.input_schema.get("type") == "object"
        if ann.destructive_hint:
            # Deletions, export_clips, which replaces files when called with overwrite=true, and
            # cancel_analysis_task, which stops paid work for good.
            assert t.name.startswith(("delete_", "remove_")) or t.name in (
                "export_clips",
                "cancel_analysis_task",
            ), t.name


def test_every_tool_result_is_a_tool_result_and_every_job_handle_a_job_result() -> None:
    for spec in all_tools():
        model = sdk_tool(spec).fn_metadata.output_model
        assert isinstance(model, type) and issubclass(model, ToolResult), spec.name
        fields = model.model_fields
        # A status with a job id to continue from is a job's result, built and rendered one way.
        if "job_id" in fields and "in_progress" in str(fields["status"].annotation):
            assert issubclass(model, JobResult), spec.name


def test_tool_schemas_match_snapshots() -> None:
    """Schema snapshots (like GitHub's toolsnaps); regenerate with UPDATE_SNAPSHOTS=1."""
    server = build_server(Settings.from_sources(env={}, toolsets="all"))
    update = os.environ.get("UPDATE_SNAPSHOTS") == "1"
    seen = set()
    for t in anyio.run(server.list_tools):
        snap = SNAPS / f"{t.name}.json"
        seen.add(snap.name)
        current = json.dumps(
            t.model_dump(by_alias=True, exclude_none=True, mode="json"), indent=2, sort_keys=True
        )
        if update:
            SNAPS.mkdir(exist_ok=True)
            snap.write_text(current + "\n", "utf-8")
            continue
        assert snap.exists(), f"missing snapshot {snap.name}; run with UPDATE_SNAPSHOTS=1"
        assert snap.read_text("utf-8") == current + "\n", (
            f"{t.name} schema changed; UPDATE_SNAPSHOTS=1 if intended"
        )
    stale = {p.name for p in SNAPS.glob("*.json")} - seen
    assert not stale, f"snapshots for tools that no longer exist: {stale}"


@pytest.mark.parametrize("bad", ["nope", "search,bogus"])
def test_unknown_toolset_is_a_clear_config_error(bad: str) -> None:
    from tl_mcp.config import ConfigError

    with pytest.raises(ConfigError, match="unknown toolset"):
        Settings.from_sources(env={}, toolsets=bad)


@pytest.mark.anyio
async def test_sdk_validates_structured_content_of_callresults_against_the_output_schema() -> None:
    """Our tools return CallToolResult; this pins that the SDK still checks it against the declared model."""
    server: MCPServer = MCPServer("t")

    def good() -> Annotated[CallToolResult, Out]:
        return tool_result(Out(n=1), "one")

    def bad() -> Annotated[CallToolResult, Out]:
        return CallToolResult(content=[], structured_content={"n": "not a number"})

    server.add_tool(good)
    server.add_tool(bad)
    async with Client(server) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert (
            tools["good"].output_schema
            and tools["good"].output_schema["properties"]["n"]["type"] == "integer"
        )
        ok = await c.call_tool("good", {})
        assert ok.structured_content == {"n": 1} and not ok.is_error
        rejected = await c.call_tool("bad", {})
        assert rejected.is_error


class _Hit(BaseModel):
    at: float
    note: str | None = None


class _Found(BaseModel):
    hits: list[_Hit]
    page_token: str | None = None
    best: float | None = Field(description="No default: always sent, null when nothing scored.")
    raw: dict[str, Any] | None = None
    parsed: Json = None


@pytest.mark.anyio
async def test_a_result_leaves_out_what_defaults_to_null_and_the_client_still_validates_it() -> None:
    """Fields that default to null are advertised without null and left out of the result when empty; a
    nullable field with no default still carries its null, and free-form JSON keeps its nulls (data)."""

    @tool(toolset="search", title="Find", read_only=True, destructive=False, idempotent=True)
    async def find() -> Annotated[CallToolResult, _Found]:
        """Find things.

        A test tool.
        """
        found = _Found(
            hits=[_Hit(at=1.5), _Hit(at=2, note="two")],
            best=None,
            raw={"kept": None},
            parsed={"answer": None, "items": [None]},
        )
        return tool_result(found, "found")

    async with Client(MCPServer("t", tools=[sdk_tool(find)])) as c:
        listed = (await c.list_tools()).tools[0].output_schema
        assert listed is not None
        props = listed["properties"]
        assert props["page_token"] == {"type": "string"}
        assert props["best"]["type"] == ["number", "null"]
        assert props["hits"]["items"]["properties"]["note"] == {"type": "string"}
        result = await c.call_tool("find", {})  # the SDK client checks it against the schema above
        assert not result.is_error
        assert result.structured_content == {
            "hits": [{"at": 1.5}, {"at": 2, "note": "two"}],
            "best": None,
            "raw": {"kept": None},
            "parsed": {"answer": None, "items": [None]},
        }


def test_annotations_leave_out_only_what_the_spec_implies() -> None:
    full = ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
    )
    assert compact_annotations(full).model_dump(exclude_none=True) == {"read_only_hint": True}
    writer = ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
    )
    assert compact_annotations(writer).model_dump(exclude_none=True) == {
        "read_only_hint": False,
        "destructive_hint": True,
        "open_world_hint": False,
    }


def _walk(node: object, path: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [(path, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    found += _walk(sub, f"{path}/{key}/{name}")
            elif isinstance(value, dict | list):
                found += _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _walk(value, f"{path}/{i}")
    return found


def test_schemas_are_clean_for_strict_clients() -> None:
    """No pydantic titles, no empty (`{}`) schema such as `items: {}`, no `default: null`, no float ints."""
    server = build_server(Settings.from_sources(env={}, toolsets="all"))
    for t in anyio.run(server.list_tools):
        for role, schema in (("input", t.input_schema), ("output", t.output_schema)):
            for path, node in _walk(schema):
                where = f"{t.name} {role}{path}"
                if isinstance(node, dict) and not path.endswith(("/enum", "/required", "/type")):
                    assert node != {}, f"empty schema at {where}"
                    assert "title" not in node or not isinstance(node["title"], str), where
                    assert node.get("default", 0) is not None, f"default null at {where}"
                    for key in ("default", "minimum", "maximum"):
                        value = node.get(key)
                        assert not (isinstance(value, float) and value.is_integer()), where
        assert t.annotations and t.annotations.title is None, "the title travels once, as Tool.title"
    parsed = next(t for t in anyio.run(server.list_tools) if t.name == "create_response").output_schema
    # Any JSON value; a null answer is left out of the result, so null needs no room here.
    assert parsed and parsed["properties"]["parsed"]["type"] == [
        "object",
        "array",
        "string",
        "number",
        "boolean",
    ]


def test_tools_list_stays_within_its_byte_budget() -> None:
    """The listing every agent pays for: per default tool, at most half of what it was on main before
    it was shrunk (issue 9 item 20; 17 tools then, so new default tools get the same per-tool budget
    and no more), with the SDK's own schemas as a second yardstick that follows every field anyone
    adds (see bench/tools_list.py and the README for the figures)."""
    from bench.tools_list import RECORDED, RECORDED_TOOLS, _listing

    now, unshrunk = _listing(shaped=True), _listing(shaped=False)
    assert now["tools"] >= RECORDED_TOOLS
    assert now["total"] / now["tools"] <= 0.5 * RECORDED["total"] / RECORDED_TOOLS, now
    assert now["input_schemas"] + now["output_schemas"] <= 0.52 * (
        unshrunk["input_schemas"] + unshrunk["output_schemas"]
    ), (now, unshrunk)
