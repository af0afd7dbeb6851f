"""Grounding rules for model answers, whatever the model: the model sees only the top retrieved evidence,
and its text reaches the caller only sentence by sentence after checks.

- A sentence may cite only markers of retrieved moments.
- The numbers (read as quantities), the negations and qualifiers, and two thirds of the key words of a
  sentence must be in the moments it cites (uncited: in the moment the sentence before cited, or in one
  single retrieved moment), and it may not leave out a negation the moment says of its words.
- "NOT IN THE VIDEOS" (the model's way to say the evidence does not answer) becomes a plain refusal.
- A structured answer is decoded under the caller's schema, validated, and its numbers must be in the
  evidence.

Whenever a check fails, the model is stopped and the extractive answer follows, with the reason, so what
was sent stays true and the joined deltas equal the final text.

A sentence need not be finished to start streaming: its words go out as soon as everything said so far in it
is held, word for word, by one retrieved moment (stricter than the sentence check, which lets a third of the
words be the model's own), so the first words reach the caller about when the model writes them rather than
a sentence later. The rest of that sentence still has to pass the sentence check.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from decimal import Decimal

import jsonschema

from tl_mcp.sandbox.answerers.base import ChatModel, Cue, Made, ModelDown, Question, Reply
from tl_mcp.sandbox.answerers.text import chunk_text, content_terms, count_tokens

#: Evidence the model is given, in tokens: measured, longer contexts made small models slow and wrong.
EVIDENCE_TOKENS = 500
HISTORY_TURNS = 3
#: The prompt asks for one to three sentences; a model that keeps going is stopped after them.
MAX_SENTENCES = 3
#: Key words an unfinished sentence must hold before its words go out early: fewer say too little to be
#: worth sending before the sentence is checked (and a refusal, which is never early, starts that short).
_EARLY_KEYS = 3
REFUSAL = "NOT IN THE VIDEOS"
#: A model's text is cut off past this many characters per token asked for: a server may ignore
#: max_tokens, and an answer with no sentence end would otherwise be held (and re-scanned) unbounded.
CHARS_PER_TOKEN = 8

# The model cites a line by its number ([2]); each number becomes the moment's time marker as the text
# streams. A time marker costs a Qwen-style tokenizer 13 tokens (one per digit), a number 3: measured on
# 2 cores, that is about 0.15 s of prompt per evidence line and 0.7 s of writing per citation.
# "State the answer in words": told only to cite after the fact, Qwen2.5-1.5B answered 3 of 9 bench
# questions with a bare [1].
_SYSTEM = (
    "You answer questions about videos from evidence lines. Each line starts with the number of a "
    "moment, such as [1], then what was said or shown there. Answer with one or two short sentences that "
    "state the answer in words, using only what the evidence says, each followed by the number of the "
    "line it comes from, such as [1]."
)
# Told to reply with a fixed phrase when the evidence does not answer, small models say it for every
# question (measured: Qwen2.5-1.5B refused 4/4 answerable ones); left alone they say "not mentioned",
# which is recognised here, and what they invent instead the checks catch.
_REFUSING = re.compile(
    r"\bnot (?:mentioned|stated|specified|provided|given|said|shown|included|found"
    r"|in the (?:evidence|videos?))|\bno (?:information|mention|evidence)\b"
    r"|\b(?:does not|doesn't|do not|don't) (?:say|mention|specify|state)"
    r"|\bcannot be (?:determined|answered)\b|" + REFUSAL,
    re.IGNORECASE,
)
_SYSTEM_JSON = (
    "Fill the JSON object from the evidence lines below ONLY (each starts with the number of a "
    "moment). Copy names, numbers and phrases as the evidence gives them; never invent a value."
)
_MARK = re.compile(r"\[\s*(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\s*\]")
#: A citation by line number, as the prompt asks for ([2]; [1, 3] or [1-3] for several lines), and the
#: start of one still being written. Bounded: the start is held back from the caller and the length
#: limit, so a "[" followed by endless blanks must stop being one.
_LINE_ITEM = r"\d{1,3}(?: {0,2}- {0,2}\d{1,3})?"
_LINE_NUMBER = re.compile(rf"\[ {{0,2}}({_LINE_ITEM}(?: {{0,2}}, {{0,2}}{_LINE_ITEM}){{0,4}}) {{0,2}}\]")
_LINE_NUMBER_START = re.compile(r"\[[\d, -]{0,80}")
#: What reads as a citation by number, whether or not it is one a line has ("[999999]", "[3-1]").
_NUMBER_CITATION = re.compile(r"\[ {0,2}\d[\d, -]*\]")
# A number as written in digits: "1,000" is one thousand (not 1 and 0), "2.5 million" two and a half
# million (not 2.5), "4th" an ordinal (not 4), "30%" a share (not 30 people): read loosely, an invented
# quantity hides behind a digit the evidence has.
_NUMBER = re.compile(
    r"(\d+(?:,\d{3}(?!\d))*(?:\.\d+)?)(?:(st|nd|rd|th)\b|\s*(hundred|thousand|million|billion|trillion)\b)?"
    r"(\s*(?:%|percent\b|per cent\b))?",
    re.IGNORECASE,
)
#: Characters that show nothing: "2\u200b5" reads as 25 to the caller, so it is read as 25 here too.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
#: What is left of a marker that is not whole ("[00:06-" or "00:12]") once the whole ones are taken out.
#: Or of a line number cut off at the end ("[1", the model stopped at max_tokens).
_BROKEN_MARK = re.compile(r"\[\s*\d{1,2}:\d{2}[\s\d:-]*|[\s\d:-]*\d{1,2}:\d{2}\s*\]|\[ {0,2}\d[\d, -]*$")
# Released at a sentence end, after the citation markers that follow it (they belong to it). A marker
# alone never ends a sentence: models put it before the fact as often as after; but the markers between
# two sentences do not join them into one (which would let any number of sentences out as one). Chinese
# and Japanese full stops need no space after them.
_BOUNDARY = re.compile(
    rf"[.!?](?:\s+{_MARK.pattern})*\s+(?=[^\s\[])|[\u3002\uff01\uff1f](?:\s*{_MARK.pattern})*\s*(?=[^\s\[])"
    r"|\n+(?=[^\s\[])"
)
#: How far before the new text a sentence end it completes may start: its stop and the markers after it.
_BOUNDARY_REACH = 80
_UNITS_TEXT = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen
"""
_UNITS = {w: i for i, w in enumerate(_UNITS_TEXT.split())}
_TENS_TEXT = "twenty thirty forty fifty sixty seventy eighty ninety"
_TENS = {w: 10 * (i + 2) for i, w in enumerate(_TENS_TEXT.split())}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TENS) | frozenset(_SCALES)
#: Words a grounded sentence may use without the evidence saying them.
_FRAME_TEXT = """
according evidence moment moments marker screen shows shown says said speaker someone video videos
mentioned mentions states stated cost costs price per percent one first second third also should
"""
_FRAME = frozenset(_FRAME_TEXT.split())


