"""The answerers through a real MCP client over streamable HTTP: a model endpoint's answer streams as more
than one progress notification, every result says in one line how it was made, follow-ups and structured
outputs work, and the extractive sandbox paces its deltas so progress arrives live too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.chat_server import ChatServer, serve, tokens
from tests.server.conftest import (
    ProgressRecorder,
    call_ok,
    loopback_socket,
    sandbox_settings,
    seed_library,
    serve_app,
    text_of,
)
from tl_mcp.config import Settings
from tl_mcp.samples import make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_http_app, build_server

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + "answerers" * 3
APPLES = "How much do the fresh apples cost?"


def _model(body: dict[str, Any]) -> list[str]:
    """A grounded model: it quotes the apples evidence line and cites its marker; JSON under a schema."""
    evidence = ChatServer.evidence(body)
    apples = next((e for e in evidence if "apples" in e[2].lower()), evidence[0])
    if "response_format" in body:
        return tokens('{"fruit": "apples", "price_dollars": 2}')
    if any(m["role"] == "assistant" for m in body["messages"]):
        return tokens(f"As I said, fresh apples cost two dollars per pound {apples[0]}.")
    return tokens(f"Fresh apples from the orchard cost two dollars per pound {apples[0]}. That is all.")


@dataclass
class Setup:
    settings: Settings
    ids: dict[str, str]
    chat: ChatServer | None


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Setup]]:
    root = tmp_path_factory.mktemp("answerers-mcp")
    media = root / "media"
    media.mkdir()
    sample = make_sample_video(media / "clip.mp4", speech=False)
    # Model tokens every 0.12 s and extractive deltas every 0.1 s: both beyond the relay's merge window.
    with serve(ChatServer(_model, token_delay_s=0.12)) as chat:
        sandboxes = {
            "endpoint": EmbeddedSandbox.start_in_thread(
                root / "endpoint", analyzers="none", llm_url=chat.url, llm_name="qwen2.5:1.5b"
            ),
            "extractive": EmbeddedSandbox.start_in_thread(
                root / "extractive", analyzers="none", answerer="extractive", stream_delay_s=0.1
            ),
        }
        try:
            out: dict[str, Setup] = {}
            for name, sb in sandboxes.items():
                settings = sandbox_settings(
                    sb, root / f"state-{name}", media, transport="http", auth_tokens=[TOKEN]
                )

                async def setup(s: Settings = settings) -> dict[str, str]:
                    async with Client(build_server(s)) as c:
                        return await seed_library(c, sample.path, "answers")

                out[name] = Setup(settings, anyio.run(setup), chat if name == "endpoint" else None)
            yield out
        finally:
            for sb in sandboxes.values():
                sb.stop()


@asynccontextmanager
async def mcp(setup: Setup) -> AsyncIterator[Client]:
    app = build_http_app(build_server(setup.settings), setup.settings)
    async with serve_app(app, loopback_socket()) as base:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            yield client


async def test_a_model_answer_streams_live_and_says_which_model_made_it(worlds: dict[str, Setup]) -> None:
    setup = worlds["endpoint"]
    store = setup.ids["knowledge_store_id"]
    async with mcp(setup) as c:
        progress = ProgressRecorder()
        result = await call_ok(
            c,
            "create_response",
            {"knowledge_store_id": store, "input": "How much do the fresh apples cost?"},
            progress_callback=progress,
        )
        data = result.structured_content
        assert data
        assert data["text"].startswith(
            "Fresh apples from the orchard cost two dollars per pound [00:06-00:12]."
        )
        # Real tokens, relayed as they came: several notifications that join to the final text.
        assert len([m for _, _, m in progress.calls if m]) > 1
        assert progress.text == data["text"]
        progress.assert_increasing()
        assert "Made by qwen2.5:1.5b at http://127.0.0.1" in text_of(result)
        assert "through the sandbox's model endpoint" in text_of(result)
        assert data["citations"] and data["citations"][0]["start_sec"] == pytest.approx(6.0, abs=0.6)

        # The follow-up the result names works, and the model sees the first turn.
        follow = await call_ok(
            c, "continue_session", {"session_id": data["session_id"], "input": "Say that again?"}
        )
        assert follow.structured_content
        assert follow.structured_content["text"].startswith("As I said, fresh apples cost two dollars")
        assert setup.chat is not None
        roles = [m["role"] for m in setup.chat.requests[-1]["messages"]]
        assert roles == ["system", "user", "assistant", "user"]

        schema = {
            "type": "object",
            "properties": {"fruit": {"type": "string"}, "price_dollars": {"type": "integer"}},
        }
        parsed = await call_ok(
            c,
            "create_response",
            {"knowledge_store_id": store, "input": APPLES, "output_schema": schema},
        )
        assert parsed.structured_content
        assert parsed.structured_content["parsed"] == {"fruit": "apples", "price_dollars": 2}
        assert "Made by qwen2.5:1.5b" in text_of(parsed)


async def test_analysis_says_which_model_made_it_and_falls_back_honestly(worlds: dict[str, Setup]) -> None:
    setup = worlds["endpoint"]
    async with mcp(setup) as c:
        result = await call_ok(
            c,
            "analyze_video",
            {"asset_id": setup.ids["asset_id"], "prompt": "How much do the fresh apples cost?"},
        )
        assert result.structured_content
        assert result.structured_content["text"].startswith("Fresh apples from the orchard cost two dollars")
        assert "Made by qwen2.5:1.5b" in text_of(result)
        assert "extractively" not in text_of(result)


async def test_an_analysis_by_a_model_arrives_as_progress_while_the_model_writes(
    worlds: dict[str, Setup],
) -> None:
    setup = worlds["endpoint"]
    async with mcp(setup) as c:
        progress = ProgressRecorder()
        result = await call_ok(
            c,
            "analyze_video",
            {"asset_id": setup.ids["asset_id"], "prompt": APPLES},
            progress_callback=progress,
        )
    assert result.structured_content
    text = result.structured_content["text"]
    assert text.startswith("Fresh apples from the orchard cost two dollars per pound [")
    # Each checked sentence is relayed when the sandbox releases it, not the whole answer at the end.
    assert len([m for _, _, m in progress.calls if m]) > 1
    assert progress.text == text
    progress.assert_increasing()
    assert "Made by qwen2.5:1.5b" in text_of(result)


async def test_extractive_answers_arrive_paced_and_say_they_are_extractive(worlds: dict[str, Setup]) -> None:
    setup = worlds["extractive"]
    async with mcp(setup) as c:
        progress = ProgressRecorder()
        result = await call_ok(
            c,
            "create_response",
            {
                "knowledge_store_id": setup.ids["knowledge_store_id"],
                "input": "How much do fresh apples cost?",
            },
            progress_callback=progress,
        )
        assert result.structured_content
        assert len([m for _, _, m in progress.calls if m]) > 1
        assert progress.text == result.structured_content["text"]
        assert "Made by the sandbox extractively" in text_of(result), text_of(result)

        progress = ProgressRecorder()
        summary = await call_ok(
            c,
            "summarize_video",
            {"kind": "summary", "asset_id": setup.ids["asset_id"]},
            progress_callback=progress,
        )
        assert len([m for _, _, m in progress.calls if m]) > 1
        assert "Made by the sandbox extractively" in text_of(summary)


async def test_structured_fields_no_evidence_fitted_are_named_as_placeholders_in_the_result(
    worlds: dict[str, Setup],
) -> None:
    # Nothing in the video rates a mood: the schema forces a value (required, no null), so the sandbox
    # puts its placeholder there; the agent must be told those are not answers.
    schema = {
        "type": "object",
        "properties": {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "mood": {"type": "string", "enum": ["happy", "sad"]},
        },
    }
    setup = worlds["extractive"]
    async with mcp(setup) as c:
        answer = await call_ok(
            c,
            "create_response",
            {
                "knowledge_store_id": setup.ids["knowledge_store_id"],
                "input": "Rate the mood",
                "output_schema": schema,
            },
        )
        analysis = await call_ok(
            c,
            "analyze_video",
            {"asset_id": setup.ids["asset_id"], "prompt": "Rate the mood", "output_schema": schema},
        )
    # Jockey tightens the schema (every field required), so the fields hold placeholders; analyze leaves
    # them out.
    assert answer.structured_content and analysis.structured_content
    assert answer.structured_content["parsed"] == {"rating": 1, "mood": "happy"}
    assert analysis.structured_content["parsed"] == {}
    for result in (answer, analysis):
        made = next(line for line in text_of(result).splitlines() if line.startswith("Made by"))
        assert "no evidence fitted rating, mood: left out or placeholders, not answers" in made, made
