"""User-metadata edits and the list filters of indexed assets: the requests the
client builds, checked against the OpenAPI snapshot by `FakeAPI` (paths, query names, JSON bodies). The
snapshot's `UserMetadata` text still says "string, integer, float or boolean"; string arrays (and wide
integers sent as strings) are SDK 1.3.6 (twelvelabs-sdk-1.3.6-delta.md §4.1, §5), and the delta wins.
Its schema accepts any value, so the bodies are also compared by hand."""

from __future__ import annotations

import pytest

from tests.api.conftest import FakeAPI, make_client
from tests.api.test_endpoints import spec_answer
from tl_mcp.api import list_filter_params

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI(spec_answer)


async def test_metadata_edits_use_put_and_patch_with_the_user_metadata_body(api: FakeAPI) -> None:
    async with make_client(api) as tl:
        await tl.assets.update_metadata("a/1", {"team": "red", "n": 3}, replace=True)
        await tl.assets.update_metadata("a1", {"gone": None, "flag": True})
        await tl.indexed_assets.update_metadata("i1", "v1", {"tags": ["a", "b"], "id": str(2**60), "r": 9.5})
    put, patch, ia = api.seen
    assert (put.method, put.path) == ("PUT", "/assets/a%2F1/user-metadata")
    assert put.json() == {"user_metadata": {"team": "red", "n": 3}}
    assert (patch.method, patch.path) == ("PATCH", "/assets/a1/user-metadata")
    assert patch.json() == {"user_metadata": {"gone": None, "flag": True}}
    assert (ia.method, ia.path) == ("PATCH", "/indexes/i1/indexed-assets/v1")
    assert ia.json() == {"user_metadata": {"tags": ["a", "b"], "id": str(2**60), "r": 9.5}}


async def test_list_filters_are_sent_as_the_sdk_encodes_nested_objects(api: FakeAPI) -> None:
    filters = list_filter_params(
        filename="clip.mp4",
        ranges={"duration": {"gte": 10, "lte": 60}, "width": {"gte": 1280}},
        created_at="2026-07-30T00:00:00Z",
        user_metadata={"team": "red", "final": True, "score": 7.5},
    )
    async with make_client(api) as tl:
        await tl.indexed_assets.list("i1", 2, 5, status=["ready"], filters=filters)
    for seen in api.seen:
        params = seen.params
        assert params["filename"] == "clip.mp4" and params["created_at"] == "2026-07-30T00:00:00Z"
        ranges = (params["duration[gte]"], params["duration[lte]"], params["width[gte]"])
        assert ranges == ("10", "60", "1280")
        assert params["user_metadata[team]"] == "red" and params["user_metadata[final]"] == "true"
        assert params["user_metadata[score]"] == "7.5"
        assert "updated_at" not in params
    assert api.seen[0].params.get_list("status") == ["ready"]