#: Words that flip or bound what a sentence says ("not two dollars", "only on Sundays", "more than
#: three"): a sentence may use one only where the moment it leans on says it too. A key word the model
#: may bring is rephrasing; one of these, added, says the opposite of the evidence with two thirds of its
#: words.
_FLIPS = re.compile(
    r"\b(?:not|no|never|nor|neither|none|nobody|nothing|nowhere|without|except|unless|cannot|anymore"
    r"|only|than|least|almost|nearly|hardly|barely|rarely|seldom)\b|n['\u2019]t\b",
    re.IGNORECASE,
)


def _flips(text: str) -> set[str]:
    """The flipping words of ``text``; every way of saying "not" counts as "not"."""
    found = {w.lower().replace("\u2019", "'") for w in _FLIPS.findall(text)}
    return {"not" if w in ("n't", "cannot") else w for w in found}


def _norm_marker(match: re.Match[str]) -> str:
    return f"[{match.group(1)}-{match.group(2)}]"


def _numbers(text: str) -> set[str]:
    """The numbers in ``text``, written in digits or in words ("thirty five", "two hundred twenty",
    "two point five")."""
    found: set[str] = set()

    def digits(match: re.Match[str]) -> str:
        value = Decimal(match.group(1).replace(",", "")) * _SCALES.get((match.group(3) or "").lower(), 1)
        found.add(_canonical(value) + (match.group(2) or "").lower() + ("%" if match.group(4) else ""))
        return " "

    for run in _CJK_NUMBER.findall(text):
        found.add(str(_cjk_number(run)))
    words = re.findall(r"[a-z]+", _NUMBER.sub(digits, text).lower().replace("-", " "))
    total = current = 0
    spoken = False
    #: The digits said after "point", while a number in words has a decimal part.
    decimals: str | None = None
    for word in [*words, ""]:
        if decimals is not None and _UNITS.get(word, 10) < 10:
            decimals += str(_UNITS[word])
        elif decimals is None and (word in _UNITS or word in _TENS):
            current += _UNITS.get(word, 0) + _TENS.get(word, 0)
            spoken = True
        elif decimals is None and word in _SCALES:
            # "a million" or "thousand" alone is a quantity too: never a word the model may add freely.
            current = current or 1
            scale = _SCALES[word]
            total, current = (total + current * scale, 0) if scale > 100 else (total, current * scale)
            spoken = True
        elif word == "and" and spoken and decimals is None:
            continue
        elif word == "point" and spoken and decimals is None:
            decimals = ""
        elif spoken:
            share = "%" if word == "percent" else ""
            found.add(_canonical(Decimal(f"{total + current}.{decimals or 0}")) + share)
            total = current = 0
            spoken = False
            decimals = None
    return found


