"""The one schema walker both extractive structured outputs use: analyze's `response_format` (from a
video's parts or matching moments) and Jockey's `text.format` (from retrieved moments).

For both callers, over a fixed list of varied and awkward schemas: the JSON validates against the schema,
no quote stands in two fields of one record, and every field without fitting evidence is listed as
unfilled. `answer_json` is called directly, so the schemas may use keywords the `/analyze` route refuses
(maxLength, uniqueItems, additionalProperties…): the walker must still handle them for Jockey.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np
import pytest

from tl_mcp.sandbox.answers import answer_json
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.fitting import MAX_ENTRIES, NOT_FOUND
from tl_mcp.sandbox.jockey.structured import fill, tighten
from tl_mcp.sandbox.knowledge.models import Evidence
from tl_mcp.sandbox.perception import TimedText

TEXTS = [
    "The new phone launches on March 14, 2026 and costs 499 dollars.",
    "Its battery lasts twenty hours.",
    "The ocean, chapter three",
    "Sales grew 20 percent this quarter.",
]
ANSWER = "The phone costs 499 dollars and its battery lasts twenty hours."
MOMENTS = [
    Evidence(f"ksi_{i}", f"asset{i}", f"clip{i}.mp4", 6.0 * i + 0.5, 6.0 * i + 5.5, t, "speech", 0.9 - i / 10)
    for i, t in enumerate(TEXTS)
]


def _index(engine: Engine) -> AssetIndex:
    sources = ["speech", "speech", "ocr", "speech"]
    timed = [
        TimedText(6.0 * i + 0.5, 6.0 * i + 5.5, t, s, 0.9)  # type: ignore[arg-type]
        for i, (t, s) in enumerate(zip(TEXTS, sources, strict=True))
    ]
    return AssetIndex(
        asset_id="asset000001",
        starts=np.arange(len(TEXTS)) * 6.0,
        ends=np.arange(len(TEXTS)) * 6.0 + 6.0,
        thumbnails=[None] * len(TEXTS),
        image_vecs=None,
        texts=timed,
        text_vecs=engine.analyzers.text.embed(TEXTS),
    )


def _obj(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, **extra}


STR = {"type": "string"}
NUM = {"type": "number"}
MOMENT = _obj({"start_sec": NUM, "end_sec": NUM, "quote": STR})

#: (schema, the fields no evidence fits, for both callers)
SCHEMAS: list[tuple[dict[str, Any], set[str]]] = [
    (
        _obj(
            {
                "launch_date": {"type": "string", "format": "date"},
                "price_usd": NUM,
                "battery_hours": {"type": "integer"},
                "weight_grams": {"type": ["number", "null"]},
                "speaker_name": STR,
                "answer": STR,
                "summary": STR,
                "mentions_ocean": {"type": "boolean"},
            }
        ),
        {"weight_grams", "speaker_name"},
    ),
    # Required fields with no evidence at all.
    (
        _obj(
            {
                "weight_grams": NUM,
                "speaker_name": STR,
                "is_waterproof": {"type": "boolean"},
                "colour": {"type": "string", "enum": ["black", "white"]},
            },
            required=["weight_grams", "speaker_name", "is_waterproof", "colour"],
        ),
        {"weight_grams", "speaker_name", "is_waterproof", "colour"},
    ),
    # Deep nesting.
    (
        _obj(
            {"a": _obj({"b": _obj({"c": _obj({"d": _obj({"e": _obj({"answer": STR, "price_usd": NUM})})})})})}
        ),
        set(),
    ),
    (
        {
            "$defs": {"moment": MOMENT},
            **_obj({"moments": {"type": "array", "items": {"$ref": "#/$defs/moment"}}}),
        },
        set(),
    ),
    # $ref cycles: a node whose child may be another node, chapters of chapters, a root that contains itself.
    (
        {
            "$defs": {
                "node": _obj({"quote": STR, "child": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}})
            },
            **_obj({"root": {"$ref": "#/$defs/node"}}),
        },
        {"root/child"},
    ),
    (
        {
            "$defs": {
                "chapter": _obj(
                    {
                        "title": STR,
                        "start_sec": NUM,
                        "parts": {"type": "array", "items": {"$ref": "#/$defs/chapter"}},
                    }
                )
            },
            **_obj({"chapters": {"type": "array", "items": {"$ref": "#/$defs/chapter"}}}),
        },
        {"chapters[]/parts"},
    ),
    (_obj({"answer": STR, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}), {"next"}),
    # anyOf object|null, and options where only a later one fits.
    (_obj({"details": {"anyOf": [_obj({"answer": STR, "price_usd": NUM}), {"type": "null"}]}}), set()),
    (_obj({"price_usd": {"anyOf": [{"type": "string", "format": "date"}, NUM]}}), set()),
    (
        _obj({"battery_hours": {"oneOf": [{"type": "integer", "minimum": 1000}, {"type": "null"}]}}),
        {"battery_hours"},
    ),
    # Enums of ints, consts.
    (_obj({"battery_hours": {"enum": [20, 30]}, "floor": {"enum": [7, 8, 9]}}), {"floor"}),
    (_obj({"kind": {"const": "facts"}, "version": {"const": 2}, "answer": STR}), set()),
    # Arrays of objects, with additionalProperties false throughout.
    (
        _obj(
            {
                "moments": {
                    "type": "array",
                    "items": _obj(
                        {"title": STR, "start_sec": NUM, "end_sec": NUM, "quote": STR},
                        additionalProperties=False,
                    ),
                },
                "meta": _obj({"answer": STR}, additionalProperties=False),
            },
            additionalProperties=False,
        ),
        set(),
    ),
    # minItems / maxItems: more asked for than there is, fewer allowed than there is.
    (
        _obj(
            {
                "topics": {"type": "array", "items": STR, "minItems": 1, "maxItems": 2},
                "quotes": {"type": "array", "items": STR, "maxItems": 2},
                "tags": {"type": "array", "items": STR, "minItems": 6},
            }
        ),
        {"tags"},
    ),
    # Integers with bounds: one fits, one is found only outside them.
    (
        _obj(
            {
                "battery_hours": {"type": "integer", "minimum": 1, "maximum": 24},
                "year": {"type": "integer", "minimum": 1900, "maximum": 1950},
            }
        ),
        {"year"},
    ),
    (
        _obj(
            {
                "mentions_ocean": {"type": "boolean"},
                "mentions_camera": {"type": "boolean"},
                "is_waterproof": {"type": ["boolean", "null"]},
                "found": {"type": "boolean"},
            }
        ),
        {"is_waterproof"},
    ),
    (
        _obj(
            {
                "launch_date": {"type": "string", "format": "date"},
                "release": {"type": ["string", "null"], "format": "date-time", "description": "release date"},
                "deadline": {"type": ["string", "null"], "format": "date", "description": "when sales close"},
            }
        ),
        {"release", "deadline"},
    ),
    (
        _obj({"speaker": {"type": ["string", "null"]}, "weight_kg": {"type": ["number", "null"]}}),
        {"speaker", "weight_kg"},
    ),
    (_obj({"code": {"type": ["string", "null"], "pattern": "^[A-Z]{3}$"}}), {"code"}),
    (_obj({"contact_email": {"type": ["string", "null"], "format": "email"}}), {"contact_email"}),
    # Several answer-like fields, and a nested object asking the same: each quote once per record.
    (
        _obj(
            {
                "answer": STR,
                "summary": STR,
                "explanation": STR,
                "details": _obj({"answer": STR, "reason": STR, "evidence": STR}),
            }
        ),
        set(),
    ),
    (
        _obj(
            {
                "summary": STR,
                "quotes": {"type": "array", "items": STR},
                "highlights": {"type": "array", "items": _obj({"start_sec": NUM, "highlight": STR})},
            }
        ),
        set(),
    ),
    (
        _obj(
            {
                "chapters": {
                    "type": "array",
                    "items": _obj(
                        {"start_sec": NUM, "end_sec": NUM, "title": STR, "summary": STR, "text": STR}
                    ),
                },
                "timeline": {"type": "array", "items": _obj({"time": STR, "quote": STR})},
            }
        ),
        set(),
    ),
    (
        _obj(
            {
                "title": STR,
                "topics": {"type": "array", "items": STR},
                "hashtags": {"type": "array", "items": STR},
            },
            required=["title", "topics", "hashtags"],
        ),
        set(),
    ),
    ({"type": "array", "items": MOMENT}, set()),
    (
        _obj({"count": {"type": "integer"}, "total_price_usd": NUM, "how_many_scenes": {"type": "integer"}}),
        set(),
    ),
    (_obj({"value": {"type": ["integer", "string"]}, "note": {"type": ["string", "integer"]}}), set()),
    (
        _obj(
            {
                "flags": {
                    "type": ["array", "null"],
                    "uniqueItems": True,
                    "minItems": 3,
                    "items": {"type": "boolean"},
                }
            }
        ),
        {"flags"},
    ),
    (_obj({"meta": {"type": "object"}, "empty": _obj({})}), set()),
    (
        _obj(
            {
                "video": _obj({"title": STR, "duration_sec": NUM, "summary": STR}),
                "moments": {
                    "type": "array",
                    "items": _obj({"quote": STR, "text": STR, "speaker": {"type": ["string", "null"]}}),
                },
            }
        ),
        set(),
    ),
]


def _leaves(value: Any, path: str, record: str, out: list[tuple[str, str, Any]]) -> None:
    """(record, field path, value) of every leaf: an array entry that is an object is a record of its
    own; a nested object belongs to its parent's."""
    if isinstance(value, dict):
        for key, sub in value.items():
            _leaves(sub, f"{path}/{key}" if path else key, record, out)
    elif isinstance(value, list):
        out.append((record, path or "(root)", value))
        for i, sub in enumerate(value):
            _leaves(sub, f"{path}[]", f"{record}/{path}[{i}]" if isinstance(sub, dict) else record, out)
    else:
        out.append((record, path or "(root)", value))


