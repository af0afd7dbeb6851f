"""The extractive structured fill picks the fact a field asks for, not the first text near it: the
defects an outside review found with its "town bulletin" and "garden podcast" (tests/review_media.py),
here on texts written as the sandbox's speech recognition and OCR gave them, so every rule is pinned
without indexing media. tests/ml/test_review_bulletin.py asks the same of the real video."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np

from tl_mcp.sandbox.answers import answer_json, keyphrase
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.jockey.structured import fill, lookups
from tl_mcp.sandbox.knowledge.models import Evidence
from tl_mcp.sandbox.perception import TimedText
from tl_mcp.server.tools.analyze import _SCHEMAS

STR = {"type": "string"}
NUM = {"type": "number"}
INT = {"type": "integer"}

#: (start, end, text, source) as the bulletin's first minute was heard and read.
BULLETIN = [
    (0.0, 9.3, "HARBOUR FESTIVAL", "ocr"),
    (0.0, 9.3, "Lisbon", "ocr"),
    (0.7, 4.0, "The Lisbon Harbor Festival opened on March 14.", "speech"),
    (7.9, 10.4, "Ticket's cost 18-0 at the gate.", "speech"),
    (12.6, 16.3, "Dr. Amaro Sailli will lead the workshop on solar kilns.", "speech"),
    (21.7, 33.1, "RECALL NOTICE", "ocr"),
    (21.7, 33.1, "Kettle KX-40", "ocr"),
    (21.7, 33.1, "call 0800 555 123", "ocr"),
    (34.1, 37.3, "A monthly ferry pass out costs 42 dollars.", "speech"),
    (39.7, 41.8, "The discount starts in July.", "speech"),
    (45.4, 50.0, "Merringrid Harvorson signed the river treated in 1998.", "speech"),
    (64.6, 66.5, "Entry is free on Sundays.", "speech"),
]


def _index(engine: Engine, texts: list[tuple[float, float, str, str]]) -> AssetIndex:
    cuts = sorted({s for s, *_ in texts} | {max(e for _, e, *_ in texts)})
    timed = [TimedText(s, e, t, src, 0.9) for s, e, t, src in texts]  # type: ignore[arg-type]
    return AssetIndex(
        asset_id="asset000001",
        starts=np.array(cuts[:-1]),
        ends=np.array(cuts[1:]),
        thumbnails=[None] * (len(cuts) - 1),
        image_vecs=None,
        texts=timed,
        text_vecs=engine.analyzers.text.embed([t for *_, t, _ in texts]),
    )


def _analyze(
    engine: Engine,
    props: dict[str, Any],
    prompt: str,
    texts: list[tuple[float, float, str, str]] = BULLETIN,
    window: tuple[float, float | None] = (0.0, None),
) -> tuple[dict[str, Any], list[str]]:
    schema = {"type": "object", "properties": props}
    filled = answer_json(engine, _index(engine, texts), prompt, schema, 70.0, window)
    value = json.loads(filled.text)
    jsonschema.validate(value, schema)
    return value, filled.unfilled


def test_a_price_in_one_currency_is_no_price_in_another(engine: Engine) -> None:
    value, unfilled = _analyze(engine, {"ticket_price_euros": NUM}, "What do tickets cost?")
    # Before: 42.0, the ferry pass's dollars. "18 euros" was heard as "18-0": unfilled is right.
    assert "ticket_price_euros" not in value and unfilled == ["ticket_price_euros"], value
    value, _ = _analyze(
        engine,
        {"ferry_price_dollars": NUM, "ticket_price_euros": NUM},
        "What do tickets cost?",
        [*BULLETIN, (7.9, 10.4, "Tickets cost 18 euros at the gate.", "speech")],
    )
    assert value == {"ferry_price_dollars": 42.0, "ticket_price_euros": 18.0}, value


def test_a_city_is_a_name_near_its_subject_not_the_subjects_title(engine: Engine) -> None:
    value, _ = _analyze(
        engine,
        {"festival_city": STR, "workshop_leader": STR},
        "Where is the festival and who leads the workshop?",
    )
    # Before: "HARBOUR FESTIVAL" (the title on screen) and the whole sentence.
    assert value == {"festival_city": "Lisbon", "workshop_leader": "Dr. Amaro Sailli"}, value


def test_a_field_of_a_shape_takes_a_value_of_that_shape(engine: Engine) -> None:
    texts = [*BULLETIN, (40.0, 44.0, "Write to recalls@kettle.org or see www.kettle.org/kx40", "ocr")]
    props = {"recall_phone": STR, "model": STR, "contact_email": STR, "website": STR}
    value, _ = _analyze(engine, props, "What is recalled and whom do I call?", texts)
    # Before: "RECALL NOTICE" for the phone, and nothing for the rest.
    assert value == {
        "recall_phone": "0800 555 123",
        "model": "KX-40",
        "contact_email": "recalls@kettle.org",
        "website": "www.kettle.org/kx40",
    }, value
    # A price is no phone number, a word no model code: unfilled rather than a wrong shape.
    only_prices = [(0.0, 5.0, "A monthly ferry pass costs 42 dollars.", "speech")]
    value, unfilled = _analyze(engine, {"phone": STR, "model": STR}, "What does it cost?", only_prices)
    assert value == {} and unfilled == ["phone", "model"], value


def test_an_enum_value_said_in_the_plural_is_that_value(engine: Engine) -> None:
    day = {"type": "string", "enum": ["Monday", "Friday", "Saturday", "Sunday"]}
    value, _ = _analyze(engine, {"free_entry_day": day}, "Which day is entry free?")
    assert value == {"free_entry_day": "Sunday"}, value
    # Asked about something else, the field still finds its value where what it asks about is said; a
    # value said of something else is not taken.
    value, _ = _analyze(
        engine, {"free_entry_day": day, "colour": {"enum": ["red", "blue"]}}, "What does the ferry pass cost?"
    )
    assert value == {"free_entry_day": "Sunday"}, value


def test_a_year_field_takes_a_year_and_a_month_field_a_month(engine: Engine) -> None:
    # Before: "year" unfilled in the window around "in 1998" (only "treaty_year" matched by its word).
    value, _ = _analyze(engine, {"year": INT, "when": STR}, "What happened here?", window=(44.0, 57.0))
    assert value["year"] == 1998, value
    value, _ = _analyze(
        engine, {"discount_month": STR, "discount_month_number": INT}, "When is the discount?"
    )
    assert value == {"discount_month": "July", "discount_month_number": 7}, value
    podcast = [
        (0.1, 3.5, "Welcome to Nogada Hour with Preonair", "speech"),
        (4.6, 6.5, "Plantarlic in late October", "speech"),
        (7.6, 11.0, "A Madon compost cost $7.00 at the market", "speech"),
    ]
    # Before: both unfilled. The host is the name said after "with"; "Nogada Hour" is what they host.
    value, _ = _analyze(engine, {"host": STR, "month": STR}, "Who hosts it and when to plant?", podcast)
    assert value == {"host": "Preonair", "month": "October"}, value
    # A verb is no month, and a field of a count of years takes no year.
    value, unfilled = _analyze(
        engine,
        {"month": STR, "years_count": INT},
        "When?",
        [(0.0, 4.0, "You may plant it in 1998 soil.", "speech")],
    )
    assert "month" not in value and "month" in unfilled, value


def test_a_gist_title_is_not_a_phone_line(engine: Engine) -> None:
    prompt, schema = _SCHEMAS["gist"]
    value, _ = _analyze(engine, schema["properties"], prompt)
    assert "0800" not in value["title"], value
    assert keyphrase(["call 0800 555 123"]) == "" and keyphrase(["Chapter 3"]) == "Chapter 3"


def _moment(start: float, end: float, text: str, source: str = "ocr", **extra: Any) -> Evidence:
    return Evidence("ksi_1", "asset1", "bulletin.mp4", start, end, text, source, 0.8, **extra)


def test_jockey_reads_a_moments_other_texts_and_lists_a_moment_once() -> None:
    notice = _moment(
        21.75, 33.25, "RECALL NOTICE", context=(("ocr", "Kettle KX-40"), ("speech", "call 0800 555 123"))
    )
    # The same moment found twice (by its own text and by another's): one entry.
    again = _moment(21.75, 33.25, "RECALL NOTICE", source="speech")
    ferry = _moment(34.1, 37.3, "A monthly ferry pass costs 42 dollars.", "speech")
    entry = {"type": "object", "properties": {"start": NUM, "end": NUM, "text": STR}}
    schema = {
        "type": "object",
        "properties": {"model": STR, "phone": STR, "moments": {"type": "array", "items": entry}},
    }
    unfilled: list[str] = []
    value, problems = fill(
        schema,
        question="Tell me about the kettle recall",
        summary="",
        moments=[notice, again, ferry],
        unfilled=unfilled,
    )
    assert problems == [] and unfilled == [], value
    assert value["model"] == "KX-40" and value["phone"] == "0800 555 123", value
    assert value["moments"] == [
        {"start": 21.75, "end": 33.25, "text": "RECALL NOTICE"},
        {"start": 34.1, "end": 37.3, "text": "A monthly ferry pass costs 42 dollars."},
    ], value


def test_jockey_looks_up_a_field_its_moments_say_nothing_about() -> None:
    festival = _moment(0.7, 4.0, "The Lisbon Harbor Festival opened on March 14.", "speech")
    props = {
        "ferry_pass_price_dollars": NUM,
        "discount_month": STR,
        "festival_date": STR,
        "start_sec": NUM,
        "summary": STR,
        "details": {"type": "object", "properties": {"mayor_name": STR}},
        "moments": {"type": "array", "items": {"type": "object", "properties": {"festival_city": STR}}},
        "people": {"type": "array", "items": STR},
    }
    schema = {"type": "object", "properties": props}
    # Only the fields about something the moment does not name are searched for; times, summaries and
    # array entries (each about its own moment) are not.
    assert lookups(schema, [festival]) == ["ferry pass price dollars", "discount month", "mayor"]
    found = [
        _moment(34.1, 37.3, "A monthly ferry pass out costs 42 dollars.", "speech"),
        _moment(39.7, 41.8, "The discount starts in July.", "speech"),
    ]
    unfilled: list[str] = []
    value, problems = fill(
        schema,
        question="List the key facts.",
        summary="",
        moments=[festival],
        unfilled=unfilled,
        looked_up=found,
    )
    assert problems == [], value
    assert value["ferry_pass_price_dollars"] == 42.0 and value["discount_month"] == "July", value
    assert value["festival_date"] == "March 14", value
    assert [m["festival_city"].split()[0] for m in value["moments"]] == ["Lisbon"], value
    # What was looked up fills fields of the record, never an entry of its own.
    assert "details/mayor_name" in unfilled and len(value["moments"]) == 1
