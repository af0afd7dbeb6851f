"""`npm ci` of a client folder runs once when two test processes (xdist workers) need it at the same time:
`npm ci` starts by deleting node_modules, so a second install would pull it from under the first's tests.

A stand-in `npm` on PATH takes the place of the real one (this pins the helper, not npm).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from newcomer_support import npm_ci

FAKE_NPM = """#!/bin/sh
echo "$@" >> ../runs
rm -rf node_modules
sleep 0.5
mkdir node_modules
"""


def test_two_installs_of_one_folder_at_once_run_npm_ci_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    folder = tmp_path / "client"
    folder.mkdir()
    (folder / "package-lock.json").write_text('{"lockfileVersion": 3}')

    errors: list[BaseException] = []

    def install() -> None:
        try:
            npm_ci(folder, timeout=30)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=install) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert (tmp_path / "runs").read_text().splitlines() == ["ci --no-audit --no-fund --loglevel=error"]
    assert (folder / "node_modules" / ".tl-mcp-lock-sha256").is_file()
    # A changed lockfile is installed again.
    (folder / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {}}')
    npm_ci(folder, timeout=30)
    assert len((tmp_path / "runs").read_text().splitlines()) == 2