def _absent(schema: Any, value: Any, path: str, out: list[str]) -> None:
    """The paths of the properties a plain object schema names and the value leaves out."""
    if not isinstance(schema, dict) or "$ref" in schema:
        return
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        for key, sub in schema["properties"].items():
            where = f"{path}/{key}" if path else key
            if key not in value:
                out.append(where)
            else:
                _absent(sub, value[key], where, out)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for entry in value:
            _absent(schema["items"], entry, f"{path}[]", out)


def _listed(path: str, unfilled: list[str]) -> bool:
    """Whether ``path`` or a field it lies in (an array whose entries are placeholders) is listed."""
    return any(path == p or path.startswith((p + "[]", p + "/")) for p in unfilled)


def _check(
    schema: dict[str, Any], value: Any, unfilled: list[str], expected: set[str], quotes: list[str]
) -> None:
    jsonschema.validate(value, schema)
    assert len(unfilled) == len(set(unfilled)), unfilled
    assert all(_listed(e, unfilled) for e in expected), (value, unfilled)
    leaves: list[tuple[str, str, Any]] = []
    _leaves(value, "", "", leaves)
    for _, path, leaf in leaves:
        gap = leaf is None or leaf == [] or (isinstance(leaf, str) and leaf.startswith(NOT_FOUND))
        assert not gap or _listed(path, unfilled), (path, leaf, unfilled)
    absent: list[str] = []
    _absent(schema, value, "", absent)
    assert all(_listed(p, unfilled) for p in absent), (absent, unfilled)
    # A quote (a string holding a sentence of the evidence, or the answer) stands in one field per record.
    fields: dict[tuple[str, str], set[str]] = {}
    for record, path, leaf in leaves:
        if isinstance(leaf, str) and any(q in leaf for q in quotes):
            fields.setdefault((record, leaf), set()).add(path)
    repeated = {leaf: paths for (_, leaf), paths in fields.items() if len(paths) > 1}
    assert not repeated, repeated


