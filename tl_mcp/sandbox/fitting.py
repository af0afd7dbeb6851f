"""Which evidence fits one field of a caller's JSON Schema, for the extractive structured outputs.

A field is filled only with evidence of its kind: a number written or spoken in the video for a number,
a date-like phrase for a date field (by its name, description or format), a listed value for an enum,
a boolean only when the texts say so. When nothing fits, the filler marks the field as unfilled: left
out when the schema allows, null when it allows null, else a neutral value of the right type, and
listed in the response metadata either way, so nothing is passed off as evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

JsonObj = dict[str, Any]

#: What an unfilled required, non-nullable string says instead of a quote.
NOT_FOUND = "not found in the video's text (offline sandbox)"
#: The most entries an array is given, however many its ``minItems`` asks for: entries past the evidence
#: are repeats, and a huge ``minItems`` would only cost the machine.
MAX_ENTRIES = 100


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text`` (word lists read better as one string)."""
    return frozenset(text.split())


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")
_HINT_STOP = word_set(
    "a an the of in on at to for by with from and or is are was were be this that it its any each "
    "video clip value field string number integer list array object given text"
)

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_DIGITS = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
_SPELLED = re.compile(
    r"\b(?:(?:" + "|".join([*_UNITS, *_TENS, *_SCALES]) + r")[\s-]*(?:and\s+)?)+", re.IGNORECASE
)
#: Words that say which numbers a field wants, beyond the field's own words.
_MONEY = word_set("price cost costs amount fee fees dollar dollars usd eur euro euros paid pay salary")
_MONEY_SIGN = re.compile(r"[$€£]|\b(?:dollars?|euros?|pounds? sterling|usd|eur|cents?)\b", re.IGNORECASE)
#: A currency or unit named in a field's words, and how the evidence writes it: a number in another unit
#: is not the field's (a price in dollars is no price in euros).
_UNIT_SIGNS = {
    word: re.compile(pattern, re.IGNORECASE)
    for words, pattern in (
        ("dollar dollars usd", r"\$|\b(?:dollars?|usd|bucks)\b"),
        ("euro euros eur", r"€|\b(?:euros?|eur)\b"),
        ("pound pounds gbp sterling", r"£|\b(?:pounds?|gbp|sterling)\b"),
        ("yen jpy", r"¥|\b(?:yen|jpy)\b"),
        ("km kilometres kilometers", r"\b(?:km|kilomet(?:re|er)s?)\b"),
        ("miles mile", r"\b(?:miles?|mi)\b"),
        ("kg kilograms kilos", r"\b(?:kg|kilo(?:gram)?s?)\b"),
        ("grams gram", r"\b(?:g|grams?)\b"),
        ("minutes mins", r"\b(?:minutes?|mins?)\b"),
        ("hours hrs", r"\b(?:hours?|hrs?)\b"),
    )
    for word in words.split()
}
_PERCENT = word_set("percent percentage pct rate growth share ratio")
_PERCENT_SIGN = re.compile(r"%|\bper ?cent\b", re.IGNORECASE)

_MONTH_NAMES = "january february march april may june july august september october november december"
_MONTHS = _MONTH_NAMES.split()
_MONTH = r"(?:" + "|".join(m[:3] + f"(?:{m[3:]})?" for m in _MONTHS) + r")\.?"
_DATE_PATTERNS = (
    re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"),
    re.compile(rf"\b({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.IGNORECASE),
    re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH}),?\s+(\d{{4}})\b", re.IGNORECASE),
    re.compile(rf"\b({_MONTH})\s+(\d{{4}})\b", re.IGNORECASE),
    # A day without its year ("opens on March 14"): as written, since no whole date can be made of it.
    re.compile(rf"\b({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![:.]?\d)", re.IGNORECASE),
    re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\b", re.IGNORECASE),
    re.compile(r"\b((?:19|20)\d{2})\b"),
)
_YEAR = re.compile(r"(?<![\w.,-])(1[5-9]\d{2}|20\d{2})(?![\w.,-]?\d)")
_MONTH_WORD = re.compile(rf"\b(?:{'|'.join(_MONTHS)})\b", re.IGNORECASE)
_DATE_WORDS = word_set("date day dated deadline birthday anniversary")
#: Words of a date field that do not say which date it wants (a deadline is a particular date).
_WHEN = word_set("date day dated when time timestamp")

