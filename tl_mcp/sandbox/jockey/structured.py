"""Structured output (`text.format` json_schema) for the sandbox's Jockey, built only from evidence.

TwelveLabs tightens the caller's schema (every property required, no additional properties) and returns
the JSON as the message text. We do the same, then fill the schema from the retrieved moments with the
sandbox's one schema walker (:mod:`tl_mcp.sandbox.structured_fill`), each field only with evidence that
fits it: strings from their text and titles, times from their times, other numbers, dates, enums and
booleans only where the texts state them, arrays of objects one moment each; a field nothing fits is null
(when allowed) or empty, and is reported. The result is validated with jsonschema before it is sent, so a
caller never receives JSON its schema rejects.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from tl_mcp.sandbox.answers import keyphrase
from tl_mcp.sandbox.jockey.compose import marker, timestamp
from tl_mcp.sandbox.knowledge.models import Evidence
from tl_mcp.sandbox.structured_fill import SchemaError, fill_schema, unmatched_fields

JsonObj = dict[str, Any]


def tighten(schema: JsonObj) -> JsonObj:
    """Copy of ``schema`` with every object property required and no additional properties."""
    tightened = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                props = node.get("properties")
                if isinstance(props, dict):
                    node["required"] = list(props)
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tightened)
    return tightened


def lookups(schema: JsonObj, moments: Sequence[Evidence]) -> list[str]:
    """What to search the store for, one query per field of ``schema`` that names something none of
    ``moments`` says (see :func:`structured_fill.unmatched_fields`)."""
    return unmatched_fields(tighten(schema), [t for m in moments for t in _texts(m)])


def _texts(moment: Evidence) -> tuple[str, ...]:
    # The moment's other texts (the rest of the screen, what is said over it) are its evidence too.
    return tuple(dict.fromkeys((moment.text, *(t for _, t in moment.context))))


def check_fillable(schema: JsonObj) -> None:
    """Refuse, before any turn runs, a schema whose fields cannot be left unfilled: nothing may fit them,
    and a placeholder that breaks a pattern, a length or a multiple would fail the turn after the fact."""
    _, problems = fill(schema, question="", summary="", moments=[])
    if problems:
        raise SchemaError(
            "`text.format.schema` asks for what the offline sandbox cannot promise: a field nothing in the "
            f"videos fits gets a placeholder, and then {problems[0]}. The sandbox will not invent a value "
            "to fit a pattern, a length or a multiple; allow null for that field (for example "
            '`"type": ["string", "null"]`) or drop the constraint.'
        )


def fill(
    schema: JsonObj,
    *,
    question: str,
    summary: str,
    moments: Sequence[Evidence],
    unfilled: list[str] | None = None,
    looked_up: Sequence[Evidence] = (),
) -> tuple[Any, list[str]]:
    """JSON for the tightened ``schema`` from evidence; returns (value, validation problems). The paths of
    fields no evidence fitted are appended to ``unfilled`` when given. ``looked_up`` are the moments found
    for the fields the question's moments say nothing about (:func:`lookups`): fields of the record may
    draw on their texts, array entries are only the question's moments."""
    tightened = tighten(schema)
    value, gaps = fill_schema(tightened, _grounds(question, summary, moments, looked_up))
    if unfilled is not None:
        unfilled.extend(gaps)
    validator = jsonschema.Draft202012Validator(tightened)
    problems = [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in validator.iter_errors(value)
    ]
    return value, problems


@dataclass(frozen=True, slots=True, eq=False)
class _Moment:
    """A retrieved moment, as the schema walker reads it (:class:`structured_fill.Unit`)."""

    start: float
    end: float
    texts: tuple[str, ...]
    title: str
    summary: str
    topic: str
    sources: tuple[str, ...]
    score: float | None
    item_id: str | None
    asset_id: str | None


@dataclass(frozen=True, slots=True)
class _Moments:
    """Jockey's evidence (:class:`structured_fill.Grounds`): the retrieved moments, best first, and the
    answer composed from them, which summary fields quote too."""

    units: Sequence[_Moment]
    question: str
    answer: str
    #: The texts of the moments looked up for fields the question's moments say nothing about.
    looked_up: Sequence[str] = ()
    summary: None = None
    duration: None = None

    @property
    def texts(self) -> list[str]:
        return list(dict.fromkeys([*(t for u in self.units for t in u.texts), *self.looked_up]))

    def clock(self, seconds: float) -> str:
        return timestamp(seconds)

    def span(self, start: float, end: float) -> str:
        return marker(start, end).strip("[]")

    @property
    def timeline(self) -> list[_Moment]:
        # A timeline or chapters read in time order (per video), not by relevance.
        return sorted(self.units, key=lambda u: (u.item_id or "", u.start))

    @property
    def highlights(self) -> Sequence[_Moment]:
        return self.units

    @property
    def topics(self) -> list[str]:
        return list(dict.fromkeys(u.topic for u in self.units if u.topic))

    @property
    def answer_pool(self) -> list[str]:
        return [u.summary for u in self.units]

    @property
    def title(self) -> str:
        return self.units[0].title if self.units else ""


def _grounds(
    question: str, summary: str, moments: Sequence[Evidence], looked_up: Sequence[Evidence]
) -> _Moments:
    units = [
        _Moment(
            m.start,
            m.end,
            _texts(m),
            title=m.title,
            summary=m.text,
            topic=keyphrase([m.text]),
            sources=(m.source,),
            score=m.score,
            item_id=m.item_id,
            asset_id=m.asset_id,
        )
        for m in moments
    ]
    extra = [t for m in looked_up for t in _texts(m)]
    return _Moments(units, question=question, answer=summary, looked_up=extra)
