"""The search ``filter`` language, parsed and applied by the sandbox (``sandbox/filters.py``): system fields
(``id``, ``duration``, ``width``, ``height``, ``size``, ``filename``) and user metadata keys, equality and
``{gte, lte}`` ranges, all of which must hold. A filter that does not parse is a 400
``search_filter_invalid`` that names the key. ``include_user_metadata`` applies to every page, also the
ones fetched with a page token."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sandbox.conftest import Library, Media, indexed, ready_asset


@pytest.fixture(scope="module")
def two(library: Library, media: Media) -> dict[str, Any]:
    """The library's video plus a second copy of the same clip, with different metadata."""
    second = indexed(library.client, library.index_id, ready_asset(library.client, media.video.path))
    for video_id, meta in (
        (library.video_id, {"team": "red", "score": 3, "final": True, "tags": ["goal", "replay"]}),
        (second, {"team": "blue", "score": 7.5, "final": False}),
    ):
        r = library.client.patch(
            f"/indexes/{library.index_id}/indexed-assets/{video_id}", json={"user_metadata": meta}
        )
        assert r.is_success, r.text
    info = library.client.get(f"/indexes/{library.index_id}/indexed-assets/{second}").json()
    return {"first": library.video_id, "second": second, "system": info["system_metadata"]}


def _search(library: Library, media: Media, **extra: Any) -> Any:
    data = {
        "index_id": library.index_id,
        "search_options": "transcription",
        "query_text": media.video.subtitles[0].text,
        **extra,
    }
    return library.client.post("/search", data=data)


def _videos(library: Library, media: Media, filt: Any) -> set[str]:
    r = _search(library, media, filter=json.dumps(filt))
    assert r.status_code == 200, r.text
    return {clip["video_id"] for clip in r.json()["data"]}


def test_without_a_filter_both_videos_match(library: Library, media: Media, two: dict[str, Any]) -> None:
    assert {c["video_id"] for c in _search(library, media).json()["data"]} == {two["first"], two["second"]}


@pytest.mark.parametrize(
    ("filt", "want"),
    [
        ({"team": "red"}, {"first"}),
        ({"team": "green"}, set()),
        ({"score": 7.5}, {"second"}),
        ({"score": {"gte": 5}}, {"second"}),
        ({"score": {"lte": 5}}, {"first"}),
        ({"score": {"gte": 1, "lte": 10}}, {"first", "second"}),
        ({"final": True}, {"first"}),
        ({"final": False}, {"second"}),
        ({"tags": "goal"}, {"first"}),
        ({"team": "red", "final": False}, set()),
        ({"missing": "x"}, set()),
        ({"score": "3"}, set()),  # a string never equals a number
    ],
)
def test_user_metadata_conditions(
    library: Library, media: Media, two: dict[str, Any], filt: dict[str, Any], want: set[str]
) -> None:
    assert _videos(library, media, filt) == {two[w] for w in want}


def test_system_field_conditions(library: Library, media: Media, two: dict[str, Any]) -> None:
    both = {two["first"], two["second"]}
    system = two["system"]
    assert _videos(library, media, {"id": [two["second"]]}) == {two["second"]}
    assert _videos(library, media, {"id": [two["first"], two["second"]]}) == both
    assert _videos(library, media, {"duration": {"gte": system["duration"] - 1}}) == both
    assert _videos(library, media, {"duration": {"gte": system["duration"] + 1}}) == set()
    assert _videos(library, media, {"width": system["width"]}) == both
    assert _videos(library, media, {"height": {"lte": system["height"] - 1}}) == set()
    assert _videos(library, media, {"size": {"gte": 1, "lte": system["size"]}}) == both
    assert _videos(library, media, {"filename": system["filename"]}) == both
    assert _videos(library, media, {"filename": "other.mp4"}) == set()
    assert _videos(library, media, {"id": [two["first"]], "team": "blue"}) == set()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{bad", "not valid JSON"),
        ('["a"]', "must be a JSON object"),
        ('{"id": "x", "team": null}', "`filter.team` must be a string, a number"),
        ('{"id": []}', "`filter.id` must be an array of video ids"),
        ('{"duration": "long"}', "`filter.duration` must be a number"),
        ('{"duration": {"gt": 5}}', "`gte` and/or `lte` only"),
        ('{"duration": {"gte": 9, "lte": 2}}', "greater than lte"),
        ('{"score": {"gte": "1"}}', "`filter.score.gte` must be a number"),
        ('{"team": ["red", "blue"]}', "arrays are allowed for `id` only"),
        ('{"filename": 3}', "exact file name"),
        ('{"": 1}', "empty key"),
    ],
)
def test_a_filter_that_does_not_parse_is_a_400_naming_the_key(
    library: Library, media: Media, raw: str, says: str
) -> None:
    r = _search(library, media, filter=raw)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "search_filter_invalid"
    assert says in body["message"] and '{"duration": {"gte": 10' in body["message"], body


def test_include_user_metadata_applies_to_every_page(
    library: Library, media: Media, two: dict[str, Any]
) -> None:
    with_meta = _search(library, media, include_user_metadata="true", page_limit="1").json()
    first = with_meta["data"][0]
    assert first["user_metadata"]["team"] in ("red", "blue")
    token = with_meta["page_info"]["next_page_token"]
    page2 = library.client.get(f"/search/{token}").json()
    assert "user_metadata" in page2["data"][0]  # the search asked for it
    bare = library.client.get(f"/search/{token}", params={"include_user_metadata": "false"}).json()
    assert "user_metadata" not in bare["data"][0]
    without = _search(library, media, page_limit="1").json()
    assert "user_metadata" not in without["data"][0]
    token = without["page_info"]["next_page_token"]
    asked = library.client.get(f"/search/{token}", params={"include_user_metadata": "true"}).json()
    assert asked["data"][0]["user_metadata"]["team"] in ("red", "blue")


def test_grouped_results_carry_the_metadata_when_asked(
    library: Library, media: Media, two: dict[str, Any]
) -> None:
    body = _search(library, media, group_by="video", include_user_metadata="true").json()
    teams = {item["id"]: item["user_metadata"]["team"] for item in body["data"]}
    assert teams == {two["first"]: "red", two["second"]: "blue"}
    body = _search(library, media, group_by="video").json()
    assert all("user_metadata" not in item for item in body["data"])
    assert all("user_metadata" not in clip for item in body["data"] for clip in item["clips"])
