"""Many calls at once on one server: all complete correctly, and streamed progress stays with its call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.reliability.conftest import Seed, faulted
from tests.server.conftest import call_ok, text_of

pytestmark = pytest.mark.anyio

QUESTIONS = [
    "What do the videos say about apples?",
    "What happens with the quarterly sales revenue?",
    "What is said about the ocean?",
    "How much do the apples cost per pound?",
    "Which chapter is about the ocean waves?",
]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_twenty_concurrent_mixed_calls_complete_and_keep_their_own_progress(
    seed: Seed, tmp_path: Path, mode: str
) -> None:
    with faulted(seed, tmp_path) as env:
        async with Client(env.server(), mode=mode) as c:  # type: ignore[arg-type]
            # The answers a lone call gives, to compare the concurrent ones with.
            alone = {
                q: (
                    await call_ok(
                        c, "create_response", {"knowledge_store_id": seed.knowledge_store_id, "input": q}
                    )
                )
                for q in QUESTIONS
            }
            jockey: list[tuple[str, list[str], dict[str, Any]]] = []
            others: list[tuple[str, dict[str, Any]]] = []

            async def ask(question: str) -> None:
                messages: list[str] = []

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    if message and not message.startswith("[step]"):
                        messages.append(message)

                result = await call_ok(
                    c,
                    "create_response",
                    {"knowledge_store_id": seed.knowledge_store_id, "input": question},
                    progress_callback=on_progress,
                )
                assert result.structured_content is not None
                jockey.append((question, messages, result.structured_content))

            async def other(name: str, args: dict[str, Any]) -> None:
                result = await call_ok(c, name, args)
                assert result.structured_content is not None
                others.append((name, result.structured_content))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for i in range(20):
                        kind = i % 4
                        if kind in (0, 1):
                            tg.start_soon(ask, QUESTIONS[i % len(QUESTIONS)])
                        elif kind == 2:
                            tg.start_soon(
                                other, "search_videos", {"index_id": seed.index_id, "query": "apples"}
                            )
                        else:
                            name = "list_videos" if i % 8 == 3 else "list_knowledge_stores"
                            tg.start_soon(
                                other, name, {"index_id": seed.index_id} if name == "list_videos" else {}
                            )

    assert len(jockey) == 10 and len(others) == 10
    for question, messages, data in jockey:
        expected = alone[question].structured_content
        assert expected is not None
        assert data["status"] == "completed"
        assert data["text"] == expected["text"], question
        # Progress messages of this call, concatenated, are this call's answer and nothing else.
        assert "".join(messages) == data["text"], (question, messages)
        assert messages
    sessions = [data["session_id"] for _, _, data in jockey]
    assert len(set(sessions)) == len(sessions)
    for name, data in others:
        if name == "search_videos":
            assert data["moments"]
        elif name == "list_videos":
            assert [v["video_id"] for v in data["videos"]] == [seed.video_id]
        else:
            assert seed.knowledge_store_id in [s["knowledge_store_id"] for s in data["knowledge_stores"]]
    assert text_of(alone[QUESTIONS[0]])