def test_the_list_is_varied_enough() -> None:
    assert len(SCHEMAS) >= 25
    for schema, _ in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("schema", "expected"), SCHEMAS)
def test_jockey_fills_every_schema_validly_quoting_once_and_listing_every_gap(
    schema: dict[str, Any], expected: set[str]
) -> None:
    for moments in (MOMENTS, []):
        unfilled: list[str] = []
        value, problems = fill(
            schema, question="What does the phone cost?", summary=ANSWER, moments=moments, unfilled=unfilled
        )
        assert problems == [], (schema, value)
        _check(tighten(schema), value, unfilled, expected, [*TEXTS, ANSWER])


@pytest.mark.parametrize(("schema", "expected"), SCHEMAS)
@pytest.mark.parametrize("prompt", ["What does the phone cost?", "Summarize the video."])
def test_analyze_fills_every_schema_validly_quoting_once_and_listing_every_gap(
    engine: Engine, schema: dict[str, Any], expected: set[str], prompt: str
) -> None:
    filled = answer_json(engine, _index(engine), prompt, schema, 24.0)
    # The on-screen line is its scene's title too, so titles and tags may name it beside its quote.
    said = [t for t in TEXTS if t != TEXTS[2]]
    _check(schema, json.loads(filled.text), filled.unfilled, expected, said)


