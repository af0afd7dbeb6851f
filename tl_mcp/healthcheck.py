"""Container health probe: `python -m tl_mcp.healthcheck`.

Docker's HEALTHCHECK runs this beside the server. It reads how PID 1 was started (or the argv given to
:func:`probe`); for `--transport http` it asks `/healthz` on the bound port, and for stdio it reports
healthy, since a stdio server has no port and is alive while its process is.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


def _flag(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def server_argv(pid: int = 1) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def probe(argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 3.0) -> tuple[bool, str]:
    """Return (healthy, reason) for a server started with `argv` under `env`."""
    transport = _flag(argv, "--transport") or env.get("TL_MCP_TRANSPORT") or "stdio"
    if transport != "http":
        return True, "stdio transport: no port to probe"
    port = _flag(argv, "--port") or env.get("TL_MCP_PORT") or "8000"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status = int(resp.status)
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} unreachable: {exc}"
    return status == 200, f"{url} answered {status}"


def main() -> int:
    healthy, reason = probe(server_argv(), os.environ)
    print(reason, file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
