"""Extractive "analysis": answers built only from evidence the sandbox found in a video (subtitles, speech,
on-screen text) with timestamps. There is no generative video model offline, and the answer says so.

Overviews (summaries, chapters, highlights, gists) are drawn from the whole video, or the requested
window of it: one part per scene, in time order, each with a short keyphrase as its title and its salient
sentences as its summary. Other prompts are answered from the texts that match them best.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tl_mcp.sandbox.answerers.base import Cue
from tl_mcp.sandbox.answerers.text import marker
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.fitting import UNFILLED
from tl_mcp.sandbox.media import TimedText
from tl_mcp.sandbox.retrieval import rank_text, tokens
from tl_mcp.sandbox.structured_fill import distinct, fill_schema

LIMITS = (
    "Not available offline: descriptions of people, objects, actions, scenes, sounds or anything not written "
    "or spoken in the video. Connect to TwelveLabs for generative analysis."
)
LABEL = {"subtitle": "subtitle", "speech": "speech", "ocr": "on-screen text"}
TRANSCRIPT = ("subtitle", "speech")
#: Prompt words that ask about the video as a whole rather than about something in it.
_OVERVIEW = {
    "summary",
    "summarize",
    "summarise",
    "chapters",
    "highlights",
    "gist",
    "overview",
    "outline",
    "recap",
    "hashtags",
    "topics",
}
#: Words that never start or carry a keyphrase: function words and the verbs narration leans on.
_STOP_WORDS = (
    "a an the and or but if then so than that this these those there here of in on at to from by for with "
    "without about into onto over under beneath above below after before during while as is are was were "
    "be been being am do does did done has have had having it its it's we us our you your they them their "
    "he him his she her i me my mine not no yes now just also very too can could will would shall should "
    "may might must let lets let's get gets got go goes going take takes took make makes made show shows "
    "see sees say says said what which who whom whose when where why how all any each every some more "
    "most other such only own same again further once up down out off"
)
_STOP = frozenset(_STOP_WORDS.split())
_PHRASE_WORDS = 4
#: Punctuation ends a phrase as a stop word does.
_CLAUSE = re.compile(r"[.,;:!?()\[\]\"“”…/]+")
Window = tuple[float, float | None]


@dataclass(frozen=True, slots=True)
class Part:
    """A stretch of the video and the texts found in it: a chapter, or one matching moment."""

    start: float
    end: float
    texts: tuple[TimedText, ...]

    @property
    def title(self) -> str:
        """On-screen text when the scene shows some (it usually is the scene's title), else a keyphrase."""
        screen = [t.text for t in self.texts if t.source == "ocr"]
        if screen:
            return _cap(" ".join(screen[0].split()[:6]))
        return keyphrase(t.text for t in self.texts) or f"Part at {clock(self.start)}"

    @property
    def summary(self) -> str:
        """The salient sentences: what is said, else what is shown; never just the title again."""
        said = distinct(t.text for t in self.texts if t.source in TRANSCRIPT)
        shown = distinct(t.text for t in self.texts if t.source == "ocr")
        text = " ".join(_ended(s) for s in said[:2]) or "; ".join(shown[:2])
        if not text:
            return f"Nothing is said or written on screen from {clock(self.start)} to {clock(self.end)}."
        if text.casefold() == self.title.casefold():
            return f'The screen reads "{text}".' if not said else f'Someone says "{text}".'
        return text


def _ended(sentence: str) -> str:
    """A spoken sentence with its full stop: Whisper leaves some out ("… late October A bag of …")."""
    return sentence if sentence.endswith((".", "?", "!", "…", ":", ";")) else f"{sentence}."


def clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def keyphrase(texts: Iterable[str]) -> str:
    """The best-scoring run of content words (RAKE: word degree over frequency), at most four words."""
    phrases: list[list[str]] = []
    for text in texts:
        for clause in _CLAUSE.split(text):
            run: list[str] = []
            for raw in [*clause.split(), ""]:
                word = raw.strip("'-")
                if word and word.lower() not in _STOP:
                    run.append(word)
                    continue
                # A run mostly of numbers (a phone line, a price) names nothing a title could be.
                if run and 2 * sum(any(c.isdigit() for c in w) for w in run) <= len(run):
                    phrases.append(run[:_PHRASE_WORDS])
                run = []
    if not phrases:
        return ""
    freq: Counter[str] = Counter()
    degree: Counter[str] = Counter()
    for phrase in phrases:
        for word in phrase:
            freq[word.lower()] += 1
            degree[word.lower()] += len(phrase)
    best = max(phrases, key=lambda p: sum(degree[w.lower()] / freq[w.lower()] for w in p))
    return _cap(" ".join(best))


def in_window(texts: list[TimedText], window: Window) -> list[TimedText]:
    start, end = window
    return [t for t in texts if t.end > start and (end is None or t.start < end)]


def parts(index: AssetIndex, window: Window, duration: float | None) -> list[Part]:
    """One part per scene inside ``window``, in time order; a scene with no text joins the one before it
    (the first such scenes join the next), so every part has something to title it by."""
    start, end = window
    stop = end if end is not None else (duration or float(index.ends.max(initial=start)))
    scenes = [
        (max(float(s), start), min(float(e), stop))
        for s, e in zip(index.starts, index.ends, strict=True)
        if e > start and s < stop
    ] or [(start, stop)]
    by_scene: list[list[TimedText]] = [[] for _ in scenes]
    for t in in_window(index.texts, window):
        # A text belongs to the scene it overlaps most (a still image's zero-length scene holds them all).
        overlap = [min(e, t.end) - max(s, t.start) if e > s else float("inf") for s, e in scenes]
        by_scene[overlap.index(max(overlap))].append(t)
    grouped: list[tuple[float, float, list[TimedText]]] = []
    for (s, e), inside in zip(scenes, by_scene, strict=True):
        if grouped and (not inside or not grouped[-1][2]):
            ps, _, pt = grouped[-1]
            grouped[-1] = (ps, e, pt + inside)
        else:
            grouped.append((s, e, inside))
    return [Part(s, e, tuple(sorted(t, key=lambda x: (x.start, x.source)))) for s, e, t in grouped]


def evidence(
    engine: Engine, index: AssetIndex, prompt: str, window: Window, limit: int = 5
) -> list[TimedText]:
    """The timed texts inside ``window`` most relevant to ``prompt``, best first."""
    allowed = in_window(index.texts, window)
    moments = rank_text(engine, [index], prompt, ("subtitle", "speech", "ocr"), limit=None)
    wanted = set(tokens(prompt)) - _STOP
    picked: list[TimedText] = []
    for m in moments:
        start, end = float(index.starts[m.segment]), float(index.ends[m.segment])
        # A still image is one zero-length segment holding all its texts.
        inside = [t for t in allowed if (t.end > start and t.start < end) or end <= start]
        # A moment stands for its segment by the one text most like the prompt as a whole (often the title
        # on screen); the segment's other texts that share the prompt's words may be what answers it.
        best = [t for t in inside if t.text == m.text][:1]
        shared = sorted(
            (t for t in inside if t not in best and wanted & set(tokens(t.text))),
            key=lambda t: -len(wanted & set(tokens(t.text))),
        )
        for t in best + shared:
            if t not in picked:
                picked.append(t)
        if len(picked) >= limit:
            break
    return picked[:limit]


def cues(engine: Engine, index: AssetIndex, prompt: str, duration: float | None, window: Window) -> list[Cue]:
    """What a model answerer may answer ``prompt`` from: one cue per scene for an overview (a summary
    must cover the whole video or window), else the best matching texts."""
    if is_overview(prompt):
        return [
            Cue(marker(p.start, p.end), "scene", f"{p.title}: {p.summary}")
            for p in parts(index, window, duration)
            if p.texts
        ]
    return [
        Cue(marker(t.start, t.end), LABEL[t.source], t.text) for t in evidence(engine, index, prompt, window)
    ]


def is_overview(prompt: str) -> bool:
    return bool(_OVERVIEW & set(tokens(prompt)))


def answer_text(
    engine: Engine,
    index: AssetIndex,
    filename: str,
    duration: float | None,
    prompt: str,
    window: Window = (0.0, None),
) -> str:
    relevant = evidence(engine, index, prompt, window)
    texts = in_window(index.texts, window)
    transcript = [t for t in texts if t.source in TRANSCRIPT]
    screen = [t for t in texts if t.source == "ocr"]
    start, end = window
    span = ""
    if start > 0 or end is not None:
        span = f", from {clock(start)} to {clock(end if end is not None else duration or start)}"
    lines = [
        f'Extractive answer from the offline sandbox for "{filename}"'
        + (f" ({duration:.1f} s{span})" if duration else span and f" ({span[2:]})")
        + ", built only from text found in the video."
    ]
    if relevant:
        lines.append("")
        lines.append(f"Most relevant moments for the prompt {prompt!r}:")
        lines.extend(f"- [{clock(t.start)}-{clock(t.end)}] ({LABEL[t.source]}) {t.text}" for t in relevant)
    elif not texts:
        lines.append("")
        where = "in this part of the video" if span else "in this video"
        lines.append(
            f"No subtitles, speech or on-screen text were found {where}, so there is nothing to quote."
        )
    elif set(tokens(prompt)) - _STOP and not is_overview(prompt):
        # Without this, the transcript below reads like the answer to a question it does not answer. A
        # prompt of no words of its own ("what is said here?") asks for that text: it is the answer.
        lines.append("")
        where = span[2:] if span else "in this video"
        lines.append(
            f"Nothing {where} matches the prompt {prompt!r}; below is all the text found there, so you can "
            "check, or ask about another part of the video."
        )
    if transcript:
        lines.append("")
        lines.append("Transcript:")
        lines.extend(f"- [{clock(t.start)}-{clock(t.end)}] {t.text}" for t in transcript)
    if screen:
        lines.append("")
        lines.append("On-screen text:")
        lines.extend(f"- [{clock(t.start)}-{clock(t.end)}] {t.text}" for t in screen)
    lines.append("")
    lines.append(LIMITS)
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Filled:
    """A structured answer: the JSON text, and the paths of the fields no evidence fitted."""

    text: str
    unfilled: list[str]


def answer_json(
    engine: Engine,
    index: AssetIndex,
    prompt: str,
    schema: dict[str, Any],
    duration: float | None,
    window: Window = (0.0, None),
) -> Filled:
    """Fill ``schema`` from the evidence inside ``window``, each field only with evidence that fits it
    (see :mod:`tl_mcp.sandbox.structured_fill`). Overview prompts (or prompts nothing matches) use the
    parts of the whole video (or window), others the matching moments; a summary-like field always covers
    every part. Arrays of objects get one entry per part or moment (title, summary, start, end…),
    chapters and timelines one per part in time order, highlights one per part at its salient sentence."""
    value, unfilled = fill_schema(schema, _Video(engine, index, prompt, duration, window))
    return Filled(json.dumps({} if value is UNFILLED else value), unfilled)


class _PartUnit:
    """A part of the video, or one text matching the prompt, as the schema walker reads it
    (:class:`structured_fill.Unit`); its title and summary are worked out only if a field asks."""

    score = None
    item_id = None

    def __init__(self, part: Part, asset_id: str) -> None:
        self.part = part
        self.start, self.end = part.start, part.end
        self.texts = tuple(t.text for t in part.texts)
        self.sources = tuple(dict.fromkeys(LABEL[t.source] for t in part.texts))
        self.asset_id = asset_id

    @cached_property
    def title(self) -> str:
        return self.part.title if self.texts else ""

    @cached_property
    def summary(self) -> str:
        return self.part.summary if self.texts else ""

    @property
    def topic(self) -> str:
        return self.title


class _Video:
    """The evidence of ``/analyze`` (:class:`structured_fill.Grounds`): for an overview prompt (or one
    nothing matches) the parts of the whole video (or window), else the texts that match it best."""

    def __init__(
        self, engine: Engine, index: AssetIndex, prompt: str, duration: float | None, window: Window
    ) -> None:
        self._relevant = [] if is_overview(prompt) else evidence(engine, index, prompt, window)
        self._parts = parts(index, window, duration)
        self.whole = [_PartUnit(p, index.asset_id) for p in self._parts]
        self._chosen = [Part(t.start, t.end, (t,)) for t in self._relevant] or self._parts
        self.units = [_PartUnit(p, index.asset_id) for p in self._chosen] if self._relevant else self.whole
        best = [t for u in self.units for t in u.texts]
        self.texts = list(dict.fromkeys([*best, *(t.text for t in in_window(index.texts, window))]))
        self.question = prompt
        self.duration = duration
        self._asset_id = index.asset_id

    def clock(self, seconds: float) -> str:
        return clock(seconds)

    def span(self, start: float, end: float) -> str:
        return f"{clock(start)}-{clock(end)}"

    @property
    def timeline(self) -> list[_PartUnit]:
        return [u for u in self.whole if u.texts] or self.whole

    @cached_property
    def highlights(self) -> list[_PartUnit]:
        return [_PartUnit(_salient(p), self._asset_id) for p in self._parts if p.texts]

    @cached_property
    def topics(self) -> list[str]:
        return list(dict.fromkeys(u.topic for u in self.whole if u.topic))

    @cached_property
    def summary(self) -> str:
        return " ".join(u.summary for u in self.whole if u.summary)

    @property
    def answer(self) -> str:
        # An overview's answer is the summary of every part, which no part's summary may then repeat; a
        # question's answer is its best match, then the next ones.
        return "" if self._relevant else self.summary

    @property
    def answer_pool(self) -> list[str]:
        return [u.summary for u in self.units] if self._relevant else []

    @cached_property
    def title(self) -> str:
        return keyphrase(t.text for p in self._chosen for t in p.texts)


def _salient(part: Part) -> Part:
    """A part narrowed to its first sentence said (else shown), at that sentence's own times."""
    said = [t for t in part.texts if t.source in TRANSCRIPT] or list(part.texts)
    first = said[0]
    return Part(first.start, first.end, (first,))


def truncate(text: str, max_tokens: int | None) -> tuple[str, str, int]:
    """(text, finish_reason, output_tokens); a token here is a whitespace-separated word."""
    words = text.split(" ")
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length", max_tokens
    return text, "stop", len(words)
