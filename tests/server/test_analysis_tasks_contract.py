"""The requests list_analysis_tasks, cancel_analysis_task and delete_analysis_task send to the cloud,
checked against the OpenAPI snapshot, through a real MCP client on the cloud backend.

A loopback fake TwelveLabs records every request, checks its path and query parameters (names, and each
value against the parameter's schema) and answers as the contract does; its answers are checked against the
snapshot's response schemas too, so the tools are tested on what the cloud really sends.

Where the SDK 1.3.6 delta differs from the snapshot, the delta wins (shared/reference/
twelvelabs-sdk-1.3.6-delta.md, "Status, list filter and cancel"): a task's status may be `canceled` (also
as a list filter), `POST /analyze/tasks/{task_id}/cancel` exists (200 `{task_id, status: "canceled"}`, on
repeats too; 409 for a task of a batch), and the `video_id` filter of `GET /analyze/tasks` is gone.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.api.conftest import Seen, check_against_spec
from tests.openapi_spec import load_spec, match_path, operation, resolve, validate_response
from tests.server.conftest import call_ok, loopback_socket, serve_app, text_of
from tl_mcp.config import Settings
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio

CANCEL_TASK = "/analyze/tasks/{task_id}/cancel"  # the delta's, not in the snapshot
TASKS, TASK = "/analyze/tasks", "/analyze/tasks/{task_id}"
BATCHES, BATCH = "/analyze/batches", "/analyze/batches/{batch_id}"
CANCEL_BATCH = "/analyze/batches/{batch_id}/cancel"
NOW = "2026-01-01T00:00:00Z"


def _param_schema(method: str, template: str, name: str) -> dict[str, Any]:
    for param in operation(method, template).get("parameters", []):
        param = resolve(param)
        if param.get("in") == "query" and param["name"] == name:
            schema: dict[str, Any] = copy.deepcopy(resolve(param["schema"]))
            return schema
    raise AssertionError(f"{method} {template}: no query parameter {name}")


def _check_values(seen: Seen) -> None:
    """Each query value against its parameter's schema (a repeated parameter is an array's items)."""
    assert seen.template is not None
    for name in set(seen.params.keys()):
        schema = _param_schema(seen.method, seen.template, name)
        if (seen.template, name) == (TASKS, "status"):
            schema["enum"] = [*schema["enum"], "canceled"]  # the delta's new status
        if schema.get("type") == "array":
            schema = resolve(schema["items"])
        values: list[Any] = seen.params.get_list(name)
        if schema.get("type") == "integer":
            values = [int(v) for v in values]
        assert len(values) == 1 or seen.template == BATCHES or name == "status", (name, values)
        for value in values:
            errors = list(Draft202012Validator(schema).iter_errors(value))
            assert not errors, f"{seen.method} {seen.template}: {name}={value!r}: {errors[0].message}"


class FakeCloud:
    """Tasks and batches the way the cloud keeps them: a task `processing` until cancelled, a batch
    `processing` until cancelled (then `canceling`), deletion refused (409) while not ended."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.violations: list[str] = []
        self.tasks: dict[str, str] = {"t_run": "processing", "t_done": "ready", "t_batch": "processing"}
        self.batches: dict[str, str] = {"b_run": "processing", "b_done": "completed"}

    def task(self, task_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task_id": task_id,
            "custom_id": None,
            "status": self.tasks[task_id],
            "video_source": {"type": "asset_id", "asset_id": "asset_1"},
            "request_params": {"analysis_mode": "time_based_metadata"},
            "created_at": NOW,
        }
        if task_id == "t_batch":
            body["batch_id"] = "b_run"
        return body

    def batch(self, batch_id: str) -> dict[str, Any]:
        status = self.batches[batch_id]
        ended = status == "completed"
        counts = {"queued_items": 0 if ended else 1, "processing_items": 0 if ended else 1}
        return {
            "batch_id": batch_id,
            "status": status,
            "analysis_mode": "general",
            "model_name": "pegasus1.5",
            "total_items": 2,
            **counts,
            "ready_items": 2 if ended else 0,
            "failed_items": 0,
            "canceled_items": 0,
            "created_at": NOW,
            "expires_at": "2026-01-02T00:00:00Z",
        }

    def answer(self, seen: Seen) -> tuple[int, Any]:
        route, ident = seen.template, seen.path.split("/")[3] if seen.path.count("/") >= 3 else None
        if route == TASKS:
            return 200, {"data": [self.task(t) for t in self.tasks], "page_info": _page(len(self.tasks))}
        if route == BATCHES:
            return 200, {"data": [self.batch(b) for b in self.batches], "page_info": _page(len(self.batches))}
        known = self.tasks if route in (TASK, CANCEL_TASK) else self.batches
        if ident not in known:
            return 404, {"error": {"code": "resource_not_exists", "message": f"{ident} does not exist."}}
        if route == TASK and seen.method == "GET":
            return 200, self.task(ident)
        if route == BATCH and seen.method == "GET":
            return 200, self.batch(ident)
        if route == CANCEL_TASK:
            if ident == "t_batch":
                return 409, {"error": {"code": "task_in_batch", "message": "Cancel it through its batch."}}
            if self.tasks[ident] == "ready":
                return 409, {"error": {"code": "task_not_cancelable", "message": "The task is ready."}}
            self.tasks[ident] = "canceled"
            return 200, {"task_id": ident, "status": "canceled"}
        if route == CANCEL_BATCH:
            self.batches[ident] = "canceling"
            return 202, self.batch(ident)
        # DELETE
        status = known[ident]
        if status in ("processing", "canceling", "queued", "pending"):
            return 409, {"error": {"code": "not_terminal", "message": "Still being processed."}}
        del known[ident]
        return 200, None

    async def handle(self, request: Request) -> Response:
        path = "/" + request.url.path.removeprefix("/v1.3/")
        template = match_path(path)
        if template is None and path.startswith("/analyze/tasks/") and path.endswith("/cancel"):
            template = CANCEL_TASK
        seen = Seen(
            request.method,
            path,
            httpx2.QueryParams(list(request.query_params.multi_items())),
            httpx2.Headers(list(request.headers.items())),
            await request.body(),
            template,
        )
        self.seen.append(seen)
        if template is None:
            self.violations.append(f"{request.method} {path}: not an operation of the snapshot or the delta")
            return Response(status_code=404)
        status, body = self.answer(seen)
        try:
            if template != CANCEL_TASK:
                check_against_spec(seen)
                _check_values(seen)
                if body is not None and "canceled" not in json.dumps(body):
                    validate_response(seen.method, template, status, body)
            else:
                assert seen.method == "POST" and not seen.body and not seen.params, seen
        except AssertionError as exc:
            self.violations.append(str(exc))
        if body is None:
            return Response(status_code=status)
        return JSONResponse(body, status)

    def sent(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen]


