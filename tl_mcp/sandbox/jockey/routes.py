"""`POST /responses` for the sandbox: an extractive Jockey over one knowledge store, as JSON or SSE.

Thin: `request` validates the body (any of the three documented shapes), `session` resolves the session
and its selections, `turn` retrieves, composes and emits the events; this module picks JSON or SSE.
Sessions and turns live in SQLite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tl_mcp.sandbox.answerers import answerer_for
from tl_mcp.sandbox.errors import ApiError
from tl_mcp.sandbox.jockey.request import parse_request
from tl_mcp.sandbox.jockey.session import open_session, validate_selections
from tl_mcp.sandbox.jockey.sse import DONE_FRAME, frame, sequence
from tl_mcp.sandbox.jockey.turn import Turn
from tl_mcp.sandbox.knowledge.models import JockeyOptions, JsonObj
from tl_mcp.sandbox.knowledge.routes import get_service
from tl_mcp.sandbox.web import engine_of, json_body


async def _frames(turn: Turn, options: JockeyOptions) -> AsyncIterator[bytes]:
    send, receive = anyio.create_memory_object_stream[JsonObj](16)
    async with anyio.create_task_group() as tg:
        tg.start_soon(turn.run, send)
        async for event in sequence(receive, keepalive_interval=options.keepalive_interval_s):
            yield frame(event)
    yield DONE_FRAME


async def create_response(request: Request) -> Response:
    try:
        svc = get_service(request)
        turn_request = parse_request(await json_body(request))
        svc.store_row(turn_request.knowledge_store_id)
        session = open_session(svc, turn_request)
        validate_selections(svc, session.store_id, session.selections)
    except ApiError as exc:
        return exc.response()
    options = svc.options
    turn = Turn(svc, turn_request, session, options, answerer_for(engine_of(request).config))
    if turn_request.stream:
        return StreamingResponse(
            _frames(turn, options),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    send, receive = anyio.create_memory_object_stream[JsonObj](1024)
    final: JsonObj | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(turn.run, send)
        async with receive:
            async for event in receive:
                if event["type"] in ("response.completed", "response.failed"):
                    final = event["response"]
    assert final is not None
    return JSONResponse(final)


routes: list[Route] = [Route("/responses", create_response, methods=["POST"])]
