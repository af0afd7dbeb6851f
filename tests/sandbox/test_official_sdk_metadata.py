"""The official ``twelvelabs`` 1.3.6 SDK against the sandbox for user metadata: replace and merge an asset's
(``PUT`` / ``PATCH /assets/{id}/user-metadata``), edit an indexed asset's, list by it, and search with a
``filter`` and ``include_user_metadata``; a filter the grammar refuses is the SDK's ``BadRequestError``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from twelvelabs import TwelveLabs
from twelvelabs.errors import BadRequestError

from tests.sandbox.conftest import Library, Media


@pytest.fixture(scope="module")
def sdk(library: Library) -> Iterator[TwelveLabs]:
    mp = pytest.MonkeyPatch()
    mp.delenv("TWELVELABS_BASE_URL", raising=False)  # the SDK lets this override base_url
    try:
        yield TwelveLabs(api_key=library.sb.api_key, base_url=library.sb.base_url, timeout=30.0)
    finally:
        mp.undo()


def test_asset_metadata_replace_and_merge(sdk: TwelveLabs, library: Library) -> None:
    sdk.assets.replace_user_metadata(library.asset_id, user_metadata={"a": "1", "tags": ["x"], "n": 2})
    assert sdk.assets.retrieve(library.asset_id).user_metadata == {"a": "1", "tags": ["x"], "n": 2}
    sdk.assets.update_user_metadata(library.asset_id, user_metadata={"n": None, "a": "", "b": True})
    assert sdk.assets.retrieve(library.asset_id).user_metadata == {"a": "1", "tags": ["x"], "b": True}
    sdk.assets.delete_user_metadata(library.asset_id)
    assert not sdk.assets.retrieve(library.asset_id).user_metadata


def test_indexed_asset_metadata_lists_and_filters_search(
    sdk: TwelveLabs, library: Library, media: Media
) -> None:
    sdk.indexes.indexed_assets.update(
        library.index_id, library.video_id, user_metadata={"team": "red", "score": 7}
    )
    listed = list(sdk.indexes.indexed_assets.list(library.index_id, user_metadata={"team": "red"}))
    assert [ia.id for ia in listed] == [library.video_id]
    assert not list(sdk.indexes.indexed_assets.list(library.index_id, user_metadata={"team": "blue"}))
    cue = media.video.subtitles[0].text
    hits = list(
        sdk.search.query(
            index_id=library.index_id,
            query_text=cue,
            search_options=["transcription"],
            filter=json.dumps({"team": "red", "score": {"gte": 5}}),
            include_user_metadata=True,
        )
    )
    assert hits and all(h.video_id == library.video_id for h in hits)
    assert hits[0].user_metadata == {"team": "red", "score": 7}
    none = sdk.search.query(
        index_id=library.index_id,
        query_text=cue,
        search_options=["transcription"],
        filter=json.dumps({"score": {"gte": 8}}),
    )
    assert not list(none)
    with pytest.raises(BadRequestError) as bad:
        list(
            sdk.search.query(
                index_id=library.index_id,
                query_text=cue,
                search_options=["transcription"],
                filter=json.dumps({"score": {"above": 8}}),
            )
        )
    assert "search_filter_invalid" in str(bad.value.body)