def _page(total: int) -> dict[str, Any]:
    return {"page": 1, "limit_per_page": 20, "total_page": 1, "total_results": total}


@pytest.fixture
async def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> AsyncIterator[tuple[Settings, FakeCloud]]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # the cloud backend's state folder
    fake = FakeCloud()
    app = Starlette(routes=[Route("/v1.3/{path:path}", fake.handle, methods=["GET", "POST", "DELETE"])])
    async with serve_app(app, loopback_socket()) as base:
        settings = Settings.from_sources(
            env={
                "TWELVELABS_API_KEY": "tlk_fake_cloud_key_0123456789",
                "TL_MCP_BACKEND": "cloud",
                "TWELVELABS_BASE_URL": f"{base}/v1.3",
            },
            toolsets="analysis_tasks,admin",
        )
        yield settings, fake


async def test_listing_sends_every_filter_the_contract_takes(cloud: tuple[Settings, FakeCloud]) -> None:
    settings, api = cloud
    async with Client(build_server(settings)) as c:
        tasks = await call_ok(
            c,
            "list_analysis_tasks",
            {
                "status": ["processing", "canceled"],
                "asset_id": "asset_1",
                "video_url": "https://example.com/a.mp4",
                "analysis_mode": "time_based_metadata",
                "page": 2,
                "page_limit": 5,
            },
        )
        batches = await call_ok(
            c, "list_analysis_tasks", {"kind": "batch", "status": ["completed"], "analysis_mode": "general"}
        )
    assert api.violations == []
    first, second = api.seen
    assert first.params.get_list("status") == ["processing", "canceled"]
    assert dict(first.params) | {"status": None} == {
        "page": "2",
        "page_limit": "5",
        "status": None,
        "asset_id": "asset_1",
        "video_url": "https://example.com/a.mp4",
        "analysis_mode": "time_based_metadata",
    }
    assert second.params.get_list("analysis_mode") == ["general"] and second.params["status"] == "completed"
    rows = tasks.structured_content and tasks.structured_content["tasks"]
    assert rows and [r["task_id"] for r in rows] == ["t_run", "t_done", "t_batch"]
    assert rows[2]["batch_id"] == "b_run" and rows[0]["source"] == "asset_1"
    # The first running task is the one the hint offers to stop.
    assert 'cancel_analysis_task(task_id="t_run")' in text_of(tasks)
    assert batches.structured_content and batches.structured_content["kind"] == "batch"
    assert "b_run" in text_of(batches)


