"""The `tl-mcp` command line: argument defaults, the generated tool reference, and the demo stub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tl_mcp import cli
from tl_mcp.server.registry import all_tools

README = Path(__file__).resolve().parents[2] / "README.md"


def test_bare_command_and_flags_mean_serve(tmp_path: Path) -> None:
    assert cli.parse_args([]).command == "serve"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    args = cli.parse_args(
        ["--transport=http", "--port=9", "--allow-dir", str(a), "--allow-dir", str(b), "--read-only"]
    )
    assert (args.command, args.transport, args.port, args.allowed_dirs, args.read_only) == (
        "serve",
        "http",
        9,
        [str(a), str(b)],
        True,
    )
    settings = cli._settings(args)
    assert settings.transport == "http" and settings.read_only and settings.allowed_dirs == (a, b)
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


@pytest.mark.parametrize(
    ("flags", "env", "fragment"),
    [
        (["--auth-token", ""], {}, "token number 1 is empty"),
        (["--auth-token", "   "], {}, "token number 1 is empty"),
        (["--auth-token", "abc"], {}, "shorter than 16 characters"),
        ([], {"TL_MCP_AUTH_TOKENS": " "}, "TL_MCP_AUTH_TOKENS: it is set but holds no token"),
        ([], {"TL_MCP_AUTH_TOKENS": ""}, "TL_MCP_AUTH_TOKENS: it is set but holds no token"),
        (["--allow-dir", ""], {}, "empty folder name would allow the current directory"),
        (["--allow-dir", "/"], {}, "root of the file system"),
        (["--allow-dir", "media"], {}, "'media' is relative"),
        (["--allow-dir", "/nonexistent-tl-mcp-folder"], {}, "does not exist"),
    ],
)
def test_serve_refuses_unsafe_settings_before_starting(
    tmp_path: Path, flags: list[str], env: dict[str, str], fragment: str
) -> None:
    """The real process, started from `/` (where an empty folder would have meant everything)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    clean.update({"TL_MCP_SANDBOX_DIR": str(tmp_path / "sandbox"), "PYTHONPATH": str(README.parent), **env})
    proc = subprocess.run(
        [sys.executable, "-m", "tl_mcp.cli", "serve", *flags],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean,
        cwd="/",
        timeout=120,
    )
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr:\n{proc.stderr[-2000:]}"
    assert fragment in proc.stderr and proc.stderr.startswith("tl-mcp: invalid setting"), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "sandbox").exists(), "it started the backend before refusing"
