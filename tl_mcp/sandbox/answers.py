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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.answerers.base import Cue
from tl_mcp.sandbox.answerers.text import marker
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.fitting import (
    UNFILLED,
    bool_for,
    date_in,
    empty_value,
    enum_for,
    hint,
    is_date_field,
    kind_of,
    name_words,
    number_for,
    text_for,
    within,
    word_set,
)
from tl_mcp.sandbox.media import TimedText
from tl_mcp.sandbox.retrieval import rank_text, tokens

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
        return keyphrase(self.texts) or f"Part at {clock(self.start)}"

    @property
    def summary(self) -> str:
        """The salient sentences: what is said, else what is shown; never just the title again."""
        said = _distinct(t.text for t in self.texts if t.source in TRANSCRIPT)
        shown = _distinct(t.text for t in self.texts if t.source == "ocr")
        text = " ".join(said[:2]) or "; ".join(shown[:2])
        if not text:
            return f"Nothing is said or written on screen from {clock(self.start)} to {clock(self.end)}."
        if text.casefold() == self.title.casefold():
            return f'The screen reads "{text}".' if not said else f'Someone says "{text}".'
        return text


def clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _distinct(texts: Any) -> list[str]:
    """Texts in order, leaving out any whose words all appear in another (subtitle = speech): the fuller
    one is kept, where the first of them was. Speech cut at a pause often comes first, and is a part of
    the subtitle that follows it."""
    kept: list[tuple[str, set[str]]] = []
    for text in texts:
        words = set(tokens(text))
        if not words or any(words <= seen for _, seen in kept):
            continue
        entry = (" ".join(text.split()), words)
        covered = [i for i, (_, seen) in enumerate(kept) if seen <= words]
        if covered:
            kept[covered[0]] = entry
            kept = [k for i, k in enumerate(kept) if i not in covered[1:]]
        else:
            kept.append(entry)
    return [text for text, _ in kept]