#: Leading words of a boolean field's name that carry no content ("is_outdoor" asks about "outdoor").
_BOOL_VERBS = word_set("is are was were has have had does do did can could should will any there")
#: Boolean fields that ask whether something is said or shown: the whole video's texts answer those,
#: so absence from every text is evidence for false.
_SAYS = word_set(
    "mention mentions mentioned says said say talks talk discusses discussed contains contain includes "
    "include shows show references refers cites"
)


_FOUND_WORDS = word_set("found match matched matches answered answerable relevant any exists")


class Unfilled:
    """No evidence fits a field (a singleton; the filler turns it into the schema's empty value)."""

    _instance: Unfilled | None = None

    def __new__(cls) -> Unfilled:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance


UNFILLED = Unfilled()


def name_words(name: str) -> list[str]:
    """``launchDate`` / ``launch_date`` -> ["launch", "date"]."""
    return _WORD.findall(_CAMEL.sub(" ", name).lower())


def hint(name: str, node: JsonObj) -> list[str]:
    """The words that say what a field wants: its name, then its title and description."""
    text = " ".join([" ".join(name_words(name)), *(str(node.get(k, "")) for k in ("title", "description"))])
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in _HINT_STOP and len(w) > 1))


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word


def overlap(words: Iterable[str], text: str) -> int:
    """How many of ``words`` the text contains (by a five-letter stem: growth/grew do not meet, launch and
    launched do)."""
    stems = {_stem(w) for w in _WORD.findall(text.lower())}
    return sum(1 for w in dict.fromkeys(words) if _stem(w) in stems)


def _spelled_value(phrase: str) -> float | None:
    total, current, seen = 0, 0, False
    for word in re.findall(r"[a-z]+", phrase.lower()):
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word in _SCALES:
            current = max(current, 1) * _SCALES[word]
            if _SCALES[word] >= 1000:
                total, current = total + current, 0
        else:
            continue
        seen = True
    return float(total + current) if seen else None


def numbers_in(text: str) -> list[tuple[float, int, int]]:
    """Numbers written in digits or words, as (value, start, end) in ``text``, in order."""
    found: list[tuple[float, int, int]] = []
    for m in _DIGITS.finditer(text):
        raw = m.group().replace(",", "")
        try:
            found.append((float(raw), m.start(), m.end()))
        except ValueError:
            continue
    for m in _SPELLED.finditer(text):
        value = _spelled_value(m.group())
        if value is not None:
            found.append((value, m.start(), m.end()))
    return sorted(found, key=lambda f: f[1])


def number_for(words: Sequence[str], texts: Sequence[str], *, integer: bool, generic: bool) -> float | None:
    """The number a field named by ``words`` asks for, from ``texts`` (best first). A money field takes a
    number with a currency beside it, a percentage field one with a percent sign or word; any other field
    a number from a text that shares a word with the field, or, for a ``generic`` field (``value``,
    ``answer``), from the best text."""
    money = bool(_MONEY & set(words))
    percent = bool(_PERCENT & set(words))
    unit = unit_sign(words)
    best: tuple[int, int, float] | None = None
    for rank, text in enumerate(texts):
        for value, start, end in numbers_in(text):
            if integer and not float(value).is_integer():
                continue
            near = text[max(0, start - 2) : end + 12]
            if money and not _MONEY_SIGN.search(near):
                continue
            if percent and not _PERCENT_SIGN.search(near):
                continue
            if unit is not None and not unit.search(near):
                continue
            fit = overlap(words, text) + (2 if money or percent or unit else 0)
            if fit == 0 and not (generic and rank == 0):
                continue
            if best is None or (fit, -rank) > (best[0], best[1]):
                best = (fit, -rank, value)
    return None if best is None else best[2]


def unit_sign(words: Iterable[str]) -> re.Pattern[str] | None:
    """How the evidence writes the currency or unit a field's words name (``price_euros``), if any."""
    return next((_UNIT_SIGNS[w] for w in words if w in _UNIT_SIGNS), None)


def text_for(words: Sequence[str], texts: Sequence[str]) -> str | None:
    """The first of ``texts`` (best first) that names what a field named by ``words`` asks about: one
    of its words, or, for a money or percentage field, an amount of that kind. A field that names a
    currency or unit takes only a text with an amount in it."""
    money = bool(_MONEY & set(words))
    percent = bool(_PERCENT & set(words))
    unit = unit_sign(words)
    for text in texts:
        if unit is not None:
            if any(unit.search(text[max(0, s - 2) : e + 12]) for _, s, e in numbers_in(text)):
                return text
            continue
        if overlap(words, text):
            return text
        kind_found = (money and _MONEY_SIGN.search(text)) or (percent and _PERCENT_SIGN.search(text))
        if kind_found and numbers_in(text):
            return text
    return None


