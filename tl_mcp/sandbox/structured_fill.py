"""The one schema walker behind every extractive structured output of the sandbox.

`/analyze` with a JSON schema (analyze_video, summarize_video, analysis tasks) and Jockey's `text.format`
json_schema fill the caller's schema here, each from evidence it describes as :class:`Grounds`: analyze
from the video's parts or the moments matching its prompt (:mod:`tl_mcp.sandbox.answers`), Jockey from
its retrieved moments (:mod:`tl_mcp.sandbox.jockey.structured`). A field is filled only with evidence
that fits it (:mod:`tl_mcp.sandbox.fitting`); a field nothing fits is listed in ``unfilled``, left out
when the schema lets it be, else given the schema's empty value.

A record says each quote once: the fields of one object, and of the objects nested in it, never share a
quote. An array entry speaks of its own part or moment, so it may repeat what the record around it says.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any, Protocol

import jsonschema
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from tl_mcp.sandbox.fitting import (
    MAX_ENTRIES,
    PERSON_WORDS,
    PLACE_WORDS,
    UNFILLED,
    JsonObj,
    allows_null,
    bool_for,
    date_for,
    empty_value,
    enum_for,
    hint,
    is_date_field,
    kind_of,
    month_for,
    month_number,
    name_for,
    name_words,
    number_for,
    overlap,
    shape_of,
    shaped_for,
    text_for,
    within,
    word_set,
    year_for,
)
from tl_mcp.sandbox.retrieval import tokens


class Unit(Protocol):
    """One piece of evidence an array entry describes, and that fields of the whole draw on: a part of
    the video, or one retrieved moment, in its caller's own type. A member is read only when a field
    asks for it, so a caller may work it out then."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def texts(self) -> tuple[str, ...]: ...
    @property
    def title(self) -> str:
        """What a title field of it gets (a part's title, a moment's video); "" when it has none."""

    @property
    def summary(self) -> str:
        """What a summary or answer field of it gets; "" when nothing is said or shown there."""

    @property
    def topic(self) -> str:
        """A short phrase for what it is about, for topic and tag lists; "" when it has none."""

    @property
    def sources(self) -> tuple[str, ...]:
        """What its texts are (speech, on-screen text…), for a source field."""

    @property
    def score(self) -> float | None: ...
    @property
    def item_id(self) -> str | None: ...
    @property
    def asset_id(self) -> str | None: ...


class Grounds(Protocol):
    """Everything a schema is filled from, as one caller has it (read, too, only as fields ask)."""

    @property
    def units(self) -> Sequence[Unit]:
        """Best first: the evidence that answers the question; an array's entries are one unit each."""

    @property
    def texts(self) -> Sequence[str]:
        """Every text in scope, best first: a field of the whole may find its answer outside the best
        units, and "does it mention X" is false only when none of these says X."""

    def clock(self, seconds: float) -> str:
        """How a time reads in a string field."""

    def span(self, start: float, end: float) -> str:
        """How a time range reads in a string field."""

    @property
    def timeline(self) -> Sequence[Unit]:
        """The units of chapters, a timeline…, in time order."""

    @property
    def highlights(self) -> Sequence[Unit]:
        """One unit per highlight."""

    @property
    def topics(self) -> Sequence[str]:
        """What a topic or tag list of the whole gets."""

    @property
    def question(self) -> str: ...
    @property
    def answer(self) -> str:
        """What a top-level answer field quotes."""

    @property
    def answer_pool(self) -> Sequence[str]:
        """What further answer fields of a record may quote, in order, once the answer is taken."""

    @property
    def summary(self) -> str | None:
        """What a top-level summary field quotes; None: summary fields are answer fields."""

    @property
    def title(self) -> str: ...
    @property
    def duration(self) -> float | None: ...


class SchemaError(ValueError):
    """The caller's schema is not a usable JSON Schema; the message says which part and why."""


