"""The `tl-mcp` command line: argument defaults, the generated tool reference, and the demo stub."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tl_mcp import cli
from tl_mcp.server.registry import all_tools

README = Path(__file__).resolve().parents[2] / "README.md"


def test_bare_command_and_flags_mean_serve() -> None:
    assert cli.parse_args([]).command == "serve"
    args = cli.parse_args(
        ["--transport=http", "--port=9", "--allow-dir", "/a", "--allow-dir", "/b", "--read-only"]
    )
    assert (args.command, args.transport, args.port, args.allowed_dirs, args.read_only) == (
        "serve",
        "http",
        9,
        ["/a", "/b"],
        True,
    )
    settings = cli._settings(args)
    assert (
        settings.transport == "http"
        and settings.read_only
        and [str(d) for d in settings.allowed_dirs]
        == [
            "/a",
            "/b",
        ]
    )
    sandbox = cli.parse_args(["sandbox", "--port", "9100", "--data-dir", "/tmp/x"])
    assert (sandbox.command, sandbox.port, sandbox.data_dir) == ("sandbox", 9100, "/tmp/x")


def test_tools_prints_every_tool_from_live_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tools"]) == 0
    out = capsys.readouterr().out
    for spec in all_tools():
        assert f"`{spec.name}`" in out
    assert out.startswith("| Toolset | Tool |")


def test_update_readme_rewrites_only_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(f"intro\n{cli.TOOLS_START}\nSTALE-BLOCK\n{cli.TOOLS_END}\noutro\n")
    assert cli.main(["tools", "--update-readme", str(doc)]) == 0
    text = doc.read_text()
    assert (
        text.startswith("intro\n")
        and text.endswith(f"{cli.TOOLS_END}\noutro\n")
        and "STALE-BLOCK" not in text
    )
    assert "`create_response`" in text
    assert not cli.update_readme(doc, anyio.run(cli.tool_reference))
    (tmp_path / "plain.md").write_text("no markers")
    assert cli.main(["tools", "--update-readme", str(tmp_path / "plain.md")]) == 2


def test_readme_tool_reference_is_current() -> None:
    text = README.read_text("utf-8")
    start, end = text.index(cli.TOOLS_START) + len(cli.TOOLS_START), text.index(cli.TOOLS_END)
    stale = "README tool table is stale: run `tl-mcp tools --update-readme README.md`"
    assert text[start:end] == "\n" + anyio.run(cli.tool_reference), stale


def test_bad_setting_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--toolsets", "bogus"]) == 2
    assert "unknown toolset" in capsys.readouterr().err