async def test_cancel_and_delete_send_what_the_contract_takes_and_pass_on_its_refusals(
    cloud: tuple[Settings, FakeCloud],
) -> None:
    settings, api = cloud
    async with Client(build_server(settings)) as c:
        refused = await c.call_tool("delete_analysis_task", {"task_id": "t_run"})
        assert refused.is_error and 'cancel_analysis_task(task_id="t_run")' in text_of(refused)
        assert "HTTP 409" in text_of(refused) and "Nothing was changed." in text_of(refused)
        # The refusal's own next step, not the generic one of a 409 (a name already taken).
        assert "pick another name" not in text_of(refused), text_of(refused)
        one = await call_ok(c, "cancel_analysis_task", {"task_id": "t_run"})
        two = await call_ok(c, "cancel_analysis_task", {"task_id": "t_run"})
        assert one.structured_content and one.structured_content["canceled"] is True
        assert two.structured_content and two.structured_content["canceled"] is False
        await call_ok(c, "delete_analysis_task", {"task_id": "t_run"})
        ended = await call_ok(c, "cancel_analysis_task", {"task_id": "t_done"})
        assert ended.structured_content and ended.structured_content["task_status"] == "ready"
        in_batch = await c.call_tool("cancel_analysis_task", {"task_id": "t_batch"})
        assert in_batch.is_error and 'cancel_analysis_task(batch_id="b_run")' in text_of(in_batch)

        refused_batch = await c.call_tool("delete_analysis_task", {"batch_id": "b_run"})
        assert refused_batch.is_error and 'cancel_analysis_task(batch_id="b_run")' in text_of(refused_batch)
        stopping = await call_ok(c, "cancel_analysis_task", {"batch_id": "b_run"})
        assert stopping.structured_content == {
            "backend": "cloud",
            "batch_id": "b_run",
            "task_status": "canceling",
            "canceled": True,
            "items": "0 of 2 done (0 ready, 0 failed, 0 canceled)",
        }
        again = await call_ok(c, "cancel_analysis_task", {"batch_id": "b_run"})
        assert again.structured_content and again.structured_content["canceled"] is False
        await call_ok(c, "delete_analysis_task", {"batch_id": "b_done"})
    assert api.violations == []
    assert api.sent() == [
        ("DELETE", "/analyze/tasks/t_run"),
        ("GET", "/analyze/tasks/t_run"),
        ("POST", "/analyze/tasks/t_run/cancel"),
        ("GET", "/analyze/tasks/t_run"),
        ("DELETE", "/analyze/tasks/t_run"),
        ("GET", "/analyze/tasks/t_done"),
        ("GET", "/analyze/tasks/t_batch"),
        ("DELETE", "/analyze/batches/b_run"),
        ("GET", "/analyze/batches/b_run"),
        ("POST", "/analyze/batches/b_run/cancel"),
        ("GET", "/analyze/batches/b_run"),
        ("DELETE", "/analyze/batches/b_done"),
    ]
    assert "t_run" not in api.tasks and "b_done" not in api.batches and api.batches["b_run"] == "canceling"


def test_the_snapshot_still_lacks_what_the_delta_adds() -> None:
    """If a newer snapshot adds the cancel route or the `canceled` status, the special cases above go."""
    spec = load_spec()
    assert CANCEL_TASK not in spec["paths"]
    assert "canceled" not in spec["components"]["schemas"]["AnalyzeTaskStatus"]["enum"]