_CJK_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "两": 2}
_CJK_UNITS = {"十": 10, "百": 100, "千": 1000}
_CJK_SCALES = {"万": 10**4, "萬": 10**4, "億": 10**8, "亿": 10**8}
_CJK_NUMBER = re.compile(f"[{''.join([*_CJK_DIGITS, *_CJK_UNITS, *_CJK_SCALES])}]+")


def _cjk_number(run: str) -> int:
    """A number in Chinese or Japanese numerals: "九十" 90, "二千五百" 2500, "二〇二五" 2025."""
    if not any(c in _CJK_UNITS or c in _CJK_SCALES for c in run):
        return int("".join(str(_CJK_DIGITS[c]) for c in run))
    total = section = digit = 0
    for c in run:
        if c in _CJK_DIGITS:
            digit = _CJK_DIGITS[c]
        elif c in _CJK_UNITS:
            section += (digit or 1) * _CJK_UNITS[c]
            digit = 0
        else:
            total += ((section + digit) or 1) * _CJK_SCALES[c]
            section = digit = 0
    return total + section + digit


def _values(text: str) -> set[str]:
    """The numbers in ``text`` as a JSON field holds them: 20 for "twenty percent", 4 for "4th"."""
    return {re.sub(r"(?:st|nd|rd|th|%)$", "", n) for n in _numbers(text)}


def _canonical(value: Decimal) -> str:
    return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")


#: Scripts written without spaces: a run of them is not one word (any sentence that began like the
#: evidence would hold then), so such text is read as pairs of characters.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _terms(text: str) -> list[str]:
    """``content_terms`` of ``text``, with each run of an unspaced script as its pairs of characters."""
    found: dict[str, None] = {}
    for term in content_terms(text):
        runs = _UNSPACED.findall(term)
        if not runs:
            found.setdefault(term, None)
            continue
        for part in _UNSPACED.split(term):
            if len(part) > 1:
                found.setdefault(part, None)
        for run in runs:
            for i in range(max(len(run) - 1, 1)):
                found.setdefault(run[i : i + 2], None)
    return list(found)


def _stem(word: str) -> str:
    return word[:5]


def evidence_lines(cues: list[Cue], budget: int = EVIDENCE_TOKENS) -> list[Cue]:
    """The best cues that fit ``budget`` tokens (always at least one), one per marker: two videos' moments
    at the same times would share a marker, and a citation must name one moment."""
    used: list[Cue] = []
    spent = 0
    for cue in cues:
        if any(c.marker == cue.marker for c in used):
            continue
        cost = count_tokens(cue.text) + 8
        if used and spent + cost > budget:
            break
        used.append(cue)
        spent += cost
    return used


