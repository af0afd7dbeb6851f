"""The README and the client-config examples tell the truth: real flags, real settings, real tools.

Every snippet a newcomer may paste is parsed with the CLI's own argparse parser and checked against
the names the code reads, and every command the README shows is mapped to the test (or make target)
that runs it, so a new command cannot slip in untested.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from newcomer_support import README, ROOT, clean_env

from tl_mcp.cli import TOOLS_END, TOOLS_START, _settings, build_parser, update_readme
from tl_mcp.config import Settings
from tl_mcp.server.registry import all_tools

ENV_NAME = re.compile(r"\b(?:TWELVELABS|TL_MCP)_[A-Z0-9_]*[A-Z0-9]\b")
CONFIG_START, CONFIG_END = "<!-- config:start -->", "<!-- config:end -->"
#: Read by the test suite rather than the package; documented for contributors.
TEST_ONLY_ENV = {"TL_MCP_TEST_INSPECTOR", "TL_MCP_TEST_CONFORMANCE", "TL_MCP_TEST_ARTIFACTS"}


def readme() -> str:
    return README.read_text("utf-8")


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def shell_commands(text: str) -> Iterator[str]:
    """Each command of the README's bash blocks, with `\\` continuations joined and comments dropped."""
    for block in fenced(text, "bash"):
        joined = re.sub(r"\\\n\s*", " ", block)
        for raw in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", raw).strip()
            if line and not line.startswith("#"):
                yield line


def known_env() -> set[str]:
    """Every TWELVELABS_*/TL_MCP_* name some module of the package actually reads."""
    names: set[str] = set()
    for path in (ROOT / "tl_mcp").rglob("*.py"):
        for literal in re.findall(r"[\"']((?:TWELVELABS|TL_MCP)_[A-Z0-9_]+)[\"']", path.read_text("utf-8")):
            names.add(literal)
    return names | TEST_ONLY_ENV


def parse_tl_mcp(args: list[str]) -> argparse.Namespace:
    """What `tl-mcp ARGS` would do, via the CLI's parser (the bare `tl-mcp` means `tl-mcp serve`)."""
    from tl_mcp.cli import COMMANDS

    if not args or args[0] not in (*COMMANDS, "-h", "--help", "--version"):
        args = ["serve", *args]
    try:
        return build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"`tl-mcp {' '.join(args)}` is not a valid command line") from exc


def tl_mcp_args(command: str) -> list[str] | None:
    """The arguments given to tl-mcp in a shell command, or None when it does not run tl-mcp."""
    words = shlex.split(command)
    if words[0] in ("pip", "make", "apt-get") or words[:2] == ["docker", "build"]:
        return None
    if "tl-mcp" not in words:
        return None
    args = words[words.index("tl-mcp") + 1 :]
    if words[0] == "npx":
        # The Inspector takes its own options after the server command; they are not tl-mcp's.
        out, skip = [], False
        for word in args:
            if skip:
                skip = False
            elif word in ("--method", "--tool-name", "--tool-arg", "--uri"):
                skip = True
            else:
                out.append(word)
        args = out
    return args


def server_entries(config: dict[str, Any]) -> list[dict[str, Any]]:
    servers = config.get("mcpServers") or config.get("servers") or {}
    assert servers, "a client config names at least one server"
    return list(servers.values())


# ------------------------------------------------------------------------------------------ snippets


def test_readme_json_snippets_and_example_configs_use_real_flags_and_settings() -> None:
    configs = [(f"README block {i}", b) for i, b in enumerate(fenced(readme(), "json"))]
    configs += [(p.name, p.read_text("utf-8")) for p in sorted((ROOT / "examples").glob("*.json"))]
    assert len(configs) >= 4
    env_names = known_env()
    for where, text in configs:
        config = json.loads(text)
        for entry in server_entries(config):
            assert entry["command"] == "tl-mcp", where
            ns = parse_tl_mcp(list(entry.get("args", [])))
            assert ns.command == "serve", where
            unknown = set(entry.get("env", {})) - env_names
            assert not unknown, f"{where}: {unknown} is not a setting tl-mcp reads"


def test_readme_shell_commands_name_real_flags() -> None:
    parsed = 0
    for command in shell_commands(readme()):
        args = tl_mcp_args(command)
        if args is not None:
            parse_tl_mcp(args)
            parsed += 1
    assert parsed >= 4


def test_every_setting_named_in_the_readme_exists() -> None:
    unknown = set(ENV_NAME.findall(readme())) - known_env()
    assert not unknown, f"the README names settings no code reads: {sorted(unknown)}"


def _config_rows() -> list[list[str]]:
    text = readme()
    block = text[text.index(CONFIG_START) : text.index(CONFIG_END)]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in block.splitlines()
        if line.startswith("| `")
    ]
    assert rows, "the config table is empty"
    return rows


def _field(env: str) -> str:
    return env.removeprefix("TWELVELABS_").removeprefix("TL_MCP_").lower()


