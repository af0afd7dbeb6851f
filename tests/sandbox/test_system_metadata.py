"""One ``system_metadata`` builder, two shapes the contract pins: the flat one of indexed assets, videos and
legacy tasks, and the typed one of knowledge-store items (with ``asset_type`` and ``codec_name``)."""

from __future__ import annotations

from tests.sandbox.conftest import Library, Media, client_for, ready_asset, wait_for

FLAT = {"filename", "duration", "fps", "width", "height", "size"}


def test_indexed_assets_videos_and_tasks_share_the_flat_shape(library: Library, media: Media) -> None:
    c, index_id, video_id = library.client, library.index_id, library.video_id
    shapes = [
        c.get(f"/indexes/{index_id}/indexed-assets/{video_id}").json()["system_metadata"],
        c.get(f"/indexes/{index_id}/videos/{video_id}").json()["system_metadata"],
        c.get(f"/indexes/{index_id}/indexed-assets").json()["data"][0]["system_metadata"],
    ]
    with media.video.path.open("rb") as f:
        r = c.post("/tasks", data={"index_id": index_id}, files={"video_file": ("clip.mp4", f)})
    assert r.status_code == 200, r.text
    shapes.append(c.get(f"/tasks/{r.json()['_id']}").json()["system_metadata"])
    for meta in shapes:
        assert set(meta) == FLAT, meta
        assert meta["filename"] == "clip.mp4"
        assert meta["duration"] == media.video.duration and meta["width"] > 0


def test_a_knowledge_store_item_gets_the_typed_shape(library: Library, media: Media) -> None:
    with client_for(library.sb) as c:
        asset_id = ready_asset(c, media.video.path)
        store = c.post("/knowledge-stores", json={"name": "sysmeta"}).json()["_id"]
        item = c.post(f"/knowledge-stores/{store}/items", json={"asset_id": asset_id}).json()["_id"]
        body = wait_for(
            lambda: c.get(f"/knowledge-stores/{store}/items/{item}").json(),
            lambda b: b["status"] in ("ready", "failed"),
            timeout=60,
        )
    meta = body["system_metadata"]
    assert set(meta) == FLAT | {"asset_type", "codec_name"}, meta
    assert meta["asset_type"] == "video" and meta["codec_name"] == "h264"
    assert meta["duration"] == media.video.duration
