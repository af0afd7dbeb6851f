"""Jockey (`/responses`): one conversational turn over a knowledge store, whole or streamed as SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

from .._http import Body, HTTPCore, Timeouts
from ..errors import StreamError, TwelveLabsError
from ..models.responses import ResponseObject, ResponseRequest, ResponseUpdate
from ..streaming import ResponseAssembler, SSEDecoder, iter_with_idle_timeout
from ._base import Resource


class Responses(Resource):
    def __init__(self, http: HTTPCore, timeouts: Timeouts) -> None:
        super().__init__(http)
        self._timeouts = timeouts

    async def create(self, request: ResponseRequest) -> ResponseObject:
        """One Jockey turn, waiting for the whole answer. Never retried: a turn is not idempotent."""
        response = await self._http.request(
            "POST",
            "/responses",
            body=Body(json=request.to_wire(stream=False)),
            idempotent=False,
            timeout=self._timeouts.httpx_stream(),
        )
        return self._parse(response, ResponseObject)

    async def stream(self, request: ResponseRequest) -> AsyncIterator[ResponseUpdate]:
        """One Jockey turn over SSE as typed updates; `ResponseDone` is last on success.

        Raises `StreamError` (with `partial_text` and `session_id`) when the stream fails or ends early.
        Cancelling the consuming task closes the HTTP stream at once; when you may stop iterating early, wrap
        the iterator in `contextlib.aclosing(...)`.
        """
        assembler = ResponseAssembler()
        body = Body(json=request.to_wire(stream=True))
        headers = {"accept": "text/event-stream"}
        async with self._http.stream("POST", "/responses", body=body, headers=headers) as response:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type and "json" in content_type:
                try:
                    raw = await response.aread()
                except httpx2.TransportError as exc:
                    # Same failure as a broken SSE body, so callers handle one exception type.
                    raise StreamError(f"the response broke before it was complete: {exc}") from exc
                for update in assembler.from_json_body(raw):
                    yield update
                return
            decoder = SSEDecoder()
            try:
                async for chunk in iter_with_idle_timeout(response.aiter_raw(), self._timeouts.stream_idle):
                    for event in decoder.feed(chunk):
                        for update in assembler.feed_sse(event):
                            yield update
                        if assembler.saw_done_marker:
                            break
                    if assembler.saw_done_marker:
                        break
            except StreamError:
                raise
            except (httpx2.TransportError, TwelveLabsError) as exc:
                raise StreamError(
                    f"the response stream broke: {exc}",
                    partial_text=assembler.partial_text,
                    session_id=assembler.session_id,
                    response_id=assembler.response_id,
                ) from exc
            if not assembler.saw_done_marker:
                for event in decoder.flush():
                    for update in assembler.feed_sse(event):
                        yield update
            assembler.finish()
