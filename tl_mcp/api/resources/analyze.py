"""Pegasus analysis: `/analyze` (one JSON answer or an NDJSON stream) and `/analyze/tasks` (async)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

from .._http import Body, HTTPCore, Timeouts
from ..errors import StreamError, TwelveLabsError
from ..models.analyze import AnalyzeEvent, AnalyzeRequest, AnalyzeResult, AnalyzeTask, AnalyzeTaskCreated
from ..streaming import AnalyzeAssembler, NDJSONDecoder, iter_with_idle_timeout
from ._base import Resource, seg


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

    async def create_task(self, request: AnalyzeRequest) -> str:
        """Start an async analysis; its task id (read it with `get_task`)."""
        response = await self._call("POST", "/analyze/tasks", json_body=request.to_wire(), idempotent=False)
        return self._parse(response, AnalyzeTaskCreated).task_id

    async def get_task(self, task_id: str) -> AnalyzeTask:
        return await self._get(f"/analyze/tasks/{seg(task_id)}", AnalyzeTask)
