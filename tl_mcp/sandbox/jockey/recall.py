"""Follow-ups that point back at the previous answer, resolved against the moments that turn cited.

"Repeat the date you told me", "what was that part again" → the same moments (only those holding what
is asked for: a date, a number, a price); "what was said just before that part" → the piece of the same
video right before the first cited moment; "and right after that?" → the one right after it. People
leave the "that" out ("And after?", "what came before?", "what happened next?"): a short question
that ends on before/after/next points back too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tl_mcp.sandbox.jockey.compose import marker
from tl_mcp.sandbox.knowledge.models import Evidence
from tl_mcp.sandbox.retrieval import VISUAL_SOURCES
from tl_mcp.sandbox.store.texts import TRANSCRIPT_SOURCES

_BEFORE = re.compile(
    r"\b(?:just |right |immediately )?(?:before|prior to|ahead of) (?:that|this|it|then)\b"
    r"|\bearlier than that\b|\bthe (?:part|moment|bit) before\b",
    re.IGNORECASE,
)
_AFTER = re.compile(
    r"\b(?:just |right |immediately )?after (?:that|this|it)\b|\bwhat (?:came|comes|happens) next\b"
    r"|\bthe (?:part|moment|bit) after\b",
    re.IGNORECASE,
)
#: Words allowed before the closing before/after: "and what was said after?" points back, while "which
#: topic comes first, and which one after?" is a question of its own.
_ELLIPSIS_WORDS = 4
_ELLIPTICAL = re.compile(
    rf"^\W*(?:\w+\W+){{0,{_ELLIPSIS_WORDS}}}(?:before|after|afterwards|next)\W*$", re.IGNORECASE
)
_SAME = re.compile(
    r"\byou (?:just )?(?:told|said|mentioned|gave|found|showed|cited|quoted)\b|\brepeat\b|\bagain\b"
    r"|\bthat (?:part|moment|bit|date|number|price|figure|quote|line)\b|\bthe same\b",
    re.IGNORECASE,
)
_MONTH = "(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
_DATE = re.compile(
    rf"\b(?:\d{{4}}-\d\d-\d\d|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?|{_MONTH}\.? \d{{1,2}}|\d{{1,2}} {_MONTH}"
    r"|(?:19|20)\d\d)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twenty|hundred|thousand|million)\b",
    re.IGNORECASE,
)
_PRICE = re.compile(
    r"[$€£¥]\s?\d|\b(?:dollars?|euros?|cents?|pounds?|yen|price[sd]?|costs?)\b", re.IGNORECASE
)
_ASKS_DATE = re.compile(r"\b(?:date|day|when|year)\b", re.IGNORECASE)
_ASKS_PRICE = re.compile(r"\b(?:price|cost|how much)\b", re.IGNORECASE)
_ASKS_SAID = re.compile(r"\b(?:said|say|says|spoken|speak|speaks|talk(?:ed|s)?|heard?)\b", re.IGNORECASE)
_ASKS_SHOWN = re.compile(
    r"\b(?:shown|show|shows|showed|on ?screen|written|displayed|seen|see)\b", re.IGNORECASE
)
_ASKS_NUMBER = re.compile(r"\b(?:number|figure|amount|percent|how many)\b", re.IGNORECASE)


def recall_kind(question: str) -> str | None:
    """ "before", "after" or "same" when the question points back at the previous answer."""
    if _BEFORE.search(question):
        return "before"
    if _AFTER.search(question):
        return "after"
    if _ELLIPTICAL.match(question):
        return "before" if question.rstrip(" ?!.").lower().endswith("before") else "after"
    if _SAME.search(question):
        return "same"
    return None


def asked_sources(question: str) -> tuple[str, ...]:
    """The text sources a before/after follow-up asks about: "what was said" → speech and subtitles,
    "what was shown" → on-screen text; none in particular → () (any)."""
    said, shown = bool(_ASKS_SAID.search(question)), bool(_ASKS_SHOWN.search(question))
    if said == shown:
        return ()
    return TRANSCRIPT_SOURCES if said else VISUAL_SOURCES


def same_moments(question: str, previous: Sequence[Evidence]) -> list[Evidence]:
    """The previous turn's moments that hold what the question asks for again (all when none, or
    nothing in particular, is asked for)."""
    asks = ((_ASKS_DATE, _DATE), (_ASKS_PRICE, _PRICE), (_ASKS_NUMBER, _NUMBER))
    wanted = next((holds for asked, holds in asks if asked.search(question)), None)
    if wanted is None:
        return list(previous)
    holding = [m for m in previous if wanted.search(" ".join([m.text, *(t for _, t in m.context)]))]
    return holding or list(previous)


def lead(kind: str, previous: Evidence, found: bool) -> str:
    where = f'{marker(previous.start, previous.end)} of "{previous.title}"'
    if kind == "same":
        return f"Going back to what I cited in my previous answer ({where}):\n"
    side = "before" if kind == "before" else "after"
    if not found:
        return (
            f"Nothing is said or shown in that video {side} the moment I cited ({where}); that moment "
            "again:\n"
        )
    return f"Just {side} the moment I cited in my previous answer ({where}):\n"
