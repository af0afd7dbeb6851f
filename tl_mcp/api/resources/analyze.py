"""Pegasus analysis: `/analyze` (one JSON answer or an NDJSON stream), `/analyze/tasks` (async) and
`/analyze/batches` (one request over many assets).

Creating a task or a batch is made safe to repeat: the request gets a `custom_id` derived from its
content (unless the caller set one) and the same value as its `Idempotency-Key` header. The cloud's
`custom_id` does not deduplicate (SDK 1.3.6: "use an Idempotency-Key header instead") and the header's
semantics are undocumented, so `create_task` also looks for a live task with that `custom_id` first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence

import httpx2
from pydantic import ValidationError

from .._http import Body, HTTPCore, Timeouts
from ..errors import StreamError, TwelveLabsError
from ..models._base import Page
from ..models.analyze import AnalyzeEvent, AnalyzeRequest, AnalyzeResult
from ..models.analyze_tasks import (
    AnalyzeBatch,
    AnalyzeBatchCreated,
    AnalyzeBatchRequest,
    AnalyzeTask,
    AnalyzeTaskCanceled,
    AnalyzeTaskCreated,
    BatchResult,
)
from ..streaming import AnalyzeAssembler, NDJSONDecoder, iter_with_idle_timeout
from ._base import Resource, seg

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: A task that ended this way did not produce what was paid for: a repeat may run again.
_SPENT = frozenset({"failed", "canceled"})


class Analyze(Resource):
    def __init__(self, http: HTTPCore, timeouts: Timeouts) -> None:
        super().__init__(http)
        self._timeouts = timeouts

    async def generate(self, request: AnalyzeRequest) -> AnalyzeResult:
        """The whole answer at once. Never retried: a generation is not idempotent."""
        body = request.to_wire(stream=False)
        response = await self._call("POST", "/analyze", json_body=body, idempotent=False)
        return self._parse(response, AnalyzeResult)

    async def stream(self, request: AnalyzeRequest) -> AsyncIterator[AnalyzeEvent]:
        """NDJSON stream of start / text / end events; `StreamError` (with the partial text) on early end.

        Wrap in `contextlib.aclosing(...)` if you may stop early, so the connection closes at once.
        """
        assembler = AnalyzeAssembler()
        decoder = NDJSONDecoder()
        body = Body(json=request.to_wire(stream=True))
        async with self._http.stream("POST", "/analyze", body=body) as response:
            try:
                async for chunk in iter_with_idle_timeout(response.aiter_raw(), self._timeouts.stream_idle):
                    for obj in decoder.feed(chunk):
                        for event in assembler.feed(obj):
                            yield event
            except (httpx2.TransportError, TwelveLabsError) as exc:
                raise StreamError(
                    f"the analyze stream broke: {exc}",
                    partial_text=assembler.text,
                ) from exc
            for obj in decoder.flush():
                for event in assembler.feed(obj):
                    yield event
            assembler.finish()

    async def create_task(self, request: AnalyzeRequest, *, reuse: bool = True) -> AnalyzeTaskCreated:
        """Start an async analysis, or (with `reuse`) find the live task this same request already started.

        `ValueError` when `max_tokens` is outside the documented range of the task's mode.
        """
        request.check_task_tokens()
        if request.custom_id is None:
            request = request.model_copy(update={"custom_id": request.derived_custom_id()})
        assert request.custom_id is not None
        existing = await self.find_live(request) if reuse else None
        if existing is not None:
            return AnalyzeTaskCreated(task_id=existing.task_id, status=existing.status, reused=True)
        response = await self._http.request(
            "POST",
            "/analyze/tasks",
            body=Body(json=request.to_wire()),
            headers={IDEMPOTENCY_HEADER: request.custom_id},
            # The key makes a repeat return the same task, so a lost answer may be asked again.
            idempotent=True,
        )
        return self._parse(response, AnalyzeTaskCreated)

    async def find_live(self, request: AnalyzeRequest) -> AnalyzeTask | None:
        """The live task an identical request started (by its custom_id, derived when unset)."""
        video = request.video
        custom_id = request.custom_id or request.derived_custom_id()
        return await self.find_task(custom_id, asset_id=video.asset_id if video else None)

    async def find_task(self, custom_id: str, *, asset_id: str | None = None) -> AnalyzeTask | None:
        """The newest task with `custom_id` that has not failed or been canceled, among the latest 50."""
        page = await self.list_tasks(page_limit=50, asset_id=asset_id)
        for task in page.data:
            if task.custom_id == custom_id and task.status not in _SPENT:
                return task
        return None

    async def get_task(self, task_id: str) -> AnalyzeTask:
        return await self._get(f"/analyze/tasks/{seg(task_id)}", AnalyzeTask)

    async def list_tasks(
        self,
        page: int = 1,
        page_limit: int = 10,
        *,
        status: Sequence[str] | None = None,
        asset_id: str | None = None,
        video_url: str | None = None,
        analysis_mode: str | None = None,
    ) -> Page[AnalyzeTask]:
        """Newest first."""
        params = {
            "page": page,
            "page_limit": page_limit,
            "status": list(status) if status else None,
            "asset_id": asset_id,
            "video_url": video_url,
            "analysis_mode": analysis_mode,
        }
        return await self._page("/analyze/tasks", AnalyzeTask, params)

    async def cancel_task(self, task_id: str) -> AnalyzeTaskCanceled:
        """Cancel a queued or running task; repeating it is safe (the API answers `canceled` again)."""
        response = await self._call("POST", f"/analyze/tasks/{seg(task_id)}/cancel", idempotent=True)
        return self._parse(response, AnalyzeTaskCanceled)

    async def delete_task(self, task_id: str) -> None:
        await self._call("DELETE", f"/analyze/tasks/{seg(task_id)}")

    async def create_batch(self, request: AnalyzeBatchRequest) -> AnalyzeBatchCreated:
        """Start one batch; the same request repeated carries the same `Idempotency-Key`."""
        body = request.to_wire()
        key = (
            "tlmcp-"
            + hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[
                :40
            ]
        )
        response = await self._http.request(
            "POST",
            "/analyze/batches",
            body=Body(json=body),
            headers={IDEMPOTENCY_HEADER: key},
            idempotent=True,
        )
        return self._parse(response, AnalyzeBatchCreated)

    async def get_batch(self, batch_id: str) -> AnalyzeBatch:
        return await self._get(f"/analyze/batches/{seg(batch_id)}", AnalyzeBatch)

    async def list_batches(
        self,
        page: int = 1,
        page_limit: int = 10,
        *,
        status: Sequence[str] | None = None,
        analysis_mode: str | None = None,
    ) -> Page[AnalyzeBatch]:
        params = {
            "page": page,
            "page_limit": page_limit,
            "status": list(status) if status else None,
            "analysis_mode": [analysis_mode] if analysis_mode else None,
        }
        return await self._page("/analyze/batches", AnalyzeBatch, params)

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        """Every item's status, result or error (a JSON Lines body: one item a line)."""
        response = await self._call("GET", f"/analyze/batches/{seg(batch_id)}/results")
        results: list[BatchResult] = []
        for n, line in enumerate(response.text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                results.append(BatchResult.model_validate_json(line))
            except ValidationError as exc:
                raise TwelveLabsError(
                    f"GET /analyze/batches/{batch_id}/results: line {n} is not a batch result "
                    f"({exc.errors()[0]['msg']})",
                    status=response.status_code,
                ) from exc
        return results

    async def cancel_batch(self, batch_id: str) -> AnalyzeBatch:
        """Cancel the queued items; running ones finish. Safe to repeat."""
        response = await self._call("POST", f"/analyze/batches/{seg(batch_id)}/cancel", idempotent=True)
        return self._parse(response, AnalyzeBatch)

    async def delete_batch(self, batch_id: str) -> None:
        await self._call("DELETE", f"/analyze/batches/{seg(batch_id)}")