# ---------------------------------------------------------------- what one caller did better, both do now


def _jockey(schema: dict[str, Any], moments: list[Evidence] = MOMENTS) -> tuple[Any, list[str]]:
    unfilled: list[str] = []
    value, problems = fill(
        schema, question="What does the phone cost?", summary=ANSWER, moments=moments, unfilled=unfilled
    )
    assert problems == [], value
    return value, unfilled


def _analyze(
    engine: Engine, schema: dict[str, Any], prompt: str = "What does the phone cost?"
) -> tuple[Any, list[str]]:
    filled = answer_json(engine, _index(engine), prompt, schema, 24.0)
    value = json.loads(filled.text)
    jsonschema.validate(value, schema)
    return value, filled.unfilled


def test_jockey_lists_topics_hashtags_and_quotes_from_its_moments() -> None:
    # Before: analyze alone knew these lists; Jockey returned [] for each.
    schema = _obj(
        {
            "topics": {"type": "array", "items": STR},
            "hashtags": {"type": "array", "items": STR},
            "quotes": {"type": "array", "items": STR},
        }
    )
    value, unfilled = _jockey(schema)
    assert value["quotes"] == TEXTS and unfilled == []
    assert len(value["topics"]) == len(TEXTS)
    for topic, text in zip(value["topics"], TEXTS, strict=True):
        assert topic.lower() in text.lower() and topic != text
    assert value["hashtags"][0] == "#" + value["topics"][0].title().replace(" ", "")


def test_jockey_takes_a_total_price_for_a_price_not_for_a_count_of_moments() -> None:
    # Before: any "total" field was the number of moments (4).
    value, _ = _jockey(_obj({"total_price_usd": NUM, "total_moments": {"type": "integer"}}))
    assert value == {"total_price_usd": 499, "total_moments": 4}


def test_a_moment_entry_quotes_its_text_in_one_field_only() -> None:
    # Before: Jockey put a moment's text in every answer-like field of its entry.
    schema = _obj({"moments": {"type": "array", "items": _obj({"quote": STR, "text": STR})}})
    value, unfilled = _jockey(schema)
    assert [m["quote"] for m in value["moments"]] == TEXTS
    assert all(m["text"] == NOT_FOUND for m in value["moments"]) and unfilled == ["moments[]/text"]


def test_a_nested_object_does_not_repeat_the_quote_of_the_record_around_it(engine: Engine) -> None:
    # Before: both walkers began a nested object afresh, so "details/answer" repeated "answer".
    schema = _obj({"answer": STR, "details": _obj({"answer": STR})}, required=["answer", "details"])
    value, _ = _jockey(schema)
    assert value["answer"] == ANSWER and value["details"]["answer"] == TEXTS[0]
    value, _ = _analyze(engine, schema)
    assert value["answer"] == TEXTS[0] and value["details"].get("answer") != TEXTS[0]


