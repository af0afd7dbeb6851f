"""The extractive Jockey's structured output: each field gets only evidence that fits it, and what it
cannot fill is null or empty and reported, never a quote or a time passed off as the answer."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tl_mcp.sandbox.answers import Part, answer_json
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.fitting import NOT_FOUND, date_in, numbers_in
from tl_mcp.sandbox.jockey.structured import fill, tighten
from tl_mcp.sandbox.knowledge.models import Evidence
from tl_mcp.sandbox.perception import TimedText


def _moment(i: int, text: str, start: float, end: float) -> Evidence:
    return Evidence(f"ksi_{i}", f"asset{i}", f"clip{i}.mp4", start, end, text, "speech", 0.9 - i / 10)


MOMENTS = [
    _moment(0, "The new phone launches on March 14, 2026 and costs 499 dollars.", 6.2, 11.7),
    _moment(1, "Its battery lasts twenty hours.", 12.0, 14.5),
    _moment(2, "The ocean, chapter three", 20.0, 26.0),
]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "launch_date": {"type": "string", "format": "date"},
        "price_usd": {"type": "number"},
        "battery_hours": {"type": "integer"},
        "weight_grams": {"type": ["number", "null"]},
        "speaker_name": {"type": "string"},
        "answer": {"type": "string"},
        "summary": {"type": "string"},
        "colour": {"type": "string", "enum": ["black", "white"]},
        "mentions_ocean": {"type": "boolean"},
        "mentions_camera": {"type": "boolean"},
        "is_waterproof": {"type": "boolean"},
    },
}


def test_each_field_takes_only_evidence_of_its_kind() -> None:
    unfilled: list[str] = []
    value, problems = fill(
        SCHEMA,
        question="Tell me about the new phone",
        summary="The phone.",
        moments=MOMENTS,
        unfilled=unfilled,
    )
    assert problems == []
    jsonschema.validate(value, tighten(SCHEMA))
    assert value["launch_date"] == "2026-03-14"
    assert value["price_usd"] == 499 and value["battery_hours"] == 20
    assert value["mentions_ocean"] is True and value["mentions_camera"] is False
    # No evidence: null where the schema allows it, else a neutral value, and every one is reported.
    assert value["weight_grams"] is None
    assert (
        value["speaker_name"] == NOT_FOUND and value["colour"] == "black" and value["is_waterproof"] is False
    )
    assert sorted(unfilled) == ["colour", "is_waterproof", "speaker_name", "weight_grams"]
    # The answer field gets the answer; never one quote copied into several fields.
    assert value["answer"] == "The phone." and value["summary"] == MOMENTS[0].text


def test_a_date_field_without_a_date_is_not_given_a_quote_or_the_epoch() -> None:
    schema = {
        "type": "object",
        "properties": {
            "release_date": {"type": ["string", "null"]},
            "when": {"type": "string", "format": "date-time"},
            "moments": {
                "type": "array",
                "items": {"type": "object", "properties": {"date": {"type": ["string", "null"]}}},
            },
        },
    }
    unfilled: list[str] = []
    value, problems = fill(schema, question="q", summary="s", moments=MOMENTS[1:], unfilled=unfilled)
    assert problems == []
    assert value["release_date"] is None and value["when"] == NOT_FOUND
    assert value["moments"] == [{"date": None}, {"date": None}]
    assert "release_date" in unfilled and "when" in unfilled and "moments[]/date" in unfilled


def test_numbers_and_dates_are_read_as_written() -> None:
    assert [v for v, _, _ in numbers_in("revenue grew twenty percent to $3,500.50 in 2 weeks")] == [
        20.0,
        3500.5,
        2.0,
    ]
    assert [v for v, _, _ in numbers_in("one hundred and five people, twenty-one days")] == [105.0, 21.0]
    assert date_in("on the 3rd of May 2025", "date") == "2025-05-03"
    assert date_in("launching 2026-07-30", "date-time") == "2026-07-30T00:00:00Z"
    assert date_in("in June 2027", None) == "June 2027" and date_in("in June 2027", "date") is None
    assert date_in("chapter three", None) is None


_NAMES = st.sampled_from(
    ["launch_date", "price", "count", "summary", "speaker", "is_live", "mentions_ocean", "kind", "start_sec"]
)
_LEAF = st.one_of(
    st.sampled_from(
        [
            {"type": "string"},
            {"type": "string", "format": "date"},
            {"type": ["string", "null"]},
            {"type": "number"},
            {"type": "integer", "minimum": 1, "maximum": 5},
            {"type": ["number", "null"]},
            {"type": "boolean"},
            {"type": "string", "enum": ["ocean", "phone", "other"]},
            {"enum": ["a", "b", None]},
            {"anyOf": [{"type": "number"}, {"type": "null"}]},
            {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        ]
    ),
)
_SCHEMAS = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.builds(
            lambda items, low: {"type": "array", "items": items, "minItems": low},
            inner,
            st.integers(min_value=0, max_value=2),
        ),
        st.builds(
            lambda props: {"type": "object", "properties": props},
            st.dictionaries(_NAMES, inner, min_size=1, max_size=4),
        ),
    ),
    max_leaves=8,
).map(lambda s: s if s.get("type") == "object" else {"type": "object", "properties": {"value": s}})


@settings(max_examples=60, deadline=None)
@given(schema=_SCHEMAS, n=st.integers(min_value=0, max_value=3))
def test_any_schema_gets_json_that_validates_and_every_gap_is_reported(
    schema: dict[str, Any], n: int
) -> None:
    unfilled: list[str] = []
    value, problems = fill(schema, question="q", summary="s", moments=MOMENTS[:n], unfilled=unfilled)
    assert problems == [], (schema, value)
    jsonschema.validate(value, tighten(schema))
    assert len(unfilled) == len(set(unfilled))


_TEXTS = [
    "The new phone launches on March 14, 2026 and costs 499 dollars.",
    "Its battery lasts twenty hours.",
    "The ocean, chapter three",
]


def _index(engine: Engine) -> AssetIndex:
    timed = [TimedText(6.0 * i + 0.5, 6.0 * i + 5.5, t, "speech", 0.9) for i, t in enumerate(_TEXTS)]
    return AssetIndex(
        asset_id="asset000001",
        starts=np.arange(len(_TEXTS)) * 6.0,
        ends=np.arange(len(_TEXTS)) * 6.0 + 6.0,
        thumbnails=[None] * len(_TEXTS),
        image_vecs=None,
        texts=timed,
        text_vecs=engine.analyzers.text.embed(_TEXTS),
    )


_REQUIRED = st.booleans()


def _with_required(schema: dict[str, Any], everything: bool) -> dict[str, Any]:
    """The schema with every object's properties required (or none), as a caller may send it."""
    out = {k: _with_required(v, everything) if isinstance(v, dict) else v for k, v in schema.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _with_required(v, everything) for k, v in out["properties"].items()}
        if everything:
            out["required"] = list(out["properties"])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=_SCHEMAS, everything=_REQUIRED, prompt=st.sampled_from(["phone price", "summarize", "zebra"]))
