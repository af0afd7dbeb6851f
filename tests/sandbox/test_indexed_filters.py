"""Indexed-asset and video list filters: media ranges (``duration[gte]``...), created/updated lower bounds and
``user_metadata[key]`` equality, encoded as the official SDK encodes them; malformed filters are a 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twelvelabs.core.query_encoder import encode_query

from tests.sandbox.conftest import Library


def _ids(library: Library, params: Any, *, videos: bool = False) -> list[str]:
    kind = "videos" if videos else "indexed-assets"
    r = library.client.get(f"/indexes/{library.index_id}/{kind}", params=params)
    assert r.status_code == 200, r.text
    return [item["_id"] for item in r.json()["data"]]


@pytest.fixture(scope="module")
def facts(library: Library) -> dict[str, Any]:
    r = library.client.patch(
        f"/indexes/{library.index_id}/indexed-assets/{library.video_id}",
        json={"user_metadata": {"category": "news", "rating": 9.5, "reviewed": True, "tags": ["a", "b"]}},
    )
    assert r.is_success, r.text
    item = library.client.get(f"/indexes/{library.index_id}/indexed-assets/{library.video_id}").json()
    return {**item["system_metadata"], "created_at": item["created_at"]}


def test_media_ranges_keep_what_is_inside_and_drop_what_is_outside(
    library: Library, facts: dict[str, Any]
) -> None:
    me = [library.video_id]
    for name in ("duration", "fps", "width", "height", "size"):
        value = facts[name]
        assert _ids(library, encode_query({name: {"gte": value, "lte": value}})) == me, name
        assert _ids(library, encode_query({name: {"gte": value + 1}})) == [], name
        assert _ids(library, encode_query({name: {"lte": max(0, value - 1)}})) == [], name
    both = encode_query({"duration": {"gte": 0, "lte": facts["duration"] + 5}, "width": {"gte": 1}})
    assert _ids(library, both) == me
    assert _ids(library, both, videos=True) == me


def test_created_and_updated_at_are_lower_bounds(library: Library, facts: dict[str, Any]) -> None:
    created = datetime.fromisoformat(facts["created_at"])
    before = (created - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    after = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert _ids(library, {"created_at": before}) == [library.video_id]
    assert _ids(library, {"created_at": after}) == []
    assert _ids(library, {"updated_at": before}) == [library.video_id]
    assert _ids(library, {"updated_at": after}) == []


@pytest.mark.parametrize(
    ("metadata", "hit"),
    [
        ({"category": "news"}, True),
        ({"category": "sport"}, False),
        ({"rating": 9.5}, True),
        ({"rating": "9.50"}, True),
        ({"rating": 3}, False),
        ({"reviewed": True}, True),
        ({"reviewed": "false"}, False),
        ({"tags": "b"}, True),
        ({"category": "news", "reviewed": False}, False),
        ({"missing": "x"}, False),
    ],
)
def test_user_metadata_filters_compare_by_the_stored_type(
    library: Library, facts: dict[str, Any], metadata: dict[str, Any], hit: bool
) -> None:
    params = encode_query({"user_metadata": metadata})
    assert _ids(library, params) == ([library.video_id] if hit else [])


@pytest.mark.parametrize(
    ("params", "hit"),
    [
        ({"category": "news"}, True),
        ({"category": "sport"}, False),
        ({"reviewed": "true", "rating": "9.5"}, True),
        ({"tags": "a", "page_limit": "5"}, True),
        ({"status": "ready"}, True),  # a list parameter, not a metadata key
    ],
)
def test_plain_query_keys_filter_on_metadata_as_the_docs_spell_it(
    library: Library, facts: dict[str, Any], params: dict[str, str], hit: bool
) -> None:
    assert _ids(library, params) == ([library.video_id] if hit else [])
    if "status" not in params:
        assert _ids(library, params, videos=True) == ([library.video_id] if hit else [])


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"duration[gte]": "long"}, "`duration[gte]` filter must be a non-negative number"),
        ({"fps[lte]": "nan"}, "non-negative number"),
        ({"size[gte]": "-1"}, "non-negative number"),
        ({"width": "640"}, "send `width[gte]` and/or `width[lte]`"),
        ({"height[eq]": "480"}, "`height[eq]`"),
        ({"duration[gte]": "10", "duration[lte]": "5"}, "nothing could match"),
        ({"created_at": "yesterday"}, "RFC 3339"),
        ({"updated_at": "2026-07-30"}, "RFC 3339"),
        ({"user_metadata": "news"}, "user_metadata[<key>]=<value>"),
    ],
)
def test_malformed_filters_are_a_clear_400(library: Library, params: dict[str, str], says: str) -> None:
    for kind in ("indexed-assets", "videos"):
        r = library.client.get(f"/indexes/{library.index_id}/{kind}", params=params)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "parameter_invalid" and says in r.json()["message"], r.json()


def test_filters_run_over_the_whole_list_before_paging(library: Library, facts: dict[str, Any]) -> None:
    r = library.client.get(
        f"/indexes/{library.index_id}/indexed-assets",
        params=[*encode_query({"duration": {"gte": facts["duration"] + 1}}), ("page_limit", "1")],
    )
    assert r.status_code == 200 and r.json()["page_info"]["total_results"] == 0, r.text