def check_schema(schema: Any, field: str) -> JsonObj:
    """``schema`` (the request's ``field``) when it is a valid JSON Schema the sandbox can fill: its
    ``$ref``s point into itself (nothing is fetched) and no array asks for more than ``MAX_ENTRIES`` entries
    (past the evidence, the walker could only repeat it). Raises ``SchemaError`` saying what to change."""
    if not isinstance(schema, dict):
        raise SchemaError(f"{field} must be a JSON object (a JSON Schema).")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise SchemaError(f"{field} is not a valid JSON Schema at {where}: {exc.message}") from exc
    resolver = Registry().with_resource("", DRAFT202012.create_resource(schema)).resolver()
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:
            raise SchemaError(
                f"{field} has a `$ref` the sandbox cannot follow: `{ref}`. Only references into the schema "
                "itself are followed (it fetches nothing): put the referenced schema under `$defs` and point "
                'to it as `"#/$defs/<name>"`.'
            ) from exc
    for where, low in _min_items(schema, ""):
        if low > MAX_ENTRIES:
            raise SchemaError(
                f"{field} asks for at least {low} entries at {where or '(root)'}; the offline sandbox gives "
                f"an array at most {MAX_ENTRIES} (past the evidence it can only repeat it): lower `minItems`."
            )
    return schema


def _min_items(node: Any, path: str) -> list[tuple[str, int]]:
    """Each ``minItems`` in the schema, with where it is."""
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _min_items(v, f"{path}/{i}".lstrip("/"))]
    if not isinstance(node, dict):
        return []
    own = [(path, node["minItems"])] if isinstance(node.get("minItems"), int) else []
    return own + [found for k, v in node.items() for found in _min_items(v, f"{path}/{k}".lstrip("/"))]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def fill_schema(schema: JsonObj, grounds: Grounds) -> tuple[Any, list[str]]:
    """The value for ``schema`` from ``grounds``, and the paths of the fields no evidence fitted (each
    once, in schema order; ``a/b``, ``a[]/b``, ``(root)``)."""
    walker = _Walker(schema, grounds)
    value = walker.value(schema, "", None, required=True, depth=0)
    return value, list(dict.fromkeys(walker.unfilled))


def unmatched_fields(schema: JsonObj, texts: Sequence[str]) -> list[str]:
    """The words of each field of the record (and of the records nested in it; not of array entries,
    which speak of their own moment) that asks about something none of ``texts`` names: "List the key
    facts" retrieves nothing about ``ferry_pass_price_dollars``, so a caller searches for the field's
    own words before leaving it unfilled. Fields the evidence's times, titles and quotes fill are not
    listed (they are not about something)."""
    queries: list[str] = []

    def walk(node: Any, depth: int) -> None:
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict) or depth > _MAX_DEPTH:
            return
        for key, sub in props.items():
            if not isinstance(sub, dict):
                continue
            if kind_of(sub) == "object":
                walk(sub, depth + 1)
                continue
            if kind_of(sub) == "array":
                continue  # its entries are the question's moments, one each: a search adds none
            content = [w for w in hint(key, sub) if w not in _STRUCTURAL]
            if content and not any(overlap(content, t) for t in texts):
                queries.append(" ".join(content))

    walk(schema, 0)
    return list(dict.fromkeys(queries))


def distinct(texts: Iterable[str]) -> list[str]:
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


#: How deep a schema is walked; below that a field is unfilled (a schema that deep is not a record).
_MAX_DEPTH = 32

