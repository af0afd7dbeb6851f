"""Server-Sent Events framing for `/responses`: one sequence counter, keepalives in silences.

Frames follow TwelveLabs' stream: an ``event:`` line naming the type, a ``data:`` line with the JSON
(which repeats the type and carries ``sequence_number``), a blank line; ``data: [DONE]`` ends the stream.
Keepalive events share the counter with every other event (SDK 1.3.6), so numbers are assigned here,
at the moment a frame is written, not by the code that produces the events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream

JsonObj = dict[str, Any]

DONE_FRAME = b"data: [DONE]\n\n"


def frame(event: JsonObj) -> bytes:
    """One SSE frame. JSON is compact and single-line, so ``data:`` never needs splitting."""
    payload = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {payload}\n\n".encode()


def _number(event: JsonObj, seq: int) -> JsonObj:
    # `type` first, then `sequence_number`, then the rest: the order TwelveLabs' examples show.
    return {"type": event["type"], "sequence_number": seq, **{k: v for k, v in event.items() if k != "type"}}


async def sequence(
    events: ObjectReceiveStream[JsonObj],
    *,
    keepalive_interval: float,
) -> AsyncIterator[JsonObj]:
    """Number the producer's events from 0; insert ``keepalive`` after each silent interval."""
    seq = 0
    async with events:
        while True:
            event: JsonObj | None = None
            ended = False
            with anyio.move_on_after(keepalive_interval):
                try:
                    event = await events.receive()
                except anyio.EndOfStream:
                    ended = True
            if ended:
                return
            yield _number(event if event is not None else {"type": "keepalive"}, seq)
            seq += 1
