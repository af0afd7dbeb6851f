"""A loopback stand-in for TwelveLabs whose video-embedding tasks never finish (or answer 503 for a while).

It speaks just enough of the API for `create_embedding(video_url=…)` and `wait_for_task` and records
when each task was checked, so tests can count requests and measure the gaps between them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.server.conftest import loopback_socket, serve_app
from tl_mcp.config import Settings

API_KEY = "tlk_fake_upstream_" + "k" * 24


class NeverFinishes:
    """Tasks stay `processing` forever; a task id listed in `busy` answers 503 + Retry-After that many times
    first and then `ready`."""

    def __init__(self, busy: dict[str, int] | None = None, retry_after_s: int = 1) -> None:
        self.created = 0
        self.checks: defaultdict[str, list[float]] = defaultdict(list)
        self._busy = dict(busy or {})
        self._retry_after_s = retry_after_s

    async def _create(self, request: Request) -> JSONResponse:
        self.created += 1
        return JSONResponse({"_id": f"task_{self.created}"}, status_code=201)

    async def _task(self, request: Request) -> JSONResponse:
        task_id = request.path_params["task_id"]
        self.checks[task_id].append(time.monotonic())
        if task_id in self._busy:
            if self._busy[task_id] > 0:
                self._busy[task_id] -= 1
                return JSONResponse(
                    {"code": "service_unavailable", "message": "busy"},
                    status_code=503,
                    headers={"retry-after": str(self._retry_after_s)},
                )
            return JSONResponse({"_id": task_id, "status": "ready", "data": []})
        return JSONResponse({"_id": task_id, "status": "processing"})

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve it on loopback for the block; yields the API root (…/v1.3)."""
        app = Starlette(
            routes=[
                Route("/v1.3/embed-v2/tasks", self._create, methods=["POST"]),
                Route("/v1.3/embed-v2/tasks/{task_id}", self._task, methods=["GET"]),
            ]
        )
        async with serve_app(app, loopback_socket()) as base:
            yield f"{base}/v1.3"


def fake_upstream_settings(api: str, tmp: Path, **env: str) -> Settings:
    return Settings.from_sources(
        env={
            "TWELVELABS_API_KEY": API_KEY,
            "TL_MCP_BACKEND": "sandbox",
            "TWELVELABS_BASE_URL": api,
            "TL_MCP_SANDBOX_DIR": str(tmp / "sandbox"),
            **env,
        }
    )