def test_analysis_json_validates_against_the_callers_schema(
    engine: Engine, schema: dict[str, Any], everything: bool, prompt: str
) -> None:
    schema = _with_required(schema, everything)
    filled = answer_json(engine, _index(engine), prompt, schema, 18.0)
    value = json.loads(filled.text)
    jsonschema.validate(value, schema)
    assert len(filled.unfilled) == len(set(filled.unfilled))


def test_a_timeline_is_in_time_order_not_relevance_order() -> None:
    schema = {
        "type": "object",
        "properties": {
            "timeline": {
                "type": "array",
                "items": {"type": "object", "properties": {"start": {"type": "number"}}},
            },
            "moments": {
                "type": "array",
                "items": {"type": "object", "properties": {"start": {"type": "number"}}},
            },
        },
    }
    by_relevance = [MOMENTS[2], MOMENTS[0], MOMENTS[1]]
    value, problems = fill(schema, question="q", summary="s", moments=by_relevance)
    assert problems == []
    assert [m["start"] for m in value["timeline"]] == [6.2, 12.0, 20.0]
    assert [m["start"] for m in value["moments"]] == [20.0, 6.2, 12.0]  # best first, as retrieved


def test_a_part_says_speech_and_its_subtitle_once_however_speech_was_cut() -> None:
    # Whisper cuts speech at the pause after "pasta"; the subtitle has the whole sentence. A one-scene
    # video's summary and chapter were "Now we are cooking pasta Now we are cooking pasta: boil …".
    sentence = "Now we are cooking pasta: boil the water, then add salt and stir the sauce."
    texts = (
        TimedText(0.1, 1.9, "Now we are cooking pasta", "speech"),
        TimedText(0.5, 5.5, sentence, "subtitle"),
        TimedText(2.2, 5.4, "boil the water, then add salt and stir the sauce.", "speech"),
    )
    assert Part(0.0, 6.0, texts).summary == sentence
    # Order by time still holds for distinct sentences, and the fuller one keeps the first one's place.
    later = TimedText(6.5, 8.0, "The sauce is ready.", "speech")
    assert Part(0.0, 9.0, (*texts, later)).summary == f"{sentence} The sauce is ready."
