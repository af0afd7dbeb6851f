"""The `tl-mcp demo` flags, apart from the demo itself: every `tl-mcp` command line builds them, and only
`tl-mcp demo` needs the rest of `tl_mcp.demo`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUTPUT_DIR = Path("demo-output")
DEFAULT_TIMEOUT_S = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help="where the sample video, thumbnail, answers and server log go (default: ./demo-output)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the sandbox's data in OUTPUT_DIR/sandbox (default: a temporary folder, deleted)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"give up after this many seconds (default {DEFAULT_TIMEOUT_S:.0f})",
    )