#: Fields that ask for a value of a known shape, and that shape: a phone field takes a phone number, not
#: the line it was found near.
_SHAPES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = (
    (
        word_set("phone telephone tel mobile hotline fax helpline"),
        # Six digits at least, so a price or a year is no phone number.
        re.compile(r"\+?\(?\d(?:[ \-().]?\d){5,}"),
    ),
    (word_set("email mail"), re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    (
        word_set("url website site link web homepage"),
        re.compile(
            # Not the domain of an email address.
            r"\bhttps?://\S+[\w/]|(?<![@\w.])(?:www\.)?[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|[a-z]{2})\b"
            r"(?:/\S*[\w/])?"
        ),
    ),
    (
        word_set("model code sku serial reference ref plate"),
        # Letters and digits in one token (KX-40, A320, 4K-HDR): what a model or product code looks like.
        re.compile(r"\b(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b"),
    ),
)


def shape_of(words: Iterable[str]) -> re.Pattern[str] | None:
    """The shape a field's words ask for (phone, email, url, code), if any."""
    names = set(words)
    return next((shape for kind, shape in _SHAPES if kind & names), None)


def shaped_for(words: Sequence[str], shape: re.Pattern[str], texts: Sequence[str]) -> str | None:
    """The first value of ``shape`` in ``texts`` (best first), from a text that names the field's other
    words when one does (``recall_phone``: the phone said with "recall")."""
    content = [w for w in words if not any(w in kind for kind, _ in _SHAPES)]
    best: tuple[int, int, int, str] | None = None
    for rank, text in enumerate(texts):
        fit = overlap(content, text)
        for m in shape.finditer(text):
            score = (fit, -rank, -m.start(), m.group(0).strip())
            if best is None or score[:3] > best[:3]:
                best = score
    return None if best is None else best[3]


#: Fields that ask for a place or a person: they take a proper name, not the line it was found in (nor
#: the title of what they are about: ``festival_city`` is "Lisbon", not "HARBOUR FESTIVAL").
PLACE_WORDS = word_set("city town country place location venue village region where destination hometown")
PERSON_WORDS = word_set(
    "person people leader host hosts speaker speakers mayor author guest guests presenter narrator who "
    "organizer organiser teacher interviewer interviewee chef artist founder ceo director owner names"
)
#: Words that, said just before a name, say it is one of a place or a person.
_PLACE_CUES = word_set("in at from near to visit visiting")
_HONORIFICS = word_set("dr dr. doctor mr mr. mrs mrs. ms ms. prof prof. professor sir dame mayor president")
_PERSON_CUES = _HONORIFICS | word_set("with by host hosted presenter")
_NOT_NAMES = word_set(
    "the a an i it its this that these those there here we you he she they our my and but or so if when "
    "then welcome hello hi next today tomorrow yesterday monday tuesday wednesday thursday friday saturday "
    "sunday mondays tuesdays wednesdays thursdays fridays saturdays sundays"
) | frozenset(_MONTHS)
_TOKEN = re.compile(r"\S+")


def _name_runs(text: str, subject: Sequence[str]) -> list[tuple[str, str]]:
    """Runs of capitalised words in ``text`` (a proper name: "Lisbon", "Dr. Amara Osei"), each with the
    word said just before it. A word capitalised only because it starts a sentence is no name unless a
    capitalised word follows it or it is the whole text (a caption); all-caps words are titles, and the
    field's subject words are what the name belongs to, not part of it."""
    words = [m.group(0) for m in _TOKEN.finditer(text)]
    runs: list[tuple[str, str]] = []
    run: list[str] = []
    before = ""
    sentence_start = True
    subject_stems = {_stem(w) for w in subject}
    for i, raw in enumerate([*words, ""]):
        word = raw.strip("\"'()[],;:!?“”‘’")
        bare = word.rstrip(".")
        lower = word.lower()
        following = words[i + 1].strip("\"'()“”") if i + 1 < len(words) else ""
        name_like = (
            bool(bare)
            and bare[:1].isupper()
            and not bare.isupper()
            and bare.replace("-", "").replace("'", "").isalpha()
            and bare.lower() not in _NOT_NAMES
            and _stem(bare.lower()) not in subject_stems
            and (not sentence_start or lower in _HONORIFICS or following[:1].isupper() or len(words) == 1)
        )
        if name_like:
            run.append(word if lower in _HONORIFICS else bare)
        else:
            if run:
                runs.append((" ".join(run), before))
            run = []
            before = lower
        sentence_start = raw.endswith((".", "!", "?")) and lower not in _HONORIFICS
    return runs


def name_for(words: Sequence[str], texts: Sequence[str]) -> str | None:
    """A proper name for a place or person field (``festival_city``, ``workshop_leader``, ``host``) from
    ``texts`` (best first): one said in a text that names the field's subject, or one said right after a
    word that marks a name of its kind ("in Lisbon", "with Priya Nair"). A name said or shown in more of
    the texts wins (the caption that repeats what is said), then the fuller one."""
    place = bool(PLACE_WORDS & set(words))
    cues = _PLACE_CUES if place else _PERSON_CUES
    subject = [w for w in words if w not in PLACE_WORDS | PERSON_WORDS | {"name", "names"}]
    lowered = [t.lower() for t in texts]
    best: tuple[int, int, bool, int, str] | None = None
    for rank, text in enumerate(texts):
        about = bool(subject) and overlap(subject, text) > 0
        for run, before in _name_runs(text, subject):
            parts = run.split()
            for i in range(len(parts)):
                for j in range(i + 1, len(parts) + 1):
                    name = " ".join(parts[i:j])
                    if all(p.lower() in _HONORIFICS for p in parts[i:j]):
                        continue
                    cued = (before if i == 0 else parts[i - 1].lower()) in cues
                    if not (about or cued):
                        continue
                    said = sum(1 for t in lowered if re.search(rf"\b{re.escape(name.lower())}\b", t))
                    score = (said, j - i, cued, -rank, name)
                    if best is None or score[:4] > best[:4]:
                        best = score
    return None if best is None else best[4]


def is_date_field(name: str, node: JsonObj) -> bool:
    if node.get("format") in ("date", "date-time"):
        return True
    words = set(name_words(name))
    described = set(_WORD.findall(str(node.get("description", "")).lower()))
    return bool(_DATE_WORDS & words) or "date" in described


def date_in(text: str, fmt: str | None) -> str | None:
    """The first date-like phrase in ``text``: ISO 8601 when it names a whole day (a ``date`` or
    ``date-time`` format requires one), else as written (``March 2026``, ``2026``)."""
    for i, pattern in enumerate(_DATE_PATTERNS):
        m = pattern.search(text)
        if not m:
            continue
        if i in (0, 1, 2):
            if i == 0:
                year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
            elif i == 1:
                month, day, year = month_number(m.group(1)), int(m.group(2)), int(m.group(3))
            else:
                day, month, year = int(m.group(1)), month_number(m.group(2)), int(m.group(3))
            if not (1 <= month <= 12 and 1 <= day <= 31):
                continue
            iso = f"{year:04d}-{month:02d}-{day:02d}"
            return f"{iso}T00:00:00Z" if fmt == "date-time" else iso
        if fmt in ("date", "date-time"):
            continue
        return m.group(0)
    return None


def date_for(words: Sequence[str], texts: Sequence[str], fmt: str | None) -> str | None:
    """The first date (see :func:`date_in`) in ``texts`` (best first) from a text that names what a date
    field named by ``words`` asks about: ``launch_date`` takes the date said with "launch", not the first
    date said; a field that asks for a date alone (``date``, ``when``) takes the first of any."""
    content = [w for w in words if w not in _WHEN]
    for text in texts:
        if content and not overlap(content, text):
            continue
        found = date_in(text, fmt)
        if found is not None:
            return found
    return None


def year_for(words: Sequence[str], texts: Sequence[str]) -> int | None:
    """A four-digit year from ``texts`` (best first), for a field that asks for a year: from a text that
    names the field's other words when it has some (``treaty_year``), else the first said."""
    content = [w for w in words if w not in _WHEN and w not in ("year", "years")]
    for text in texts:
        if content and not overlap(content, text):
            continue
        m = _YEAR.search(text)
        if m:
            return int(m.group(1))
    return None


def month_for(words: Sequence[str], texts: Sequence[str]) -> str | None:
    """A month named in ``texts`` (best first), for a field that asks for a month ("late October" gives
    ``October``): from a text that names the field's other words when it has some."""
    content = [w for w in words if w not in _WHEN and w not in ("month", "months")]
    for text in texts:
        if content and not overlap(content, text):
            continue
        m = _MONTH_WORD.search(text)
        # "may" is a verb far more often than a month: only "May" names the month.
        if m and (m.group(0).lower() != "may" or m.group(0) == "May"):
            return m.group(0).capitalize()
    return None


def month_number(name: str) -> int:
    """1 for "January" (or "Jan."), … 12 for "December"."""
    return next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(name.lower().rstrip(".")[:3]))


