"""What every answerer shares: the question it gets, how its text comes back, how it says what made it.

An answerer turns one question plus the evidence the sandbox retrieved into text deltas. The extractive
answerer quotes the evidence; a model answerer asks a language model, under the grounding rules of
``grounding.py``, and falls back to the extractive text (saying so) whenever the model cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

JsonObj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Made:
    """How one answer was made; it travels in the API response as ``generated_by``."""

    #: "extractive", "local" (a GGUF model in process) or "endpoint" (an OpenAI-compatible server).
    answerer: str
    model: str | None = None
    #: Why the answer is not what the configured answerer would have made (a fallback), or a caveat.
    note: str | None = None

    def as_json(self) -> JsonObj:
        return {"answerer": self.answerer, "model": self.model, "note": self.note}

    def with_placeholders(self, fields: Sequence[str]) -> Made:
        """This, saying which fields of a structured output no evidence fitted: an agent reads this line,
        and a field left out or given a placeholder (null, empty, the schema's first enum value or its
        minimum, where the schema requires a value) is not an answer."""
        if not fields:
            return self
        named = ", ".join(fields[:8]) + (f" and {len(fields) - 8} more" if len(fields) > 8 else "")
        said = f"no evidence fitted {named}: left out or placeholders, not answers"
        return Made(self.answerer, self.model, f"{self.note}; {said}" if self.note else said)


@dataclass(frozen=True, slots=True)
class Cue:
    """One retrieved moment as the answerer sees it: its citation marker and what was said or shown."""

    marker: str
    source: str
    text: str


@dataclass(slots=True)
class Question:
    question: str
    #: Retrieved moments, best first; the only thing a model may answer from.
    cues: list[Cue]
    #: The extractive answer for the same question (the fallback, and the extractive answerer's text).
    extractive: Callable[[], str]
    #: Earlier turns of the session as (question, answer), oldest first.
    history: list[tuple[str, str]] = field(default_factory=list)
    instructions: str | None = None
    #: The caller's JSON Schema for a structured answer (the extractive text is then JSON too).
    schema: JsonObj | None = None
    max_tokens: int = 200


class Reply:
    """Text deltas as they are produced; ``made`` is final once the deltas are exhausted."""

    def __init__(self, deltas: Iterator[str], made: Made) -> None:
        self._deltas = deltas
        self.made = made

    def __iter__(self) -> Iterator[str]:
        return self._deltas


class Answerer(Protocol):
    #: What this answerer is (and would put in ``generated_by`` when nothing falls back).
    made: Made

    def answer(self, question: Question) -> Reply:
        """Blocking: start answering; iterate the reply (in a worker thread) for the deltas."""
        ...


class ModelDown(RuntimeError):
    """The model could not be reached or failed; the message says what happened and what to do."""


class ChatModel(Protocol):
    """A chat-completions model: one blocking call streaming content tokens."""

    made: Made

    def chat(self, messages: list[dict[str, str]], schema: JsonObj | None, max_tokens: int) -> Iterator[str]:
        """Content tokens as produced; closing the iterator stops generation. Raises ``ModelDown``."""
        ...
