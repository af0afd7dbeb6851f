"""User metadata (assets, indexed assets, videos, multipart uploads) and knowledge-store metadata share one
check (``sandbox/metadata.py``): the SDK 1.3.6 value union, integers within 53 bits, finite numbers. They
differ where the contract does: a ``null`` is omitted from user metadata (PATCH: deletes the key) and is
rejected in store metadata, which also has limits. Bad metadata is a 400 that names the key and changes
nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import Library, Media, upload

BIG = 2**53 + 1
BAD_VALUES: list[tuple[Any, str]] = [
    (BIG, "wider than 53 bits"),
    (float("nan"), "not a finite number"),
    ({"nested": 1}, "nested object"),
    (["a", 1], "non-string members"),
]


def _asset_meta(library: Library) -> Any:
    return library.client.get(f"/assets/{library.asset_id}").json().get("user_metadata")


def _video_meta(library: Library) -> Any:
    path = f"/indexes/{library.index_id}/indexed-assets/{library.video_id}"
    return library.client.get(path).json().get("user_metadata")


def _json(value: dict[str, Any]) -> dict[str, Any]:
    # httpx2 refuses NaN in json=; the platform's parser (and Starlette's) takes it, so send it raw.
    import json

    return {
        "content": json.dumps(value, allow_nan=True).encode(),
        "headers": {"content-type": "application/json"},
    }


@pytest.mark.parametrize(("value", "says"), BAD_VALUES)
@pytest.mark.parametrize(
    "route",
    ["PUT asset", "PATCH asset", "PATCH indexed-asset", "PATCH video"],
)
def test_bad_user_metadata_is_a_400_naming_the_key_and_changes_nothing(
    library: Library, route: str, value: Any, says: str
) -> None:
    method, kind = route.split()
    path = {
        "asset": f"/assets/{library.asset_id}/user-metadata",
        "indexed-asset": f"/indexes/{library.index_id}/indexed-assets/{library.video_id}",
        "video": f"/indexes/{library.index_id}/videos/{library.video_id}",
    }[kind]
    before = (_asset_meta(library), _video_meta(library))
    r = library.client.request(method, path, **_json({"user_metadata": {"ok": "x", "bad": value}}))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "parameter_invalid"
    assert "user_metadata.bad" in r.json()["message"] and says in r.json()["message"]
    assert "as strings" in r.json()["message"]
    assert (_asset_meta(library), _video_meta(library)) == before


@pytest.mark.parametrize(("value", "says"), BAD_VALUES[:2])
def test_bad_user_metadata_on_upload_creates_no_asset(
    library: Library, media: Media, value: Any, says: str
) -> None:
    import json

    before = library.client.get("/assets").json()["page_info"]["total_results"]
    r = upload(library.client, media.short_video, user_metadata=json.dumps({"k": value}, allow_nan=True))
    assert r.status_code == 400 and says in r.json()["message"], r.text
    assert library.client.get("/assets").json()["page_info"]["total_results"] == before


def test_wide_integers_sent_as_strings_are_kept_verbatim(library: Library) -> None:
    path = f"/assets/{library.asset_id}/user-metadata"
    r = library.client.put(path, json={"user_metadata": {"big": str(BIG), "max": 2**53 - 1}})
    assert r.is_success, r.text
    assert _asset_meta(library) == {"big": str(BIG), "max": 2**53 - 1}


def test_put_replaces_and_patch_merges_as_the_contract_says(library: Library) -> None:
    path = f"/assets/{library.asset_id}/user-metadata"
    full = {"a": "1", "n": 2.5, "yes": True, "tags": ["x", "y"]}
    assert library.client.put(path, json={"user_metadata": full}).is_success
    assert _asset_meta(library) == full
    # PATCH: "" and [] are ignored, null deletes, keys left out stay.
    edit = {"a": "", "tags": [], "n": None, "new": "v"}
    assert library.client.patch(path, json={"user_metadata": edit}).is_success
    assert _asset_meta(library) == {"a": "1", "yes": True, "tags": ["x", "y"], "new": "v"}
    # PUT: keys left out are removed; "", [] and null are ignored (so those keys go too).
    assert library.client.put(path, json={"user_metadata": {"a": "2", "yes": None, "tags": []}}).is_success
    assert _asset_meta(library) == {"a": "2"}


def test_indexed_asset_patch_deletes_with_null_and_ignores_empty_values(library: Library) -> None:
    path = f"/indexes/{library.index_id}/videos/{library.video_id}"
    assert library.client.patch(path, json={"user_metadata": {"k": "v", "gone": 1}}).is_success
    assert library.client.patch(path, json={"user_metadata": {"gone": None, "k": ""}}).is_success
    meta = _video_meta(library)
    assert meta is not None and meta["k"] == "v" and "gone" not in meta


@pytest.fixture
def store_id(library: Library) -> Any:
    r = library.client.post("/knowledge-stores", json={"name": "meta-store", "metadata": {"a": "b"}})
    assert r.status_code == 201, r.text
    yield r.json()["_id"]
    library.client.delete(f"/knowledge-stores/{r.json()['_id']}")


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ({"gone": None}, "is null"),
        ({"big": BIG}, "wider than 53 bits"),
        ({"n": float("inf")}, "not a finite number"),
        ({f"k{i}": i for i in range(11)}, "at most 10"),
        ({"k" * 129: "v"}, "longer than 128"),
        ({"long": "x" * 2049}, "at most 2048"),
    ],
)
def test_bad_store_metadata_is_a_400_and_changes_nothing(
    library: Library, store_id: str, metadata: dict[str, Any], says: str
) -> None:
    r = library.client.patch(f"/knowledge-stores/{store_id}", **_json({"metadata": metadata}))
    assert r.status_code == 400 and r.json()["code"] == "parameter_invalid", r.text
    assert says in r.json()["message"]
    assert library.client.get(f"/knowledge-stores/{store_id}").json()["metadata"] == {"a": "b"}


def test_store_items_take_the_item_limits(library: Library, store_id: str) -> None:
    items = f"/knowledge-stores/{store_id}/items"
    many = {f"k{i}": "v" for i in range(51)}
    r = library.client.post(items, json={"asset_id": library.asset_id, "metadata": many})
    assert r.status_code == 400 and "at most 50" in r.json()["message"], r.text
    assert library.client.get(items).json()["data"] == []
    ok = {f"k{i}": "v" for i in range(50)} | {"long": "x" * 8192}
    del ok["k0"]
    r = library.client.post(items, json={"asset_id": library.asset_id, "metadata": ok})
    assert r.status_code == 202, r.status_code
    assert r.json()["metadata"] == ok


# Limits of our own (the contract documents none for user metadata): tl_mcp.metadata_limits.
OVER_USER_LIMITS: list[tuple[dict[str, Any], str]] = [
    ({f"k{i}": "v" for i in range(51)}, "51 keys; at most 50"),
    ({"k" * 65: "v"}, "longer than 64 characters"),
    ({"shot\ttype": "v"}, "key 'shot\\ttype' is blank, has a space at an end or holds control"),
    ({"note": "x" * 2049}, "`user_metadata.note` is 2049 characters long; at most 2048"),
    ({"tags": ["t"] * 101}, "`user_metadata.tags` has 101 texts; at most 100"),
    ({f"k{i}": "x" * 2000 for i in range(9)}, "bytes as JSON; at most 16,384"),
]


@pytest.mark.parametrize(("metadata", "says"), OVER_USER_LIMITS)
@pytest.mark.parametrize("route", ["PUT asset", "PATCH asset", "PATCH video", "POST upload"])
def test_user_metadata_over_a_limit_is_a_400_naming_it_and_changes_nothing(
    library: Library, media: Media, route: str, metadata: dict[str, Any], says: str
) -> None:
    import json

    before = (_asset_meta(library), _video_meta(library))
    assets = library.client.get("/assets").json()["page_info"]["total_results"]
    if route == "POST upload":
        r = upload(library.client, media.short_video, user_metadata=json.dumps(metadata))
    else:
        method, kind = route.split()
        path = {
            "asset": f"/assets/{library.asset_id}/user-metadata",
            "video": f"/indexes/{library.index_id}/videos/{library.video_id}",
        }[kind]
        r = library.client.request(method, path, json={"user_metadata": metadata})
    assert r.status_code == 400 and r.json()["code"] == "parameter_invalid", r.text
    assert says in r.json()["message"] and "Nothing was stored" in r.json()["message"], r.text
    assert (_asset_meta(library), _video_meta(library)) == before
    assert library.client.get("/assets").json()["page_info"]["total_results"] == assets


def test_a_patch_is_held_to_the_limits_with_the_keys_already_there(library: Library) -> None:
    path = f"/assets/{library.asset_id}/user-metadata"
    half = {f"a{i}": "x" * 2000 for i in range(5)}
    assert library.client.put(path, json={"user_metadata": half}).is_success
    more = {f"b{i}": "x" * 2000 for i in range(4)}
    r = library.client.patch(path, json={"user_metadata": more})
    assert r.status_code == 400, r.text
    assert "bytes as JSON; at most 16,384 are allowed" in r.json()["message"]
    assert "after this edit" in r.json()["message"]
    assert _asset_meta(library) == half
    # At the limits exactly is accepted: 50 keys of 64 plain characters, values of 2048 characters.
    edge = {f"{'k' * 60}{i:04d}": "v" for i in range(49)} | {"note": "x" * 2048}
    assert library.client.put(path, json={"user_metadata": edge}).is_success
    assert _asset_meta(library) == edge


def test_keys_that_store_nothing_are_not_held_to_the_limits(library: Library) -> None:
    # The contract ignores "" and [] and deletes on null, so such keys store nothing: fifty real keys
    # with ignored ones beside them fit, and a null deletes a key the limits would not let one create
    # (one stored before they existed) instead of refusing the delete.
    path = f"/assets/{library.asset_id}/user-metadata"
    full = {f"k{i}": "v" for i in range(50)}
    ignored = {"blank": "", "none": [], "gone": None}
    assert library.client.put(path, json={"user_metadata": full | ignored}).is_success, "PUT"
    assert _asset_meta(library) == full
    r = library.client.patch(path, json={"user_metadata": {"k0": None, " legacy key": None, "z" * 80: None}})
    assert r.is_success, r.text
    assert _asset_meta(library) == {k: v for k, v in full.items() if k != "k0"}