def bool_for(name: str, node: JsonObj, texts: Sequence[str], *, found: bool) -> bool | None:
    """True when the texts say what the field asks about; False only for a "does it mention X" field whose
    X no text says (``texts`` must then be every text in scope); None when the texts cannot tell. A field
    that asks whether anything was found (``found``, ``matched``) gets ``found``."""
    words = name_words(name)
    if set(words) <= _FOUND_WORDS:
        return found
    content = [w for w in words if w not in _BOOL_VERBS and w not in _SAYS and w not in _HINT_STOP]
    if not content:
        return None
    if any(overlap(content, t) == len(set(content)) for t in texts):
        return True
    asks_said = bool(_SAYS & set(words)) or bool(_SAYS & set(hint("", node)))
    return False if asks_said and texts else None


#: Endings a listed word may take in a text and still be it ("free on Sundays" names Sunday).
_INFLECTED = r"(?:s|es|'s|ed|d|ing)?"


def enum_for(options: Sequence[Any], texts: Sequence[str]) -> Any:
    """The listed value the texts name (a word match, plural or inflected; a number equal to one found),
    else ``UNFILLED``."""
    for text in texts:
        lowered = text.lower()
        values = {v for v, _, _ in numbers_in(text)}
        for option in options:
            inflected = rf"\b{re.escape(option.lower())}{_INFLECTED}\b" if isinstance(option, str) else ""
            if option and inflected and re.search(inflected, lowered):
                return option
            if isinstance(option, (int, float)) and not isinstance(option, bool) and float(option) in values:
                return option
    return UNFILLED