def messages(question: Question, cues: list[Cue]) -> list[dict[str, str]]:
    system = _SYSTEM_JSON if question.schema is not None else _SYSTEM
    if question.instructions:
        system += f"\n\nThe caller's instructions: {question.instructions}"
    out = [{"role": "system", "content": system}]
    for asked, answered in question.history[-HISTORY_TURNS:]:
        out.append({"role": "user", "content": asked})
        out.append({"role": "assistant", "content": answered[:600]})
    # The evidence sits next to the question it is for: small models follow that better than a system
    # prompt several turns up.
    # One line per moment: a subtitle's second line would read as a line of no number (or of its own).
    evidence = "\n".join(f"[{n}] ({c.source}) {' '.join(c.text.split())}" for n, c in enumerate(cues, 1))
    out.append({"role": "user", "content": f"Evidence:\n{evidence}\n\nQuestion: {question.question}"})
    return out


class Ungrounded(ValueError):
    """A model sentence the evidence does not support; the message says which check failed."""


class _Checker:
    def __init__(self, cues: list[Cue]) -> None:
        self.by_marker = {c.marker: c for c in cues}
        self.cues = cues
        #: What the sentence before leaned on: an uncited sentence usually goes on about the same moment.
        self.support: list[Cue] = []
        self.cited: list[str] = []
        #: Moments that hold an uncited sentence, named at the end when the model cited nothing.
        self.implied: list[str] = []

    def foreign_mark(self, text: str) -> str | None:
        """The first whole citation marker in ``text`` that is not a retrieved moment's: the sentence it
        is in fails whatever follows, so the model need not be heard out."""
        text = _INVISIBLE.sub("", text)
        for match in _MARK.finditer(text):
            if _norm_marker(match) not in self.by_marker:
                return _norm_marker(match)
        number = _NUMBER_CITATION.search(text)  # a line number no evidence line has
        return number.group() if number is not None else None

    def check(self, sentence: str) -> None:
        sentence = _INVISIBLE.sub("", sentence)
        marks = [_norm_marker(m) for m in _MARK.finditer(sentence)]
        for mark in marks:
            if mark not in self.by_marker:
                raise Ungrounded(f"it cites {mark}, which is not one of the retrieved moments")
        number = _NUMBER_CITATION.search(sentence)
        if number is not None:
            raise Ungrounded(f"it cites {number.group()}, which is not one of the retrieved moments")
        body = _MARK.sub(" ", sentence)
        broken = _BROKEN_MARK.search(body)
        if broken:
            # Read as words, its times would be numbers the evidence lacks: a confusing reason.
            raise Ungrounded(f"it writes {broken.group().strip()}, not a whole marker such as [00:06-00:12]")
        numbers = _numbers(body)
        flips = _flips(body)
        keys = [w for w in _terms(body) if w not in _FRAME and not w.isdigit() and w not in _NUMBER_WORDS]
        if not keys and not numbers and not (self.cited or self.implied):
            raise Ungrounded("it gave a citation but no answer")
        if marks:
            cited = [self.by_marker[m] for m in dict.fromkeys(marks)]
            problem = _unsupported(numbers, flips, keys, cited)
            if problem:
                raise Ungrounded(f"{problem} the moment it cites")
            self.support = cited
            self.cited.extend(m for m in marks if m not in self.cited)
            return
        # Uncited: one moment (the one the sentence before cited, or any single retrieved one) must hold
        # it all; facts pieced together from unrelated moments are how small models mislead.
        candidates = [self.support] if self.support else []
        candidates += [[c] for c in self.cues]
        problems = [_unsupported(numbers, flips, keys, support) for support in candidates]
        for support, problem in zip(candidates, problems, strict=True):
            if not problem:
                self.support = support
                self.implied.extend(c.marker for c in support if c.marker not in self.implied)
                return
        # The most telling reason comes from a moment that holds the numbers (it is about the same thing).
        reason = min(problems, key=lambda p: (p.startswith("the number"), len(p)))
        raise Ungrounded(f"{reason} any single retrieved moment (and it cites none)")

    def holds(self, prefix: str) -> bool:
        """Whether ``prefix`` (the start of a sentence, cut at a word end) may go out before the sentence
        ends: it says something (a number, or three key words) and every number and key word in it is in
        the moments it cites or, uncited, in one moment. Nothing is recorded: the sentence check does that."""
        prefix = _INVISIBLE.sub("", prefix)
        marks = [_norm_marker(m) for m in _MARK.finditer(prefix)]
        if any(mark not in self.by_marker for mark in marks):
            return False
        body = _MARK.sub(" ", prefix)
        if _BROKEN_MARK.search(body):
            return False
        numbers = _numbers(body)
        keys = [w for w in _terms(body) if w not in _FRAME and not w.isdigit() and w not in _NUMBER_WORDS]
        if not numbers and len(keys) < _EARLY_KEYS:
            return False
        if marks:
            candidates = [[self.by_marker[m] for m in dict.fromkeys(marks)]]
        else:
            candidates = ([self.support] if self.support else []) + [[c] for c in self.cues]
        flips = _flips(body)
        return any(not _unsupported(numbers, flips, keys, support, every=True) for support in candidates)