def keyphrase(texts: tuple[TimedText, ...] | list[TimedText]) -> str:
    """The best-scoring run of content words (RAKE: word degree over frequency), at most four words."""
    phrases: list[list[str]] = []
    for t in texts:
        for clause in _CLAUSE.split(t.text):
            run: list[str] = []
            for raw in [*clause.split(), ""]:
                word = raw.strip("'-")
                if word and word.lower() not in _STOP:
                    run.append(word)
                    continue
                if run:
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
    picked: list[TimedText] = []
    for m in moments:
        for t in allowed:
            if t.text == m.text and t not in picked:
                picked.append(t)
                break
        if len(picked) == limit:
            break
    return picked


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
    (see :mod:`tl_mcp.sandbox.fitting`). Overview prompts (or prompts nothing matches) use the parts of the
    whole video (or window), others the matching moments; a summary-like field always covers every part.
    Arrays of objects get one entry per part or moment (title, summary, start, end…), highlights one per
    part at its salient sentence."""
    relevant = [] if is_overview(prompt) else evidence(engine, index, prompt, window)
    whole = parts(index, window, duration)
    units = [Part(t.start, t.end, (t,)) for t in relevant] if relevant else whole
    texts = in_window(index.texts, window)
    filler = _JsonFiller(units, whole, texts, duration, overview=not relevant)
    value = filler.value(schema, "", None, required=True)
    return Filled(json.dumps({} if value is UNFILLED else value), list(dict.fromkeys(filler.unfilled)))


_TITLE_WORDS = word_set("title name heading label headline caption")
#: Words that may stand beside a title word and still ask for a title ("chapter_title", not "speaker_name").
_OF_THE_VIDEO = word_set("video clip chapter scene part section segment short main overall topic")
_SUMMARY_WORDS = word_set("summary overview synopsis gist recap abstract description about")
_GENERIC_WORDS = word_set(
    "answer text quote response result content explanation reason details detail excerpt transcript "
    "value what said statement evidence highlight why note notes"
)
_TAG_WORDS = word_set("topics topic keywords keyword tags tag themes theme subjects subject")
_QUOTE_LIST_WORDS = word_set(
    "quotes lines sentences statements points facts claims transcript moments highlights"
)
_IN_TIME_ORDER = word_set("chapters timeline sections scenes parts segments steps outline")
_COUNTED = word_set(
    "scenes scene chapters chapter parts part segments segment moments moment sections section "
    "highlights mentions times occurrences"
)


class _JsonFiller:
    """Walks the caller's schema; ``unfilled`` collects the paths of fields no evidence fits."""

    def __init__(
        self,
        units: list[Part],
        whole: list[Part],
        texts: list[TimedText],
        duration: float | None,
        overview: bool,
    ) -> None:
        self.units = units
        self.whole = whole
        #: Every text in the window, for fields whose answer may lie outside the best matches.
        self.texts = texts
        self.duration = duration
        self.overview = overview
        self.unfilled: list[str] = []
        self._quoted: set[str] = set()

    def value(self, node: Any, path: str, unit: Part | None, *, required: bool) -> Any:
        """The field's value, ``UNFILLED`` (recorded) when nothing fits and the field may be left out."""
        if not isinstance(node, dict):
            return None
        kind = kind_of(node)
        found = self._found(node, kind, path, unit)
        if found is not UNFILLED:
            return found
        self.unfilled.append(path or "(root)")
        return empty_value(node, kind) if required else UNFILLED

    def _found(self, node: dict[str, Any], kind: str, path: str, unit: Part | None) -> Any:
        name = path.rsplit("/", 1)[-1].removesuffix("[]")
        words = set(name_words(name))
        texts = self._texts(unit)
        if "const" in node:
            return node["const"]
        for key in ("anyOf", "oneOf"):
            options = [o for o in node.get(key) or [] if isinstance(o, dict) and kind_of(o) != "null"]
            if options:
                return self._found(options[0], kind_of(options[0]), path, unit)
        if kind == "null":
            return None
        if isinstance(node.get("enum"), list) and node["enum"]:
            # The moments that answer the prompt choose; a value named elsewhere in the video does not.
            return enum_for(node["enum"], [t.text for u in ([unit] if unit else self.units) for t in u.texts])
        if kind == "object":
            out: dict[str, Any] = {}
            required = set(node.get("required", []))
            # Sibling fields never share a quote; another object (an array entry) may repeat one.
            outer, self._quoted = self._quoted, set()
            for key, sub in (node.get("properties") or {}).items():
                got = self.value(sub, f"{path}/{key}" if path else key, unit, required=key in required)
                if got is not UNFILLED:
                    out[key] = got
            self._quoted = outer
            return out
        if kind == "array":
            return self._array(node, path, words, unit)
        if kind in ("number", "integer"):
            return self._number(node, name, words, unit, kind == "integer")
        if kind == "boolean":
            found = bool_for(name, node, texts, found=any(u.texts for u in self.units))
            return UNFILLED if found is None else found
        if kind == "string":
            return self._string(node, name, words, unit)
        return UNFILLED

    def _texts(self, unit: Part | None) -> list[str]:
        """The texts a field of ``unit`` may draw on: the unit's own, else the best matches, then the rest."""
        if unit is not None:
            return [t.text for t in unit.texts]
        best = [t.text for u in self.units for t in u.texts]
        return list(dict.fromkeys([*best, *(t.text for t in self.texts)]))

    def _array(self, node: dict[str, Any], path: str, words: set[str], unit: Part | None) -> Any:
        items: dict[str, Any] = node["items"] if isinstance(node.get("items"), dict) else {"type": "string"}
        item_kind = kind_of(items)
        units = [unit] if unit is not None else self.units
        if unit is None and words & _IN_TIME_ORDER:
            # Chapters and the like walk the whole video (or window) in time order, not the best matches.
            units = [p for p in self.whole if p.texts] or self.whole
        if "highlight" in path.lower() and unit is None:
            units = [_salient(p) for p in self.whole if p.texts]
        out: list[Any]
        if item_kind == "object":
            out = [self.value(items, f"{path}[]", u, required=True) for u in units]
        elif item_kind == "string" and "hashtags" in words | set(name_words(path)):
            out = list(dict.fromkeys("#" + re.sub(r"\W", "", u.title.title()) for u in self.whole if u.texts))
        elif item_kind == "string" and words & _TAG_WORDS:
            out = list(dict.fromkeys(u.title for u in self.whole if u.texts))
        elif item_kind == "string" and words & _QUOTE_LIST_WORDS:
            out = _distinct(t.text for u in units for t in u.texts)
        else:
            got = [self.value(items, f"{path}[]", u, required=False) for u in units]
            out = [v for v in got if v is not UNFILLED]
            out = list(dict.fromkeys(json.dumps(v) for v in out))
            out = [json.loads(v) for v in out]
        high, low = node.get("maxItems"), int(node.get("minItems", 0))
        if isinstance(high, int):
            out = out[:high]
        if not out:
            return UNFILLED
        if len(out) < low:
            # More entries asked for than the evidence holds: repeat rather than invent, and report it.
            self.unfilled.append(path or "(root)")
            out = [*out, *(out[i % len(out)] for i in range(low - len(out)))]
        return out

    def _number(
        self, node: dict[str, Any], name: str, words: set[str], unit: Part | None, integer: bool
    ) -> Any:
        target = unit or (self.units[0] if self.units else None)
        value: float | None = None
        if target is not None and words & {"start", "begin", "from"}:
            value = target.start
        elif target is not None and words & {"end", "until", "to", "stop"}:
            value = target.end
        elif target is not None and words & {"time", "timestamp", "sec", "seconds", "offset", "at"}:
            value = target.start
        elif words & {"duration", "length"} and (unit is not None or "video" in words or not self.units):
            value = (unit.end - unit.start) if unit is not None else self.duration
        elif words & {"count", "total", "number", "num"} and (
            words & _COUNTED or words <= {"count", "total"}
        ):
            value = float(len(self.units))
        else:
            hinted = hint(name, node)
            value = number_for(
                hinted, self._texts(unit), integer=integer, generic=bool(words & _GENERIC_WORDS)
            )
        if value is None:
            return UNFILLED
        value = int(value) if integer else value
        return value if within(node, value) else UNFILLED

    def _string(self, node: dict[str, Any], name: str, words: set[str], unit: Part | None) -> Any:
        if is_date_field(name, node):
            for text in self._texts(unit):
                found = date_in(text, node.get("format"))
                if found is not None:
                    return found
            return UNFILLED
        source = unit or (self.units[0] if self.units else None)
        if source is not None and words & {"start", "end", "time", "timestamp"}:
            return clock(source.end if "end" in words else source.start)
        if words & {"source", "modality"} and source is not None:
            return ", ".join(dict.fromkeys(LABEL[t.source] for t in source.texts)) or UNFILLED
        if words & _TITLE_WORDS and words <= _TITLE_WORDS | _OF_THE_VIDEO:
            if unit is not None:
                return unit.title if unit.texts else UNFILLED
            return keyphrase([t for u in self.units for t in u.texts]) or UNFILLED
        if words & _SUMMARY_WORDS:
            # A summary covers the whole video (or window), whatever the prompt matched best.
            scope = [unit] if unit is not None else self.whole
            return self._quote(" ".join(p.summary for p in scope if p.texts))
        if words & _GENERIC_WORDS or not words:
            if unit is not None:
                return self._quote(unit.summary) if unit.texts else UNFILLED
            if self.overview:
                return self._quote(" ".join(p.summary for p in self.whole if p.texts))
            return self._quote("", self.units)
        # A specific field (speaker, location…) takes only a text that names what it asks about.
        found = text_for([w for w in hint(name, node) if w not in _TITLE_WORDS], self._texts(unit))
        return UNFILLED if found is None else self._quote(" ".join(found.split()))

    def _quote(self, text: str, pool: Sequence[Part] = ()) -> Any:
        """``text`` unless another field already has it (then the next unquoted part of ``pool``)."""
        for candidate in [text, *(p.summary for p in pool if p.texts)]:
            if candidate and candidate not in self._quoted:
                self._quoted.add(candidate)
                return candidate
        return UNFILLED


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