def within(node: JsonObj, value: float) -> bool:
    """Whether ``value`` is inside the field's bounds: a number found outside them is not its answer."""

    def bound(key: str) -> float | None:
        b = node.get(key)
        return float(b) if isinstance(b, (int, float)) and not isinstance(b, bool) else None

    low, high = bound("minimum"), bound("maximum")
    low_x, high_x = bound("exclusiveMinimum"), bound("exclusiveMaximum")
    return (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (low_x is None or value > low_x)
        and (high_x is None or value < high_x)
    )


def allows_null(node: JsonObj) -> bool:
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if isinstance(node.get("enum"), list) and None in node["enum"]:
        return True
    return any(
        isinstance(o, dict) and allows_null(o) for k in ("anyOf", "oneOf") for o in node.get(k, []) or []
    )


def kind_of(node: JsonObj) -> str:
    """The JSON type a schema node asks for (the non-null one of a list; inferred when not stated)."""
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in node else "array" if "items" in node else "string"


def empty_value(node: JsonObj, resolve: Callable[[JsonObj], JsonObj] = lambda n: n, depth: int = 0) -> Any:
    """What an unfilled required field gets: null if allowed, else a neutral value of its type (an
    array as many empty entries as its ``minItems``). ``resolve`` follows a node's ``$ref``; a schema
    that requires itself without end gets null where it recurs (no finite value would validate)."""
    node = resolve(node)
    if "$ref" in node and depth < _EMPTY_DEPTH:
        return empty_value(node, resolve, depth + 1)
    if allows_null(node) or depth >= _EMPTY_DEPTH:
        return None
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    options = [o for k in ("anyOf", "oneOf") for o in node.get(k) or [] if isinstance(o, dict)]
    if "type" not in node and options:
        return empty_value(options[0], resolve, depth + 1)
    kind = kind_of(node)
    if kind in ("number", "integer"):
        low = node.get("minimum", node.get("exclusiveMinimum"))
        value = float(low) if isinstance(low, (int, float)) else 0.0
        if "exclusiveMinimum" in node:
            value += 1
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    if kind == "array":
        items: JsonObj = node["items"] if isinstance(node.get("items"), dict) else {"type": "string"}
        low_items = node.get("minItems")
        count = min(low_items, MAX_ENTRIES) if isinstance(low_items, int) else 0
        return [empty_value(items, resolve, depth + 1)] * count
    if kind == "object":
        props: JsonObj = node["properties"] if isinstance(node.get("properties"), dict) else {}
        required = node["required"] if isinstance(node.get("required"), list) else []
        return {
            k: empty_value(props[k], resolve, depth + 1) for k in required if isinstance(props.get(k), dict)
        }
    text = NOT_FOUND
    max_len = node.get("maxLength")
    return text[:max_len] if isinstance(max_len, int) else text


#: How deep an empty value is built before a schema that requires itself gets null.
_EMPTY_DEPTH = 32