def _unsupported(
    numbers: set[str], flips: set[str], keys: list[str], support: list[Cue], *, every: bool = False
) -> str:
    """Why ``support`` does not hold a sentence with these numbers, flipping words and key words ("" when
    it does); ``every``: all its key words must be the evidence's, not two thirds."""
    evidence = " ".join(c.text for c in support)
    missing = sorted(numbers - _numbers(evidence))
    if missing:
        return f"the number {missing[0]} is not in"
    flipped = sorted(flips - _flips(evidence))
    if flipped:
        return f'it says "{flipped[0]}", which is not in'
    said = _Words(_terms(evidence))
    # "Pears are sold on Sundays" from "pears are not sold on Sundays": every word is the evidence's,
    # and it says the opposite.
    for flip, governed in _governed(evidence):
        if flip not in flips and (dropped := next((w for w in keys if _Words(governed).has(w)), None)):
            return f'it leaves out the "{flip}" before "{dropped}" in'
    absent = [w for w in keys if not said.has(w)]
    # Two thirds of the key words must be the evidence's own: a model may rephrase, not add.
    if absent and (every or len(absent) * 3 > len(keys)):
        # A reason names a word by its start: a model's "word" may be a whole paragraph without spaces.
        named = ", ".join(w if len(w) <= 30 else w[:29] + "\u2026" for w in absent[:3])
        return f"its key words ({named}) are not in"
    return ""


#: What a flipping word governs: the next key words of its clause.
_CLAUSE = re.compile(r"[^,.;:!?/()]*")
_GOVERNED = 2


def _governed(evidence: str) -> list[tuple[str, list[str]]]:
    """Each flipping word of ``evidence`` with the key words it governs and the evidence says nowhere
    else ("not" in "pears are not sold at the market" governs "sold" and "market", unless "apples are
    sold" is said too)."""
    found: list[tuple[str, list[str]]] = []
    free = evidence
    for match in _FLIPS.finditer(evidence):
        clause = _CLAUSE.match(evidence, match.end())
        end = clause.end() if clause else match.end()
        free = free[: match.start()] + " " * (end - match.start()) + free[end:]
        found.append((next(iter(_flips(match.group()))), _terms(evidence[match.end() : end])[:_GOVERNED]))
    elsewhere = _Words(_terms(free))
    return [(flip, kept) for flip, words in found if (kept := [w for w in words if not elsewhere.has(w)])]


class _Words:
    """Words of the evidence, to tell whether a model's word is one of them in another form: the same
    first five letters and at most three letters of ending apart ("apple" and "apples", "discount" and
    "discounted"; not "discounted" and "discontinued", nor "international" and "internet")."""

    def __init__(self, words: list[str]) -> None:
        self.by_stem: dict[str, list[str]] = {}
        for word in words:
            self.by_stem.setdefault(_stem(word), []).append(word)

    def has(self, word: str) -> bool:
        for said in self.by_stem.get(_stem(word), ()):
            common = next(
                (i for i, (a, b) in enumerate(zip(word, said, strict=False)) if a != b),
                min(len(word), len(said)),
            )
            if len(word) - common <= 3 and len(said) - common <= 3:
                return True
        return False


