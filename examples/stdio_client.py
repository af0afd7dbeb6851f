"""Use tl-mcp from your own code over stdio, with the `mcp` SDK client.

    python examples/stdio_client.py path/to/video.mp4 [--query "fresh apples"]

It starts `tl-mcp serve` as a subprocess (the TwelveLabs cloud when TWELVELABS_API_KEY is set, else the
offline sandbox), creates an index, uploads the video with `wait_s=0` so the call hands back a job
handle, follows that job with `wait_for_task` while printing its progress, then searches the video.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters


async def on_progress(progress: float, total: float | None, message: str | None) -> None:
    """Every MCP progress notification of a call lands here: bytes uploaded, status changes, heartbeats."""
    if total:
        print(f"  {progress / total:6.1%}  {message or ''}")
    elif message:
        print(f"  …       {message}")


def structured(result: Any) -> dict[str, Any]:
    if result.is_error:
        sys.exit(f"tool error: {result.content[0].text}")
    data: dict[str, Any] = result.structured_content
    return data


async def main(video: Path, query: str, sandbox_dir: str | None) -> None:
    # `tl-mcp serve` does the same; `python -m tl_mcp.cli` also works from a checkout without installing.
    args = ["-m", "tl_mcp.cli", "serve", "--allow-dir", str(video.parent)]
    if sandbox_dir:
        args += ["--sandbox-dir", sandbox_dir]
    # The SDK hands the subprocess only a few safe variables (PATH, HOME, …): pass our settings on.
    env = {k: v for k, v in os.environ.items() if k.startswith(("TWELVELABS_", "TL_MCP_"))}
    server = StdioServerParameters(command=sys.executable, args=args, env=env)

    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        print(f"{len(tools)} tools: {', '.join(t.name for t in tools)}")

        index = structured(await client.call_tool("create_index", {"name": f"example-{os.getpid()}"}))
        print(f"index {index['id']}")

        # wait=true asks for the indexing too; wait_s=0 returns at once with a job handle to follow.
        print(f"uploading {video.name}")
        upload = structured(
            await client.call_tool(
                "upload_asset",
                {"path": str(video), "index_id": index["id"], "wait": True, "wait_s": 0},
                progress_callback=on_progress,
            )
        )
        while upload["status"] == "in_progress":
            print(f"job handle {upload['job_id']}: still running server-side, following it")
            waited = structured(
                await client.call_tool(
                    "wait_for_task", {"id": upload["job_id"], "wait_s": 60}, progress_callback=on_progress
                )
            )
            upload = waited["result"] if waited["done"] else upload
        print(f"video {upload['indexed_asset_id']} indexed: {upload['indexing_status']}")

        found = structured(
            await client.call_tool("search_videos", {"query": query, "index_id": index["id"], "limit": 3})
        )
        for m in found["moments"]:
            print(f"  {query!r} at {m['start']:.1f}–{m['end']:.1f} s in video {m['video_id']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--query", default="fresh apples")
    parser.add_argument("--sandbox-dir", help="where the offline sandbox keeps its data")
    ns = parser.parse_args()
    asyncio.run(main(ns.video.resolve(), ns.query, ns.sandbox_dir))