#: A value for each setting that differs from its default, as the environment would spell it.
SAMPLE = {
    "api_key": "tlk_sample",
    "base_url": "http://127.0.0.1:8100/v1.3",
    "backend": "sandbox",
    "sandbox_dir": "/tmp/tl-mcp-sandbox-sample",
    "sandbox_analyzers": "none",
    "sandbox_answerer": "extractive",
    "sandbox_llm_model": "/tmp/model.gguf",
    "sandbox_llm_url": "http://127.0.0.1:11434/v1",
    "sandbox_llm_name": "qwen2.5:1.5b",
    "sandbox_llm_timeout_s": "5",
    "sandbox_stream_delay_s": "0.05",
    "transport": "http",
    "host": "0.0.0.0",
    "port": "8123",
    "max_connections": "7",
    "read_timeout_s": "3.5",
    "auth_tokens": "token-a-0123456789abcdef",
    "allowed_hosts": "mcp.example.com",
    "allowed_origins": "https://app.example.com",
    "allowed_dirs": "/tmp",
    "allowed_write_dirs": "/tmp",
    "toolsets": "jockey",
    "read_only": "1",
    "log_level": "DEBUG",
    "state_keys": "k" * 40,
    "oauth_issuer": "https://auth.example.com",
    "oauth_resource_url": "https://mcp.example.com/mcp",
    "oauth_audience": "api://tl-mcp",
    "oauth_jwks": "https://auth.example.com/jwks.json",
    "oauth_public_key_file": "/etc/tl-mcp/issuer.pem",
    "oauth_scopes": "mcp:use",
    "max_jobs": "50",
    "max_jobs_per_client": "5",
    "job_lifetime_s": "600",
    "poll_initial_s": "1",
    "poll_max_s": "10",
    "redis_url": "redis://:pw-sample@127.0.0.1:6390/1",
    "replica_timeout_s": "5",
    "log_format": "json",
    "max_body_bytes": "4096",
    "max_argument_chars": "1000",
    "tool_concurrency": "2",
    "tool_calls_per_minute": "30",
    "upstream_concurrency": "2",
    "upstream_requests_per_minute": "60",
    "tenant_keys": "1",
}
#: Secrets with no flag: they would show in process lists (a Redis URL may hold its password).
NO_FLAG = {"api_key", "state_keys", "redis_url"}


def test_config_table_matches_the_settings_model() -> None:
    rows = _config_rows()
    by_field = {_field(row[0].strip("`")): row for row in rows}
    assert set(by_field) == set(Settings.model_fields), "one row per setting, no more, no less"
    assert set(SAMPLE) == set(Settings.model_fields)
    defaults = Settings.from_sources(env={})
    for name, (env_cell, flag_cell, default_cell, meaning) in by_field.items():
        env = env_cell.strip("`")
        assert meaning, f"{env} needs a meaning"
        # The variable really sets the field.
        via_env = Settings.from_sources(env={env: SAMPLE[name]})
        assert getattr(via_env, name) != getattr(defaults, name), f"{env} does not change {name}"
        # So does the flag, through the CLI's own parsing.
        flags = re.findall(r"`(--[a-z-]+)`", flag_cell)
        if name in NO_FLAG:
            assert flag_cell == "—", f"{env} has no flag: it would show in process lists"
            continue
        assert len(flags) == 1, f"{env}: flag cell {flag_cell!r}"
        ns = parse_tl_mcp(
            ["serve", flags[0]] if name in ("read_only", "tenant_keys") else ["serve", flags[0], SAMPLE[name]]
        )
        assert getattr(_settings(ns), name) != getattr(defaults, name), f"{flags[0]} does not change {name}"
        # Literal defaults are the model's.
        literal = re.fullmatch(r"`([^`]+)`", default_cell)
        if literal:
            assert literal.group(1) == str(getattr(defaults, name)), f"{env} default"
        elif default_cell in ("off", "none", "—"):
            assert not getattr(defaults, name), f"{env} default is {getattr(defaults, name)!r}"


# ------------------------------------------------------------------------------------------ tools


@pytest.fixture(scope="module")
def tools_output() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tl_mcp.cli", "tools"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tl_mcp_tools_lists_every_tool(tools_output: str) -> None:
    for spec in all_tools():
        assert f"| {spec.toolset} | `{spec.name}` |" in tools_output, spec.name


def test_readme_tool_table_is_up_to_date(tools_output: str, tmp_path: Path) -> None:
    text = readme()
    block = text[text.index(TOOLS_START) + len(TOOLS_START) : text.index(TOOLS_END)]
    assert block.strip() == tools_output.strip(), "the README's tool table is stale: run `make tools-doc`"
    # `tl-mcp tools --update-readme` (what `make tools-doc` runs) then has nothing to change.
    copy = tmp_path / "README.md"
    copy.write_text(text, "utf-8")
    assert update_readme(copy, tools_output) is False


# ------------------------------------------------------------------------------------------ coverage

#: Every command the README shows, and what exercises it. A new README command needs a line here.
COVERED_BY: list[tuple[str, str]] = [
    (r"^make demo$", "tests/newcomer/test_newcomer_demo.py runs `tl-mcp demo`, which make demo runs"),
    (r"^make test$", ".ci/run runs it"),
    (r"^make test-slow$", ".ci/run runs it after make test"),
    (r"^make test-llm$", ".ci/run runs it last"),
    (r"^make bench$", "tests of bench/ (bench smoke test)"),
    (r"^make tools-doc$", "test_readme_tool_table_is_up_to_date (tl-mcp tools --update-readme)"),
    (r"^pip install( -e)? '?(\.|tl-mcp)(\[[a-z,]+\])?'?$", "test_newcomer_docker.py installs the package"),
    (r"^claude mcp add ", "test_readme_shell_commands_name_real_flags parses it"),
    (r"^tl-mcp serve --transport http ", "http_server fixture + test_newcomer_examples.py"),
    (r"^npx -y @modelcontextprotocol/inspector --cli tl-mcp ", "test_newcomer_inspector.py"),
    (r"^docker build ", "test_newcomer_docker.py (Dockerfile structure, the image's install and command)"),
    (r"^docker run .* tl-mcp serve --transport http$", "test_newcomer_docker.py runs the image's command"),
]


def test_every_readme_command_is_exercised() -> None:
    uncovered = [
        command
        for command in shell_commands(readme())
        if not any(re.search(pattern, command) for pattern, _ in COVERED_BY)
    ]
    assert not uncovered, f"README commands no test exercises (add one, then a COVERED_BY entry): {uncovered}"
