"""Entity collections, entities and entity search in the sandbox, over real HTTP, every response checked
by the OpenAPI guard. Offline entity search is image similarity to the reference pictures, and says so."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.sandbox.conftest import Library, Media, ready_asset


def _picture(library: Library, media: Media, scene: int) -> str:
    return ready_asset(library.client, media.images[scene])


def _collection(client: httpx2.Client, name: str = "cast") -> dict[str, Any]:
    r = client.post("/entity-collections", json={"name": name, "description": "people on screen"})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _entity(client: httpx2.Client, cid: str, name: str, assets: list[str], **extra: Any) -> dict[str, Any]:
    r = client.post(f"/entity-collections/{cid}/entities", json={"name": name, "asset_ids": assets, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _search(client: httpx2.Client, index_id: str, query: str, options: str = "visual") -> httpx2.Response:
    return client.post("/search", data={"index_id": index_id, "query_text": query, "search_options": options})


def test_collections_and_entities_round_trip(library: Library, media: Media) -> None:
    client = library.client
    first, second = _picture(library, media, 0), _picture(library, media, 1)
    col = _collection(client)
    cid = col["_id"]
    assert len(cid) == 24 and col["name"] == "cast" and col["description"] == "people on screen"
    assert client.get(f"/entity-collections/{cid}").json() == col
    listed = client.get("/entity-collections", params={"name": "CAS"}).json()
    assert [c["_id"] for c in listed["data"]] == [cid] and listed["page_info"]["total_results"] == 1
    renamed = client.patch(f"/entity-collections/{cid}", json={"name": "crew"}).json()
    assert renamed["name"] == "crew" and renamed["description"] == "people on screen"

    ent = _entity(client, cid, "Ada", [first], description="the host", metadata={"team": "red", "age": 41})
    eid = ent["_id"]
    assert ent["entity_collection_id"] == cid and ent["asset_ids"] == [first] and ent["status"] == "ready"
    assert ent["metadata"] == {"team": "red", "age": 41}
    assert client.get(f"/entity-collections/{cid}/entities/{eid}").json() == ent
    other = _entity(client, cid, "Bob", [second])
    by_name = client.get(f"/entity-collections/{cid}/entities", params={"name": "ad", "status": "ready"})
    assert [e["_id"] for e in by_name.json()["data"]] == [eid]
    ordered = client.get(
        f"/entity-collections/{cid}/entities", params={"sort_by": "name", "sort_option": "asc"}
    )
    assert [e["name"] for e in ordered.json()["data"]] == ["Ada", "Bob"]

    patched = client.patch(f"/entity-collections/{cid}/entities/{eid}", json={"metadata": {"team": "blue"}})
    assert patched.status_code == 200 and patched.json()["metadata"] == {"team": "blue"}  # replaced whole
    added = client.post(
        f"/entity-collections/{cid}/entities/{eid}/assets", json={"asset_ids": [second, first]}
    )
    assert added.status_code == 200 and added.json()["asset_ids"] == [first, second]
    of_asset = client.get(f"/assets/{second}/entities").json()
    assert sorted(e["_id"] for e in of_asset["data"]) == sorted([eid, other["_id"]])
    removed = client.request(
        "DELETE", f"/entity-collections/{cid}/entities/{eid}/assets", json={"asset_ids": [first]}
    )
    assert removed.status_code == 200 and removed.json()["asset_ids"] == [second]

    assert client.delete(f"/entity-collections/{cid}/entities/{eid}").status_code == 200
    assert client.get(f"/entity-collections/{cid}/entities/{eid}").status_code == 404
    assert client.delete(f"/entity-collections/{cid}").status_code == 200
    assert client.get(f"/entity-collections/{cid}/entities/{other['_id']}").status_code == 404
    assert client.get(f"/assets/{second}/entities").json()["data"] == []


def test_bad_requests_are_refused_and_change_nothing(library: Library, media: Media) -> None:
    client = library.client
    picture = _picture(library, media, 2)
    cid = _collection(client, "bad-input")["_id"]
    base = f"/entity-collections/{cid}/entities"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "X", "asset_ids": ["0" * 24]}, "does not exist"),
        ({"name": "X", "asset_ids": []}, "at least one"),
        ({"name": "X"}, "asset_ids"),
        ({"asset_ids": [picture]}, "name"),
        ({"name": "X", "asset_ids": [picture], "metadata": {"tags": ["a"]}}, "array"),
        ({"name": "X", "asset_ids": [picture, "0" * 24]}, "does not exist"),
    ]
    for body, why in cases:
        r = client.post(base, json=body)
        assert r.status_code == 400, (body, r.text)
        assert why in r.json()["message"], (body, r.json())
    assert client.get(base).json()["data"] == []

    assert client.get(f"/entity-collections/{'0' * 24}").json()["code"] == "resource_not_exist"
    assert client.post(f"/entity-collections/{'0' * 24}/entities", json=cases[0][0]).status_code == 404
    eid = _entity(client, cid, "Cy", [picture])["_id"]
    one = f"{base}/{eid}"
    assert "assets" in client.patch(one, json={"asset_ids": [picture]}).json()["message"]
    assert "Nothing to update" in client.patch(one, json={}).json()["message"]
    last = client.request("DELETE", f"{one}/assets", json={"asset_ids": [picture]})
    assert last.status_code == 400 and "at least one asset" in last.json()["message"]
    stranger = client.request("DELETE", f"{one}/assets", json={"asset_ids": [library.asset_id]})
    assert stranger.status_code == 400 and "not linked" in stranger.json()["message"]
    assert client.get(one).json()["asset_ids"] == [picture]
    assert client.get(f"/entity-collections/{'0' * 24}/entities/{eid}").status_code == 404


def test_bulk_create_fails_entities_alone(library: Library, media: Media) -> None:
    client = library.client
    picture = _picture(library, media, 0)
    cid = _collection(client, "roster")["_id"]
    entities = [{"name": "A", "asset_ids": [picture]}, {"name": "B", "asset_ids": ["f" * 24]}, {"name": "C"}]
    r = client.post(f"/entity-collections/{cid}/entities/bulk", json={"entities": entities})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success_count"] == 1 and body["failed_count"] == 2
    assert [e["name"] for e in body["entities"]] == ["A"] and body["entities"][0]["status"] == "ready"
    assert [(e["entity_index"], e["entity_name"]) for e in body["errors"]] == [(1, "B"), (2, "C")]
    assert "does not exist" in body["errors"][0]["error_reason"]
    assert [e["name"] for e in client.get(f"/entity-collections/{cid}/entities").json()["data"]] == ["A"]


def test_entity_search_finds_the_scene_its_picture_shows_and_says_how(library: Library, media: Media) -> None:
    client = library.client
    cid = _collection(client, "scenes")["_id"]
    for i, scene in enumerate(media.video.scenes):
        eid = _entity(client, cid, f"scene {i}", [_picture(library, media, i)])["_id"]
        r = _search(client, library.index_id, f"<@{eid}>")
        assert r.status_code == 200, r.text
        top = r.json()["data"][0]
        assert top["video_id"] == library.video_id
        assert top["start"] >= scene.start - 0.5 and top["end"] <= scene.end + 0.5, (i, top)
        notes = " ".join(r.json()["search_metadata"]["notes"])
        assert "visual similarity" in notes and "not identity recognition" in notes and f"scene {i}" in notes
    # The rest of the query re-orders: the moment whose words match comes first.
    cue = media.video.subtitles[1]
    both = _search(client, library.index_id, f"<@{eid}> {cue.text}", "visual,audio").json()
    assert both["data"][0]["start"] <= cue.start + 0.5 and both["data"][0]["end"] >= cue.end - 0.5
    assert "re-orders" in " ".join(both["search_metadata"]["notes"])


def test_entity_search_refuses_what_it_cannot_run(library: Library, media: Media) -> None:
    client = library.client
    cid = _collection(client, "refusals")["_id"]
    eid = _entity(client, cid, "Dee", [_picture(library, media, 0)])["_id"]
    unknown = _search(client, library.index_id, f"<@{'0' * 24}> walking")
    assert unknown.status_code == 400 and "does not exist" in unknown.json()["message"]
    spaced = _search(client, library.index_id, "<@ x> walking")
    assert spaced.status_code == 400 and "not an entity id" in spaced.json()["message"]
    unclosed = _search(client, library.index_id, f"<@{eid}> meets <@{eid}")
    assert unclosed.status_code == 400 and "without a closing" in unclosed.json()["message"]
    audio_only = _search(client, library.index_id, f"<@{eid}>", "audio")
    assert (
        audio_only.status_code == 400
        and audio_only.json()["code"] == "search_option_combination_not_supported"
    )


def test_deleting_an_asset_unlinks_it_from_its_entities(library: Library, media: Media) -> None:
    client = library.client
    keep, gone = _picture(library, media, 0), _picture(library, media, 1)
    cid = _collection(client, "unlink")["_id"]
    eid = _entity(client, cid, "Eve", [keep, gone])["_id"]
    assert client.delete(f"/assets/{gone}").status_code == 200
    assert client.get(f"/entity-collections/{cid}/entities/{eid}").json()["asset_ids"] == [keep]
    assert client.get(f"/assets/{gone}/entities").status_code == 404


@pytest.mark.parametrize(
    "path", ["/entity-collections/{cid}/entities?status=gone", "/entity-collections?sort_by=x"]
)
def test_list_filters_are_checked(library: Library, path: str) -> None:
    cid = _collection(library.client, f"filters-{len(path)}")["_id"]
    r = library.client.get(path.format(cid=cid))
    assert r.status_code == 400 and r.json()["code"] == "parameter_invalid"
