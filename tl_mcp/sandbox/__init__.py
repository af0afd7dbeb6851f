"""A local TwelveLabs v1.3-compatible API with real storage and a real media engine.

Entry points: :func:`serve` (blocking, for ``tl-mcp sandbox``), :func:`main` (``python -m tl_mcp.sandbox``),
:func:`tl_mcp.sandbox.embedded.start_embedded` (in-process, ephemeral port) and
:func:`tl_mcp.sandbox.app.create_app`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "serve"]


def serve(
    host: str = "127.0.0.1", port: int = 8765, data_dir: Path | None = None, *, analyzers: str | None = None
) -> None:
    """Serve the sandbox until interrupted. ``data_dir`` defaults to TL_MCP_SANDBOX_DIR or the user dir."""
    import uvicorn

    from tl_mcp.http_guard import ConnectionLimits, uvicorn_config
    from tl_mcp.sandbox.app import create_app
    from tl_mcp.sandbox.config import SandboxConfig

    overrides: dict[str, object] = {}
    if analyzers is not None:
        overrides["analyzers"] = analyzers
    config = SandboxConfig.from_env(Path(data_dir) if data_dir else None, **overrides)
    app = create_app(config)
    logging.getLogger(__name__).info(
        "sandbox data in %s; serving http://%s:%d/v1.3", config.data_dir, host, port
    )
    limits = ConnectionLimits(config.max_connections, config.read_timeout_s)
    options = {"log_level": "info", "access_log": False, "timeout_graceful_shutdown": 5}
    uvicorn.Server(uvicorn_config(app, limits, host=host, port=port, **options)).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tl-mcp sandbox", description="Serve the local TwelveLabs-compatible API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--analyzers", default=None, help='"auto", "none" or a comma list (speech,ocr,text)')
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(args.host, args.port, args.data_dir, analyzers=args.analyzers)
    return 0