_TITLE_WORDS = word_set("title name heading label headline caption filename")
#: Words that may stand beside a title word and still ask for a title ("chapter_title", not "speaker_name").
_OF_THE_VIDEO = word_set("video clip file chapter scene part section segment short main overall topic")
#: Words that ask for a title alone: the video's (``video``, ``file_name``) or a part's.
_TITLED = _TITLE_WORDS | word_set("video file clip")
_SUMMARY_WORDS = word_set("summary overview synopsis gist recap abstract description about")
#: Fields that ask for what was found, whatever it is about: the answer, or a part's own text.
_GENERIC_WORDS = word_set(
    "answer text quote response result content explanation reason details detail excerpt transcript "
    "value what said statement evidence highlight why note notes"
)
_TAG_WORDS = word_set("topics topic keywords keyword tags tag themes theme subjects subject")
_QUOTE_LIST_WORDS = word_set(
    "quotes lines sentences statements points facts claims transcript moments highlights"
)
_IN_TIME_ORDER = word_set("chapters timeline sections scenes parts segments steps outline chronology")
_COUNTED = word_set(
    "scenes scene chapters chapter parts part segments segment moments moment sections section "
    "highlights mentions times occurrences results matches hits"
)
_COUNT = word_set("count total number num many")
_QUESTION = word_set("question query")
_START = word_set("start begin from")
_END = word_set("end until to stop")
_AT = word_set("time timestamp sec seconds offset at")
_SPAN = word_set("time when range span interval")
_SCORE = word_set("score confidence relevance")
#: A duration field that asks for the length of what it describes ("battery_duration" does not).
_DURATION = word_set("duration length video clip total sec secs seconds")
#: Words of an enum field that say what kind of value it is, not what it is about.
_WHEN_WORDS = word_set("day date time when kind type category status level option choice")
#: Words of fields the evidence's own times, titles, scores and quotes fill, whatever it is about.
_STRUCTURAL = (
    _TITLE_WORDS
    | _OF_THE_VIDEO
    | _SUMMARY_WORDS
    | _GENERIC_WORDS
    | _TAG_WORDS
    | _QUOTE_LIST_WORDS
    | _IN_TIME_ORDER
    | _COUNTED
    | _COUNT
    | _QUESTION
    | _START
    | _END
    | _AT
    | _SPAN
    | _SCORE
    | _DURATION
    | word_set("source sources modality item id asset rank found matched")
)


