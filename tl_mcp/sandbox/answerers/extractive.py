"""The extractive answerer: the sandbox's own engines quote the evidence; no language model is involved."""

from __future__ import annotations

from tl_mcp.sandbox.answerers.base import Made, Question, Reply
from tl_mcp.sandbox.answerers.text import chunk_text

EXTRACTIVE = Made("extractive")


class ExtractiveAnswerer:
    made = EXTRACTIVE

    def answer(self, question: Question) -> Reply:
        return Reply(iter(chunk_text(question.extractive())), EXTRACTIVE)
