"""Use a remote tl-mcp over streamable HTTP with a bearer token, and watch Jockey answer live.

    tl-mcp serve --transport http --port 8000 --auth-token "${TOKEN:?set TOKEN}" --allow-dir "$PWD/media"
    python examples/http_client.py --url http://127.0.0.1:8000/mcp --token "$TOKEN" "$PWD/media/clip.mp4"

It creates a knowledge store, uploads the video into it (the path is read by the server, so it must be
inside one of the server's --allow-dir folders), then asks Jockey a question with `wait_s=0`: the call
returns at once with a job handle, and `wait_for_task` streams the answer as progress notifications.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def structured(result: Any) -> dict[str, Any]:
    if result.is_error:
        sys.exit(f"tool error: {result.content[0].text}")
    data: dict[str, Any] = result.structured_content
    return data


async def print_status(progress: float, total: float | None, message: str | None) -> None:
    if message:
        print(f"  … {message}")


async def print_text(progress: float, total: float | None, message: str | None) -> None:
    """Jockey's progress messages are the answer's new text; `progress` counts its characters so far."""
    if message:
        print(message, end="", flush=True)


async def main(url: str, token: str | None, video: Path, question: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # A long read timeout: progress arrives as server-sent events on a response that stays open.
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        store = structured(await client.call_tool("create_knowledge_store", {"name": "http-example"}))
        print(f"knowledge store {store['id']}")

        upload = structured(
            await client.call_tool(
                "upload_asset",
                {"path": str(video), "knowledge_store_id": store["id"], "wait": True, "wait_s": 120},
                progress_callback=print_status,
            )
        )
        while upload["status"] == "in_progress":
            waited = structured(await client.call_tool("wait_for_task", {"id": upload["job_id"]}))
            upload = waited["result"] if waited["done"] else upload
        print(f"item {upload['item_id']}: {upload['item_status']}")

        # wait_s=0: hand back a job handle at once; the answer keeps streaming into the job meanwhile.
        asked = structured(
            await client.call_tool(
                "create_response", {"knowledge_store_id": store["id"], "input": question, "wait_s": 0}
            )
        )
        print(f"Q: {question}\njob handle {asked['job_id']} ({asked['status']}); streaming:\nA: ", end="")
        answer = asked
        while answer["status"] == "in_progress":
            waited = structured(
                await client.call_tool(
                    "wait_for_task", {"id": asked["job_id"], "wait_s": 60}, progress_callback=print_text
                )
            )
            answer = waited["result"] if waited["done"] else answer
        print()
        for cite in answer["citations"]:
            # A citation leaves out what it does not know (no time range for a whole-item citation).
            span = f"{cite.get('start_sec')}–{cite.get('end_sec')} s"
            print(f"  {cite['marker']} item {cite.get('item_id')} {span}")
        print(f"session {answer['session_id']} (continue_session takes it for a follow-up)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path, help="a video inside one of the server's --allow-dir folders")
    parser.add_argument("--url", default="http://127.0.0.1:8000/mcp")
    parser.add_argument("--token", help="a bearer token the server accepts (--auth-token)")
    parser.add_argument("--question", default="What does the video say about fresh apples?")
    ns = parser.parse_args()
    asyncio.run(main(ns.url, ns.token, ns.video.resolve(), ns.question))
