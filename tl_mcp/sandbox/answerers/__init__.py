"""Who writes the sandbox's answers: the extractive engine (default) or a local language model, chosen by
configuration and by what is installed. Every answer carries ``Made``: which answerer and model made it."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from tl_mcp.sandbox.answerers.base import Answerer, Cue, Made, ModelDown, Question, Reply
from tl_mcp.sandbox.answerers.endpoint import EndpointModel
from tl_mcp.sandbox.answerers.extractive import ExtractiveAnswerer
from tl_mcp.sandbox.answerers.grounding import GroundedAnswerer
from tl_mcp.sandbox.answerers.local import LocalModel, xllamacpp_installed
from tl_mcp.sandbox.config import SandboxConfig

__all__ = ["Answerer", "Cue", "Made", "ModelDown", "Question", "Reply", "answerer_for", "warm_in_background"]


class _Noted(ExtractiveAnswerer):
    """Extractive because the configured model cannot run here; every answer says why."""

    def __init__(self, note: str) -> None:
        self.made = Made("extractive", None, note)

    def answer(self, question: Question) -> Reply:
        reply = super().answer(question)
        reply.made = self.made
        return reply


def warm_in_background(config: SandboxConfig) -> threading.Thread | None:
    """Start readying the configured model (a local one loads and reads its system prompt), so the first
    question does not wait for it; None when there is nothing to ready."""
    answerer = answerer_for(config)
    if not isinstance(answerer, GroundedAnswerer) or not isinstance(answerer.model, LocalModel):
        return None
    thread = threading.Thread(target=answerer.warm, name="tl-mcp-llm-warm", daemon=True)
    thread.start()
    return thread


def answerer_for(config: SandboxConfig) -> Answerer:
    return _answerer(config.answerer, config.llm_model, config.llm_url, config.llm_name, config.llm_timeout_s)


@lru_cache(maxsize=8)
def _answerer(kind: str, model: Path | None, url: str | None, name: str, timeout_s: float) -> Answerer:
    if kind == "extractive" or (kind == "auto" and model is None and url is None):
        return ExtractiveAnswerer()
    if kind == "endpoint" or (kind == "auto" and url is not None):
        if url is None:
            return _Noted("TL_MCP_SANDBOX_ANSWERER=endpoint but TL_MCP_SANDBOX_LLM_URL is not set")
        return GroundedAnswerer(EndpointModel(url, name, timeout_s=timeout_s))
    if model is None:
        return _Noted("TL_MCP_SANDBOX_ANSWERER=local but TL_MCP_SANDBOX_LLM_MODEL is not set")
    if not xllamacpp_installed():
        return _Noted(
            "TL_MCP_SANDBOX_LLM_MODEL is set but xllamacpp is not installed (pip install 'tl-mcp[llm]')"
        )
    return GroundedAnswerer(LocalModel(model))