class _Walker:
    """Walks the caller's schema; ``unfilled`` collects the paths of the fields no evidence fits."""

    def __init__(self, root: JsonObj, grounds: Grounds) -> None:
        self.root = root
        self.g = grounds
        self.unfilled: list[str] = []
        #: The quotes of the record being filled, and the field each stands in.
        self._quoted: dict[str, str] = {}
        #: The ``$ref``s being expanded: meeting one again is a schema containing itself.
        self._refs: list[str] = ["#"]

    def value(self, node: Any, path: str, unit: Unit | None, *, required: bool, depth: int) -> Any:
        """The field's value; ``UNFILLED`` (recorded) when nothing fits and the field may be left out."""
        if not isinstance(node, dict):
            return None
        found = self._found(node, path, unit, depth)
        if found is not UNFILLED:
            return found
        self.unfilled.append(path or "(root)")
        return empty_value(node, self._resolve) if required else UNFILLED

    def _resolve(self, node: JsonObj) -> JsonObj:
        """``node`` with its local ``$ref`` followed once (its own keywords win over the target's)."""
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return node
        target: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            target = target.get(key) if isinstance(target, dict) else None
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **rest} if isinstance(target, dict) else rest

    def _found(self, node: JsonObj, path: str, unit: Unit | None, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            return UNFILLED
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in self._refs:
                # A schema that contains itself (chapters of chapters): below the same evidence there is
                # nothing new to say, and the recursion would not end.
                return UNFILLED
            self._refs.append(ref)
            try:
                return self._found(self._resolve(node), path, unit, depth + 1)
            finally:
                self._refs.pop()
        name = path.rsplit("/", 1)[-1].removesuffix("[]")
        words = set(name_words(name))
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            # The evidence that answers the question chooses; a value named elsewhere in the video does not,
            # unless it is named with what the field asks about ("free_entry_day": "free on Sundays").
            chosen = enum_for(node["enum"], self._unit_texts(unit))
            about = [w for w in hint(name, node) if w not in _STRUCTURAL and w not in _WHEN_WORDS]
            if chosen is UNFILLED and about:
                chosen = enum_for(node["enum"], [t for t in self._texts(unit) if overlap(about, t)])
            return chosen
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                return self._option(node, node[key], path, unit, depth)
        kind = kind_of(node)
        if kind == "null":
            return None
        if kind == "object":
            return self._object(node, path, unit, depth)
        if kind == "array":
            return self._array(node, path, words, unit, depth)
        if kind in ("number", "integer"):
            return self._number(node, name, words, unit, kind == "integer")
        if kind == "boolean":
            found = bool_for(name, node, self._texts(unit), found=any(u.texts for u in self.g.units))
            return UNFILLED if found is None else found
        if kind == "string":
            return self._string(node, name, words, path, unit)
        return UNFILLED

    def _option(self, node: JsonObj, options: list[Any], path: str, unit: Unit | None, depth: int) -> Any:
        """The first option of an ``anyOf``/``oneOf`` that evidence fills with a value the node accepts."""
        for option in options:
            if not isinstance(option, dict) or kind_of(self._resolve(option)) == "null":
                continue
            gaps, quoted = len(self.unfilled), dict(self._quoted)
            got = self._found(option, path, unit, depth + 1)
            if got is not UNFILLED and self._accepts(node, got):
                return got
            # A rejected option leaves no trace: its gaps were not the field's, its quotes not given.
            del self.unfilled[gaps:]
            self._quoted = quoted
        return UNFILLED

    @cached_property
    def _validator(self) -> jsonschema.Draft202012Validator | None:
        """Built when an option is first judged (most schemas have none); None for a broken schema, which
        a caller that does not check schemas may send: it is still walked, its options taken unjudged."""
        try:
            jsonschema.Draft202012Validator.check_schema(self.root)
        except jsonschema.SchemaError:
            return None
        return jsonschema.Draft202012Validator(self.root)

    def _accepts(self, node: JsonObj, value: Any) -> bool:
        if self._validator is None:
            return True
        try:
            return bool(self._validator.evolve(schema=node).is_valid(value))
        except Unresolvable:
            return False

    def _object(self, node: JsonObj, path: str, unit: Unit | None, depth: int) -> JsonObj:
        props: JsonObj = node["properties"] if isinstance(node.get("properties"), dict) else {}
        required = node["required"] if isinstance(node.get("required"), list) else []
        out: JsonObj = {}
        for key, sub in props.items():
            got = self.value(
                sub, f"{path}/{key}" if path else key, unit, required=key in required, depth=depth + 1
            )
            if got is not UNFILLED:
                out[key] = got
        return out

    def _unit_texts(self, unit: Unit | None) -> list[str]:
        """The texts of ``unit``, else of every unit: what answers the question, not all that is said."""
        return list(unit.texts) if unit is not None else [t for u in self.g.units for t in u.texts]

    def _texts(self, unit: Unit | None) -> list[str]:
        """What a field of ``unit`` may draw on: the unit's own texts, else every text in scope."""
        return list(unit.texts) if unit is not None else list(self.g.texts)

    def _array(self, node: JsonObj, path: str, words: set[str], unit: Unit | None, depth: int) -> Any:
        items: JsonObj = node["items"] if isinstance(node.get("items"), dict) else {}
        shape = self._resolve(items)
        item_kind = kind_of(shape)
        units: Sequence[Unit] = [unit] if unit is not None else self.g.units
        if unit is None and words & _IN_TIME_ORDER:
            units = self.g.timeline
        if unit is None and "highlight" in path.lower():
            units = self.g.highlights
        free_text = item_kind == "string" and not {"enum", "const", "format"} & set(shape)
        entry = f"{path}[]"
        out: list[Any]
        if free_text and "hashtags" in words | set(name_words(path)):
            tags = ("#" + re.sub(r"\W", "", t.title()) for t in self._topics(unit))
            out = self._fitted(dict.fromkeys(t for t in tags if len(t) > 1), shape)
        elif free_text and words & _TAG_WORDS:
            out = self._fitted(dict.fromkeys(self._topics(unit)), shape)
        elif free_text and words & _QUOTE_LIST_WORDS:
            quotes = distinct(t for u in units for t in u.texts)
            out = [q for q in (self._quote(t, entry, shape) for t in quotes) if q is not UNFILLED]
        else:
            out = []
            said: set[tuple[float, float, str | None, str]] = set()
            for u in units:
                # Each object entry is a record of its own, about its own part or moment.
                outer = self._quoted
                if item_kind == "object":
                    self._quoted = {}
                got = self._found(items, entry, u, depth + 1)
                self._quoted = outer
                if got is UNFILLED:
                    continue
                # Two texts of one moment (a notice's lines on screen) give entries alike when the entry
                # quotes neither: one moment is one entry. Alike entries of other moments stay.
                key = (u.start, u.end, u.asset_id, json.dumps(got, sort_keys=True))
                if key not in said:
                    said.add(key)
                    out.append(got)
            if item_kind != "object" or node.get("uniqueItems"):
                seen = dict.fromkeys(json.dumps(v, sort_keys=True) for v in out)
                out = [json.loads(v) for v in seen]
        high, low = node.get("maxItems"), node.get("minItems")
        if isinstance(high, int):
            out = out[:high]
        if not out:
            return UNFILLED
        if isinstance(low, int) and len(out) < low:
            if node.get("uniqueItems") and allows_null(node):
                return UNFILLED  # null is the honest empty value here; repeats would break uniqueItems
            # More entries asked for than the evidence holds: repeat rather than invent, and report it.
            self.unfilled.append(path or "(root)")
            out = [*out, *(out[i % len(out)] for i in range(min(low, MAX_ENTRIES) - len(out)))]
        return out

    def _topics(self, unit: Unit | None) -> list[str]:
        return ([unit.topic] if unit.topic else []) if unit is not None else list(self.g.topics)

    def _fitted(self, texts: Iterable[str], node: JsonObj) -> list[str]:
        return [f for f in (_fit(t, node) for t in texts) if f is not None]

    def _number(self, node: JsonObj, name: str, words: set[str], unit: Unit | None, integer: bool) -> Any:
        target = unit if unit is not None else next(iter(self.g.units), None)
        units = self.g.units
        value: float | None = None
        rounding: Callable[[float], int] = round
        if target is not None and words & _START:
            value, rounding = target.start, math.floor
        elif target is not None and words & _END:
            # Up, so that a whole-second end still covers the moment.
            value, rounding = target.end, math.ceil
        elif words & {"duration", "length"} and words <= _DURATION:
            # An entry's own length; outside one, the video's (the moments of a store have no one video).
            value = (unit.end - unit.start) if unit is not None else self.g.duration
        elif target is not None and words & _SCORE and target.score is not None:
            value = target.score
        elif target is not None and "rank" in words:
            value = float(next((i for i, u in enumerate(units, 1) if u is target), 1))
        elif target is not None and words & _AT:
            value, rounding = target.start, math.floor
        elif words & _COUNT and (words & _COUNTED or words <= {"count", "total", "how", "many"}):
            value = float(len(units))
        elif "year" in words:
            year = year_for(hint(name, node), self._texts(unit))
            value = None if year is None else float(year)
        elif "month" in words and integer:
            month = month_for(hint(name, node), self._texts(unit))
            value = None if month is None else float(month_number(month))
        else:
            value = number_for(
                hint(name, node), self._texts(unit), integer=integer, generic=bool(words & _GENERIC_WORDS)
            )
        if value is None:
            return UNFILLED
        number: float = int(rounding(value)) if integer else round(value, 3)
        return number if within(node, number) else UNFILLED

    def _string(self, node: JsonObj, name: str, words: set[str], path: str, unit: Unit | None) -> Any:
        if is_date_field(name, node):
            return self._fit_or_unfilled(
                date_for(hint(name, node), self._texts(unit), node.get("format")), node
            )
        if words & _QUESTION:
            return self._fit_or_unfilled(self.g.question, node)
        target = unit if unit is not None else next(iter(self.g.units), None)
        if target is not None:
            # A timestamp is a point. "from"/"to" ask for a time alone: "answer_to_question" does not.
            if words & {"start", "begin", "timestamp"} or words == {"from"}:
                return self._fit_or_unfilled(self.g.clock(target.start), node)
            if words & {"end", "until"} or words == {"to"}:
                return self._fit_or_unfilled(self.g.clock(target.end), node)
            if words & _SPAN:
                return self._fit_or_unfilled(self.g.span(target.start, target.end), node)
            if words & {"source", "modality"}:
                return self._fit_or_unfilled(", ".join(dict.fromkeys(target.sources)), node)
            if {"item", "id"} <= words:
                return self._fit_or_unfilled(target.item_id, node)
            if "asset" in words:
                return self._fit_or_unfilled(target.asset_id, node)
        if words & _TITLED and words <= _TITLE_WORDS | _OF_THE_VIDEO:
            return self._fit_or_unfilled(unit.title if unit is not None else self.g.title, node)
        if words & _SUMMARY_WORDS and unit is None and self.g.summary is not None:
            # A summary covers the whole video (or window), whatever the question matched best.
            return self._quote(self.g.summary, path, node)
        if words & (_GENERIC_WORDS | _SUMMARY_WORDS) or not words:
            if unit is not None:
                return self._quote(unit.summary, path, node)
            return self._quote(self.g.answer, path, node, self.g.answer_pool)
        # A specific field (speaker, location…) takes only a text that names what it asks about, or, when
        # it asks for a value of a kind (a phone, a year, a city), only a value of that kind.
        free = [" ".join(t.split()) for t in self._texts(unit)]
        free = [t for t in free if self._quoted.get(t, path) == path]
        asked = [w for w in hint(name, node) if w not in _TITLE_WORDS]
        shape = shape_of(words)
        found: str | None
        if shape is not None:
            found = shaped_for(asked, shape, free)
        elif "year" in words and not words & _COUNT:
            year = year_for(asked, free)
            found = None if year is None else str(year)
        elif "month" in words and not words & _COUNT:
            found = month_for(asked, free)
        elif words & (PLACE_WORDS | PERSON_WORDS):
            found = name_for(asked, free)
        else:
            found = text_for(asked, free)
        return UNFILLED if found is None else self._quote(found, path, node)

    def _fit_or_unfilled(self, text: str | None, node: JsonObj) -> Any:
        fitted = _fit(text, node) if text else None
        return UNFILLED if fitted is None else fitted

    def _quote(self, text: str, field: str, node: JsonObj, pool: Iterable[str] = ()) -> Any:
        """``text`` unless another field of the record already quotes it; then the first of ``pool``
        none does. What a field quotes is its own from then on."""
        for candidate in [text, *pool]:
            fitted = _fit(candidate, node) if candidate else None
            if fitted is not None and self._quoted.get(fitted, field) == field:
                self._quoted[fitted] = field
                return fitted
        return UNFILLED


_FORMATS = jsonschema.FormatChecker()


#: How many dots may pad a string to its field's ``minLength``; a string further short does not fit it.
_MAX_PAD = 16


def _fit(text: str | None, node: JsonObj) -> str | None:
    """``text`` cut to the field's ``maxLength`` (padded a little to its ``minLength``), or None when it
    is too short or breaks the field's pattern or format: we will not fabricate a string to fit one."""
    if text is None:
        return None
    max_len, min_len = node.get("maxLength"), node.get("minLength")
    if isinstance(max_len, int) and len(text) > max_len:
        text = text[:max_len]
    if isinstance(min_len, int) and len(text) < min_len:
        if min_len - len(text) > _MAX_PAD:
            return None
        text = text.ljust(min_len, ".")
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        try:
            if not re.search(pattern, text):
                return None
        except re.error:
            return None
    fmt = node.get("format")
    if isinstance(fmt, str) and not _FORMATS.conforms(text, fmt):
        return None
    return text