def _early(pending: str) -> int:
    """How much of ``pending`` (an unfinished sentence) is complete words that may be judged now: up to the
    last space, but not into an unclosed citation marker, and not a trailing number, which the next word may
    still change ("thirty" may be "thirty five", "2" may be "2.5")."""
    cut = pending.rfind(" ")
    if cut <= 0:
        return 0
    opened = pending.rfind("[", 0, cut)
    if opened > pending.rfind("]", 0, cut):
        cut = opened
    head = pending[:cut].rstrip()
    # The whole trailing number goes, not only its last word: in "thirty five" "thirty" is not said.
    while head:
        last = head.rsplit(None, 1)[-1]
        word = last.strip(",;:-").lower()
        if not (word[-1:].isdigit() or word in _NUMBER_WORDS or word in ("and", "point")):
            break
        head = head[: len(head) - len(last)].rstrip()
    return len(head)


def _is_refusal(text: str) -> bool:
    return _REFUSING.search(" ".join(text.split())) is not None


class GroundedAnswerer:
    """A chat model answering under the grounding rules; the extractive text is its fallback."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.made = model.made

    def warm(self) -> None:
        """Blocking: ready the model for the first question, if it is one that can be readied (in process)."""
        warm = getattr(self.model, "warm", None)
        if warm is not None:
            warm([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "Evidence:"}])

    def answer(self, question: Question) -> Reply:
        if not question.cues:
            made = Made("extractive", None, "nothing was retrieved, so the model was not asked")
            return Reply(iter(chunk_text(question.extractive())), made)
        reply = Reply(iter(()), self.made)
        run = self._structured if question.schema is not None else self._text
        reply._deltas = run(question, reply)
        return reply

    def _fallback(
        self, question: Question, reply: Reply, reason: str, sent: str, early: int = 0, *, down: bool = False
    ) -> Iterator[str]:
        """The extractive answer after what was ``sent``; ``early`` > 0: the last sentence was cut short;
        ``down``: the model failed (``reason`` says how), rather than writing something unsupported."""
        who = f"{self.made.answerer} model {self.made.model}"
        if question.schema is not None or not sent:
            reply.made = Made("extractive", None, f"fallback: the {who} answer was set aside ({reason})")
            if question.schema is not None:
                yield question.extractive()
                return
            lead = f"The {who} answer was set aside: {reason}. The retrieved moments themselves:\n\n"
        else:
            stopped = "the model stopped" if down else "the model stopped at an unsupported sentence"
            reply.made = Made(self.made.answerer, self.made.model, f"partly extractive: {stopped} ({reason})")
            if down:
                lead = f"\n\n(The model stopped: {reason}. The retrieved moments:)\n"
            else:
                what = "The rest of the model's sentence was" if early else "The model's next sentence was"
                lead = f"\n\n({what} set aside: {reason}. The retrieved moments:)\n"
        yield from chunk_text(lead + question.extractive())

    def _refusal(self, question: Question, reply: Reply) -> Iterator[str]:
        reply.made = Made(self.made.answerer, self.made.model, "the model found no answer in the evidence")
        text = (
            "The retrieved moments do not answer this question, so I will not guess: nothing said, "
            "subtitled or written on screen in them says it."
        )
        yield from chunk_text(text)

    def _text(self, question: Question, reply: Reply) -> Iterator[str]:
        cues = evidence_lines(question.cues)
        checker = _Checker(cues)
        asked = self.model.chat(messages(question, cues), None, question.max_tokens)
        tokens = _markers_for_numbers(asked, cues)
        held = _Held()
        sent = ""
        #: Characters of the held text (the start of an unfinished sentence) already sent early.
        early = 0
        #: How long the unfinished sentence must be before it is judged again: each judgement reads it
        #: all, so it is judged at lengths that grow by an eighth (every word while it is short), which
        #: keeps a long sentence's cost linear rather than quadratic.
        judge_at = 0
        released = 0
        try:
            while True:
                try:
                    token = next(tokens)
                except StopIteration:
                    break
                except ModelDown as exc:
                    yield from self._fallback(question, reply, str(exc), sent, early, down=True)
                    return
                scan = held.add(token)
                pending = held.text
                if len(sent) + len(pending) - early > _limit(question.max_tokens):
                    yield from self._fallback(question, reply, _too_long(question.max_tokens), sent, early)
                    return
                ends = [m.end() for m in _BOUNDARY.finditer(pending, scan)]
                # A sentence end with no words before it ends nothing: a model's answer may start with a
                # line break.
                ends = [e for i, e in enumerate(ends) if pending[ends[i - 1] if i else 0 : e].strip()]
                if not ends:
                    cut = _early(pending)
                    if cut > early and cut >= judge_at:
                        judge_at = cut + cut // 8
                        said = pending[:cut]
                        # A refusal, or a marker of no retrieved moment, decides the sentence now as it
                        # would at its end, so the caller does not wait for the rest of it.
                        if not sent and _is_refusal(said):
                            yield from self._refusal(question, reply)
                            return
                        foreign = checker.foreign_mark(said)
                        if foreign is not None:
                            reason = f"it cites {foreign}, which is not one of the retrieved moments"
                            yield from self._fallback(question, reply, reason, sent, early)
                            return
                        if not _is_refusal(said) and checker.holds(said):
                            yield from held.pieces(early, cut)
                            sent += pending[early:cut]
                            early = cut
                    continue
                # One token may end several sentences: none past MAX_SENTENCES is checked or sent.
                ends = ends[: MAX_SENTENCES - released]
                ready, rest = pending[: ends[-1]], pending[ends[-1] :]
                sentences = _split(ready)
                if not sent and _is_refusal(sentences[0]):
                    yield from self._refusal(question, reply)
                    return
                try:
                    for sentence in sentences:
                        checker.check(sentence)
                except Ungrounded as exc:
                    yield from self._fallback(question, reply, str(exc), sent, early)
                    return
                # The model's own token pieces, so a checked sentence still streams as it was made.
                yield from held.pieces(early, len(ready))
                sent += ready[early:]
                held = _Held(rest)
                early = judge_at = 0
                released += len(sentences)
                if released >= MAX_SENTENCES:
                    held = _Held()
                    break
            tail = held.text
            if not sent and (not tail.strip() or _is_refusal(tail)):
                if tail.strip():
                    yield from self._refusal(question, reply)
                else:
                    yield from self._fallback(question, reply, "the model returned no text", sent, early)
                return
            try:
                if tail.strip():
                    checker.check(tail)
            except Ungrounded as exc:
                yield from self._fallback(question, reply, str(exc), sent, early)
                return
            if len(tail) > early:
                yield from held.pieces(early, len(tail))
                sent += tail[early:]
            # Every sentence was held by a retrieved moment but none said which: name them. A citation is
            # found in the text by its marker as the evidence writes it, so one the model wrote loosely
            # ("[00:06 - 00:12]") is named again too.
            unnamed = [m for m in checker.cited or checker.implied if m not in sent]
            if unnamed:
                yield "\n\nFrom " + ", ".join(unnamed) + "."
        finally:
            tokens.close()  # type: ignore[attr-defined]

    def _structured(self, question: Question, reply: Reply) -> Iterator[str]:
        assert question.schema is not None
        cues = evidence_lines(question.cues)
        max_tokens = question.max_tokens * 2
        tokens = self.model.chat(messages(question, cues), question.schema, max_tokens)
        text = ""
        try:
            for token in tokens:
                text += token
                if len(text) > _limit(max_tokens):
                    yield from self._fallback(question, reply, _too_long(max_tokens), "")
                    return
        except ModelDown as exc:
            yield from self._fallback(question, reply, str(exc), "")
            return
        finally:
            tokens.close()  # type: ignore[attr-defined]
        try:
            value = json.loads(text)
        except ValueError:
            yield from self._fallback(question, reply, "its output is not JSON", "")
            return
        problems = sorted(
            e.message for e in jsonschema.Draft202012Validator(question.schema).iter_errors(value)
        )
        if problems:
            yield from self._fallback(question, reply, f"its JSON does not fit the schema: {problems[0]}", "")
            return
        # The model read numbered lines, not their times: a number only a time marker holds is invented.
        known = _values(" ".join(c.text for c in cues).replace(":", " "))
        invented = sorted(_values(json.dumps(value).replace(":", " ")) - known)
        if invented:
            yield from self._fallback(question, reply, f"the number {invented[0]} is not in the evidence", "")
            return
        yield from chunk_text(json.dumps(value, ensure_ascii=False))


def _limit(max_tokens: int) -> int:
    return max_tokens * CHARS_PER_TOKEN


def _too_long(max_tokens: int) -> str:
    return f"it ran longer than the {max_tokens} tokens asked for (max_tokens) and was cut off"


def _split(text: str) -> list[str]:
    out: list[str] = []
    last = 0
    for match in _BOUNDARY.finditer(text):
        out.append(text[last : match.end()])
        last = match.end()
    if last < len(text):
        out.append(text[last:])
    return [s for s in out if s.strip()]


def _markers_for_numbers(tokens: Iterator[str], cues: list[Cue]) -> Iterator[str]:
    """The model's tokens with each line number it cites ([2]) written as that moment's time marker, the
    citation the caller reads; a number no line has stays as written (and is refused as a citation)."""
    carry = ""
    try:
        for token in tokens:
            text, carry = carry + token, ""
            out: list[str] = []
            at = 0
            while (open_at := text.find("[", at)) >= 0:
                out.append(text[at:open_at])
                cited = _LINE_NUMBER.match(text, open_at)
                if cited is not None:
                    lines = _lines(cited.group(1), len(cues))
                    # Side by side, as the sentence-end pattern reads the markers after a full stop.
                    out.append(" ".join(cues[n - 1].marker for n in lines) if lines else cited.group())
                    at = cited.end()
                elif _LINE_NUMBER_START.fullmatch(text, open_at):
                    carry, at = text[open_at:], len(text)  # the next token may close it
                else:
                    out.append("[")
                    at = open_at + 1
            out.append(text[at:])
            if piece := "".join(out):
                yield piece
        if carry:
            yield carry
    finally:
        tokens.close()  # type: ignore[attr-defined]


def _lines(cited: str, count: int) -> list[int]:
    """The line numbers ``cited`` ("2", "1, 3", "1-3") names, or none if one of them is no line of the
    ``count`` (a range must run forwards)."""
    lines: list[int] = []
    for item in cited.split(","):
        first, _, last = item.partition("-")
        low, high = int(first), int(last or first)
        if not 1 <= low <= high <= count:
            return []
        lines.extend(n for n in range(low, high + 1) if n not in lines)
    return lines


class _Held:
    """The model's tokens of the unfinished sentence: their text, and where each starts, so a stretch of
    them is sent token by token and the new text scanned without rereading it all for every token."""

    def __init__(self, first: str = "") -> None:
        self.tokens: list[str] = []
        self.starts: list[int] = []
        self.text = ""
        #: Where the text's trailing whitespace starts (its length when there is none).
        self.blank = 0
        if first:
            self.add(first)

    def add(self, token: str) -> int:
        """Hold ``token``; returns where a sentence end it completes may start: one needs a full stop (and
        the markers after it) and whitespace before the next word, so only the trailing whitespace and
        the few characters before it were not already known not to end one."""
        scan = max(self.blank - _BOUNDARY_REACH, 0)
        self.starts.append(len(self.text))
        self.tokens.append(token)
        self.text += token
        if token.strip():
            self.blank = len(self.text) - (len(token) - len(token.rstrip()))
        return scan

    def pieces(self, start: int, end: int) -> Iterator[str]:
        """Characters ``start`` to ``end`` of the held text, token by token."""
        first = max(bisect.bisect_right(self.starts, start) - 1, 0)
        for i in range(first, len(self.tokens)):
            at, piece = self.starts[i], self.tokens[i]
            if at >= end:
                return
            lo, hi = max(start - at, 0), min(end - at, len(piece))
            if lo < hi:
                yield piece[lo:hi]
