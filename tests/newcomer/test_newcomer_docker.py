"""The Dockerfile, checked without Docker: its structure, then its install and its command, replayed.

The replay copies what the build stage copies, installs it non-editable into a fresh venv (no network:
the fresh venv sees this venv's dependencies through a .pth file), and runs the image's entrypoint with
the image's ENV, as `docker run … tl-mcp serve --transport http` would, until `/healthz` says 200.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from newcomer_support import ROOT, free_port, start_http_server, stop

from tl_mcp.cli import build_parser
from tl_mcp.healthcheck import probe

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    logical = text.replace("\\\n", " ")
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {args}"
    return value


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text("utf-8"))


def test_multi_stage_build_copies_only_the_venv(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a build stage and a slim runtime stage"
    build, final = stages[0], stages[-1]
    assert build.name, "the build stage is named, so the final stage can copy from it"
    assert any(f"--from={build.name}" in args for args in final.all("COPY"))
    assert any("pip install" in args for args in build.all("RUN"))
    assert not any("pip install" in args for args in final.all("RUN")), "no build tools in the runtime"


def test_build_stage_copies_files_that_exist(stages: list[Stage]) -> None:
    for args in stages[0].all("COPY"):
        sources = args.split()[:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"


def test_runtime_is_non_root_with_a_real_healthcheck_and_entrypoint(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.all("USER")
    assert users and users[-1] not in ("root", "0"), "the server must not run as root"
    (health,) = final.all("HEALTHCHECK")
    command = exec_form(health.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-m"] and command[2] == "tl_mcp.healthcheck"
    assert (ROOT / "tl_mcp" / "healthcheck.py").is_file()
    (entrypoint,) = final.all("ENTRYPOINT")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert exec_form(entrypoint) == ["tl-mcp"] and "tl-mcp" in scripts
    (cmd,) = final.all("CMD")
    assert build_parser().parse_args(exec_form(cmd)).command == "serve"
    env = final.env()
    assert final.all("EXPOSE") == [env["TL_MCP_PORT"]], "EXPOSE the port the server listens on"
    assert env["TL_MCP_HOST"] == "0.0.0.0", "inside a container the server must listen beyond loopback"


@pytest.mark.e2e
def test_the_image_install_and_command_serve_healthz(stages: list[Stage], tmp_path: Path) -> None:
    build, final = stages[0], stages[-1]
    src = tmp_path / "src"
    src.mkdir()
    for args in build.all("COPY"):
        *sources, _dest = args.split()
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, src / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, src / source)

    venv = tmp_path / "opt-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}, scheme="venv"))
    site.mkdir(parents=True, exist_ok=True)
    # Dependencies (and pip itself) come from this venv; tl_mcp itself must come from the fresh install.
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n", "utf-8")
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [str(python), "-c", "import tl_mcp; print(tl_mcp.__file__)"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), "the installed copy, not the checkout"

    home = tmp_path / "home" / "tlmcp"
    home.mkdir(parents=True)
    image_env = final.env().items()
    env = {k: v.replace("/opt/venv", str(venv)).replace("/home/tlmcp", str(home)) for k, v in image_env}
    env["PATH"] = env["PATH"].replace("$PATH", "/usr/bin:/bin")
    port = free_port()
    # Only the bind address and port differ from the image: a test must not listen on every interface.
    env.update(TL_MCP_HOST="127.0.0.1", TL_MCP_PORT=str(port), HOME=str(home))
    entrypoint = exec_form(final.all("ENTRYPOINT")[0])
    argv = [str(venv / "bin" / entrypoint[0]), *exec_form(final.all("CMD")[0]), "--transport", "http"]
    server = start_http_server(argv, env, tmp_path / "server.log", cwd=home, port=port, token="")
    try:
        healthy, reason = probe(argv, env)
        assert healthy, reason
        assert (home / "sandbox").is_dir(), "sandbox data goes where the image's ENV says"
    finally:
        stop(server.proc)
