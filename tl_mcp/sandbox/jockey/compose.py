"""Extractive answers for the sandbox's Jockey: question terms, follow-ups, cited answer text.

Nothing here generates language. An answer is built only from moments the retrieval found (what was
said, subtitled or written on screen), each cited with a ``[mm:ss-mm:ss]`` marker and a matching
annotation. When the evidence is missing, the text says so instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tl_mcp.sandbox.answerers.text import WORD as _WORD
from tl_mcp.sandbox.answerers.text import chunk_text, content_terms, count_tokens, marker, timestamp
from tl_mcp.sandbox.knowledge.models import Evidence

# Re-exported: the Jockey's callers and tests take every answer-text helper from here.
__all__ = ["chunk_text", "content_terms", "count_tokens", "marker", "timestamp"]

#: The sandbox's only model name; echoed on every response (request shape A sends it).
MODEL_NAME = "jockey1.0"

_SELECTION_TOKEN = re.compile(r"\{\{\s*sel\s*:\s*(\d+)\s*\}\}")

# Follow-ups lean on the previous turn when they are short and refer back ("what about it?").
_REFERRING_TEXT = """
it its that this those these they them he she him her there then again more else same above previous
"""
_REFERRING = frozenset(_REFERRING_TEXT.split())
_FOLLOWUP_OPENERS = ("and ", "what about", "how about", "also ", "more ", "tell me more", "what else")

# Words that ask about what something looks like: the offline engine has no image-text model.
_VISUAL_WORDS_TEXT = """
color colour colors colours wearing wears wear look looks looking appearance appear appears visually
visual see seen shown shows picture image scene scenes background foreground face faces person
people man woman car dog cat animal object objects holding hold holds red blue green yellow black
white orange purple pink brown grey gray jacket shirt dress logo
"""
_VISUAL_WORDS = frozenset(_VISUAL_WORDS_TEXT.split())

OFFLINE_VISUAL_NOTE = (
    "Note: this offline sandbox matches only what is said, subtitled or written on screen; it cannot judge "
    "what the picture shows (colours, objects, people, actions), so visual details are not covered."
)


def strip_selection_tokens(text: str) -> str:
    return _SELECTION_TOKEN.sub(" ", text).strip()


def selection_indexes(text: str) -> list[int]:
    return [int(m.group(1)) for m in _SELECTION_TOKEN.finditer(text)]


def is_followup(question: str) -> bool:
    """True for short questions that point back at the previous turn instead of naming a topic.

    An opener such as "and" or "what about" alone does not make a follow-up: "And what is the ocean
    chapter about?" names its own topic, so it must not drag the previous turn's terms along.
    """
    lowered = question.strip().lower()
    words = _WORD.findall(lowered)
    if not words:
        return False
    refers_back = any(w in _REFERRING for w in words)
    if lowered.startswith(_FOLLOWUP_OPENERS):
        return refers_back or len(content_terms(lowered)) <= 1
    return len(words) <= 8 and refers_back


def retrieval_query(question: str, previous_questions: Sequence[str]) -> str:
    """The text to retrieve with: the question itself, plus the last turn's terms for a follow-up."""
    cleaned = strip_selection_tokens(question)
    if previous_questions and is_followup(cleaned):
        earlier = [t for t in content_terms(previous_questions[-1]) if t not in content_terms(cleaned)]
        if earlier:
            return f"{cleaned} {' '.join(earlier)}".strip()
    return cleaned


def needs_visual_semantics(question: str) -> bool:
    return any(w in _VISUAL_WORDS for w in _WORD.findall(question.lower()))


@dataclass(slots=True)
class Answer:
    text: str
    annotations: list[dict[str, Any]] = field(default_factory=list)
    cited: list[Evidence] = field(default_factory=list)


def citation(moment: Evidence, start_index: int, length: int) -> dict[str, Any]:
    """The annotation for a marker of ``length`` code points at ``start_index`` that cites ``moment``."""
    return {
        "type": "video_citation",
        "start_index": start_index,
        "end_index": start_index + length - 1,  # inclusive, per SDK 1.3.6
        "item_id": moment.item_id,
        "start_sec": round(moment.start, 3),
        "end_sec": round(moment.end, 3),
        "title": moment.title,
        "thumbnail_url": moment.thumbnail_url,
        "hls_url": moment.hls_url,
    }


class _Builder:
    """Appends text while recording where each citation marker lands (code-point offsets)."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.annotations: list[dict[str, Any]] = []

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    def cite(self, moment: Evidence) -> None:
        mark = marker(moment.start, moment.end)
        self.annotations.append(citation(moment, self._length, len(mark)))
        self.add(mark)

    def text(self) -> str:
        return "".join(self._parts)


def _quote(text: str, limit: int = 220) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


_SOURCE_VERB = {"subtitle": "the subtitles read", "speech": "someone says", "ocr": "the screen shows"}


def compose_answer(
    question: str,
    moments: Sequence[Evidence],
    *,
    ready_items: int,
    pending_items: int,
    max_citations: int = 5,
    lead: str = "",
) -> Answer:
    """Build the cited, extractive answer text for ``question`` from ranked ``moments``, after ``lead``
    (what a follow-up was resolved against)."""
    builder = _Builder()
    builder.add(lead)
    visual = needs_visual_semantics(question)
    if ready_items == 0:
        if pending_items:
            builder.add(
                f"None of the {pending_items} item(s) in this knowledge store is ready yet, so there is "
                "nothing to answer from. Wait until the items reach the `ready` status, then ask again."
            )
        else:
            builder.add(
                "This knowledge store has no ready items, so there is nothing to answer from. Add an asset "
                "to the store, wait until the item is `ready`, then ask again."
            )
        return Answer(text=builder.text(), annotations=builder.annotations)

    chosen = list(moments[:max_citations])
    scope = f"{ready_items} ready video{'s' if ready_items != 1 else ''}"
    if not chosen:
        builder.add(
            f"I found nothing in the {scope} of this knowledge store that matches this question. "
            "I only answer from what the videos say, subtitle or show as on-screen text, and none of it "
            "matched; try other words that would be spoken or written in the video."
        )
        if visual:
            builder.add(" " + OFFLINE_VISUAL_NOTE)
        return Answer(text=builder.text(), annotations=builder.annotations)

    titles = {m.item_id for m in chosen}
    builder.add(
        f"Here is what I found in the {scope} of this knowledge store "
        f"({len(chosen)} matching moment{'s' if len(chosen) != 1 else ''} in {len(titles)} "
        f"video{'s' if len(titles) != 1 else ''}):\n"
    )
    for moment in chosen:
        builder.add(f'- In "{moment.title}" ')
        builder.cite(moment)
        # The match first, then what else the moment says or shows, one clause per source.
        quotes: dict[str, list[str]] = {}
        for source, text in ((moment.source, moment.text), *moment.context):
            quotes.setdefault(source, []).append(f'"{_quote(text)}"')
        clauses = [f"{_SOURCE_VERB.get(src, 'the video has')}: {' / '.join(q)}" for src, q in quotes.items()]
        builder.add(" " + "; ".join(clauses) + "\n")
    if pending_items:
        builder.add(
            f"{pending_items} more item(s) are still being processed and were not searched; ask again once "
            "they are ready.\n"
        )
    if visual:
        builder.add(OFFLINE_VISUAL_NOTE)
    return Answer(text=builder.text().rstrip("\n"), annotations=builder.annotations, cited=chosen)