def test_analyze_follows_refs_and_tries_each_option(engine: Engine) -> None:
    # Before: analyze read a $ref as a string field and took only the first option of an anyOf.
    schema = {
        "$defs": {"moment": _obj({"start_sec": NUM, "quote": STR}, required=["start_sec", "quote"])},
        **_obj(
            {
                "chapters": {"type": "array", "items": {"$ref": "#/$defs/moment"}},
                "price_usd": {"anyOf": [{"type": "string", "format": "date"}, NUM]},
            },
            required=["chapters", "price_usd"],
        ),
    }
    value, unfilled = _analyze(engine, schema)
    assert [c["start_sec"] for c in value["chapters"]] == [0.0, 6.0, 12.0, 18.0]
    assert value["price_usd"] == 499 and unfilled == []


def test_a_schema_that_contains_itself_ends_where_nothing_new_is_left_to_say(engine: Engine) -> None:
    # Before: Jockey walked a self-containing schema eight levels down and then gave None where an
    # object or array belonged (the turn failed validation); analyze did not follow the $ref at all.
    schema = {
        "$defs": {
            "chapter": _obj({"title": STR, "parts": {"type": "array", "items": {"$ref": "#/$defs/chapter"}}})
        },
        **_obj({"chapters": {"type": "array", "items": {"$ref": "#/$defs/chapter"}}}, required=["chapters"]),
    }
    value, unfilled = _jockey(schema)
    assert [c["parts"] for c in value["chapters"]] == [[]] * 4 and unfilled == ["chapters[]/parts"]
    value, unfilled = _analyze(engine, schema, "Summarize the video.")
    assert len(value["chapters"]) == 4 and unfilled == ["chapters[]/parts"]


def test_a_patterned_field_gets_no_quote_that_breaks_its_pattern(engine: Engine) -> None:
    # Before: analyze filled it with a sentence that broke the pattern.
    schema = _obj({"answer": {"type": ["string", "null"], "pattern": "^[0-9]+$"}}, required=["answer"])
    assert _analyze(engine, schema) == ({"answer": None}, ["answer"])
    assert _jockey(schema) == ({"answer": None}, ["answer"])


def test_a_date_field_takes_the_date_said_of_its_subject_only(engine: Engine) -> None:
    # Before: both gave the first date in the evidence to any date field.
    schema = _obj(
        {"launch_date": {"type": "string", "format": "date"}, "release_date": {"type": ["string", "null"]}},
        required=["launch_date", "release_date"],
    )
    for value, unfilled in (_jockey(schema), _analyze(engine, schema)):
        assert value == {"launch_date": "2026-03-14", "release_date": None} and unfilled == ["release_date"]


def test_a_duration_is_of_what_the_field_describes(engine: Engine) -> None:
    # Before: analyze gave the first moment's start to "duration_sec", Jockey the first moment's length
    # to a video's duration it does not know.
    schema = _obj(
        {
            "video": _obj({"duration_sec": NUM}),
            "moments": {"type": "array", "items": _obj({"duration_sec": NUM})},
        },
        required=["video", "moments"],
    )
    value, _ = _analyze(engine, schema, "Summarize the video.")
    assert value["video"] == {"duration_sec": 24.0} and value["moments"] == [{"duration_sec": 6.0}] * 4
    value, unfilled = _jockey(schema)
    assert value["moments"] == [{"duration_sec": 5.0}] * 4 and unfilled == ["video/duration_sec"]


def test_a_huge_min_items_or_min_length_costs_nothing_and_invents_nothing(engine: Engine) -> None:
    # Before: a minItems of a million gave a million repeats (a check of 30 million did not end), and a
    # nullable string with a huge minLength was a quote padded with dots to that length.
    many = _obj({"tags": {"type": "array", "items": STR, "minItems": 10**6}}, required=["tags"])
    filled = answer_json(engine, _index(engine), "Summarize the video.", many, 24.0)
    assert len(json.loads(filled.text)["tags"]) == MAX_ENTRIES and filled.unfilled == ["tags"]
    long = _obj({"answer": {"type": ["string", "null"], "minLength": 10**6}})
    assert _jockey(long) == ({"answer": None}, ["answer"])
