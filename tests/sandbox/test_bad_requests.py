"""Bad requests get the spec's status and code, and change nothing."""

from __future__ import annotations

import httpx2
import pytest

from tests.sandbox.conftest import MARENGO, Library, Media, upload


def _state(lib: Library) -> tuple[int, int, int]:
    c = lib.client
    return (
        c.get("/assets").json()["page_info"]["total_results"],
        c.get("/indexes").json()["page_info"]["total_results"],
        c.get(f"/indexes/{lib.index_id}/indexed-assets").json()["page_info"]["total_results"],
    )


def test_api_key_required_and_never_echoed(library: Library) -> None:
    bare = httpx2.get(f"{library.sb.base_url}/indexes")
    assert bare.status_code == 401 and bare.json()["code"] == "api_key_invalid"
    wrong = httpx2.get(f"{library.sb.base_url}/indexes", headers={"x-api-key": "tlk_wrong_secret_value"})
    assert wrong.status_code == 401 and "tlk_wrong_secret_value" not in wrong.text
    assert library.sb.api_key not in repr(library.sb)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("post", "/indexes", {"json": {"models": MARENGO}}, 400, "parameter_not_provided"),
        ("post", "/indexes", {"json": {"index_name": "x"}}, 400, "parameter_not_provided"),
        ("post", "/indexes", {"json": {"index_name": 5, "models": MARENGO}}, 400, "parameter_invalid"),
        ("post", "/indexes", {"json": {"index_name": "  ", "models": MARENGO}}, 400, "parameter_invalid"),
        (
            "post",
            "/indexes",
            {"json": {"index_name": "n" * 201, "models": MARENGO}},
            400,
            "parameter_invalid",
        ),
        (
            "post",
            "/indexes",
            {"json": {"index_name": "library", "models": MARENGO}},
            400,
            "index_name_already_exists",
        ),
        (
            "post",
            "/indexes",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "parameter_invalid",
        ),
        ("get", "/indexes/0123456789abcdef01234567", {}, 404, "resource_not_exist"),
        ("get", "/assets/0123456789abcdef01234567", {}, 404, "resource_not_exist"),
        ("get", "/indexes", {"params": {"page_limit": "500"}}, 400, "parameter_invalid"),
        ("get", "/indexes", {"params": {"page": "abc"}}, 400, "parameter_invalid"),
        ("post", "/assets", {"data": {"method": "direct"}}, 400, "parameter_not_provided"),
        ("post", "/assets", {"data": {"method": "carrier-pigeon"}}, 400, "parameter_invalid"),
        (
            "post",
            "/assets",
            {"data": {"method": "url", "url": "file:///etc/passwd"}},
            400,
            "parameter_invalid",
        ),
        (
            "post",
            "/assets",
            {"data": {"method": "url", "url": "https://x/y", "user_metadata": "[1"}},
            400,
            "parameter_invalid",
        ),
        ("post", "/assets", {"json": {"method": "direct"}}, 400, "parameter_invalid"),
        (
            "post",
            "/search",
            {"data": {"search_options": "visual", "query_text": "x"}},
            400,
            "parameter_not_provided",
        ),
        (
            "post",
            "/search",
            {"data": {"index_id": "0123456789abcdef01234567", "search_options": "visual", "query_text": "x"}},
            404,
            "resource_not_exist",
        ),
        ("post", "/embed", {"data": {"text": "x"}}, 400, "parameter_not_provided"),
        ("post", "/embed", {"data": {"model_name": "nope", "text": "x"}}, 400, "parameter_invalid"),
        ("post", "/analyze", {"json": {"prompt": "x"}}, 400, "parameter_not_provided"),
        (
            "post",
            "/analyze",
            {"json": {"video": {"asset_id": "0123456789abcdef01234567"}, "prompt": "x"}},
            404,
            "resource_not_exist",
        ),
        (
            "post",
            "/analyze",
            {"json": {"video": {"url": "a", "asset_id": "b"}, "prompt": "x"}},
            400,
            "parameter_invalid",
        ),
        ("get", "/no-such-route", {}, 404, "resource_not_exist"),
    ],
)
def test_bad_request_codes(
    library: Library, method: str, path: str, kwargs: dict[str, object], status: int, code: str
) -> None:
    before = _state(library)
    r = getattr(library.client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["message"]
    assert _state(library) == before


def test_search_semantics_errors(library: Library) -> None:
    c = library.client
    base = {"index_id": library.index_id, "query_text": "x"}
    r = c.post("/search", data={**base, "search_options": "smell"})
    assert r.status_code == 400 and r.json()["code"] == "search_option_not_supported"
    r = c.post("/search", data={**base, "search_options": "visual", "filter": "{bad"})
    assert r.status_code == 400 and r.json()["code"] == "search_filter_invalid"
    r = c.post("/search", data={**base, "search_options": "visual", "group_by": "scene"})
    assert r.status_code == 400 and r.json()["code"] == "parameter_invalid"


def test_nested_error_bodies_for_async_analyze(library: Library) -> None:
    r = library.client.get("/analyze/tasks/0123456789abcdef01234567")
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_not_exist"
    r = library.client.post("/embed-v2", json={"model_name": "marengo3.0"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_not_provided"


def test_broken_short_and_oversized_media(library: Library, media: Media) -> None:
    c = library.client
    before = _state(library)
    r = upload(c, media.broken)
    assert r.status_code == 400 and r.json()["code"] == "video_file_broken"
    with media.short_video.open("rb") as f:
        r = c.post("/tasks", data={"index_id": library.index_id}, files={"video_file": ("short.mp4", f)})
    assert r.status_code == 400 and r.json()["code"] == "video_duration_too_short"
    with media.broken.open("rb") as f:
        r = c.post("/tasks", data={"index_id": library.index_id}, files={"video_file": ("b.mp4", f)})
    assert r.status_code == 400 and r.json()["code"] == "video_file_broken"
    assert _state(library) == before
    # Nothing was left in the media folder by the rejected uploads.
    media_dir = library.sb.config.data_dir / "media"
    ids = {p.name for p in media_dir.iterdir()}
    listed = {a["_id"] for a in c.get("/assets", params={"page_limit": 50}).json()["data"]}
    assert {i for i in ids if not i.startswith("embed-")} <= listed

    # A short asset uploads fine (assets are not indexes) but cannot be indexed.
    r = upload(c, media.short_video)
    assert r.status_code == 201
    short_id = r.json()["_id"]
    from tests.sandbox.conftest import wait_for

    wait_for(lambda: c.get(f"/assets/{short_id}").json(), lambda b: b["status"] != "processing")
    r = c.post(f"/indexes/{library.index_id}/indexed-assets", json={"asset_id": short_id})
    assert r.status_code == 400 and r.json()["code"] == "video_duration_too_short"
    assert c.delete(f"/assets/{short_id}").status_code == 200


def test_oversized_upload_rejected(tmp_path_factory: pytest.TempPathFactory, media: Media) -> None:
    from tests.sandbox.conftest import client_for
    from tl_mcp.sandbox.embedded import EmbeddedSandbox

    sb = EmbeddedSandbox.start_in_thread(
        tmp_path_factory.mktemp("small"), analyzers="none", max_upload_bytes=10_000
    )
    try:
        with client_for(sb) as c:
            r = upload(c, media.video.path)
            assert r.status_code == 400 and r.json()["code"] == "video_filesize_too_large"
            assert c.get("/assets").json()["data"] == []
            assert list((sb.config.data_dir / "media").iterdir()) == []
    finally:
        sb.stop()


def test_delete_asset_in_use_conflicts(library: Library) -> None:
    r = library.client.delete(f"/assets/{library.asset_id}")
    assert r.status_code == 409
    assert library.client.get(f"/assets/{library.asset_id}").status_code == 200


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        ({"type": 5}, "is not a valid JSON Schema at type"),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
            "has a `$ref` the sandbox cannot follow: `https://example.com/a.json`",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "array", "minItems": 30_000_000}}},
            "asks for at least 30000000 entries at properties/a",
        ),
    ],
)
def test_an_analyze_schema_the_sandbox_cannot_fill_is_refused_up_front(
    library: Library, schema: dict[str, object], said: str
) -> None:
    # As Jockey's `text.format.schema` is: checked before any video is looked up, so nothing runs.
    body = {
        "video": {"asset_id": "0123456789abcdef01234567"},
        "prompt": "x",
        "response_format": {"type": "json_schema", "json_schema": schema},
    }
    before = _state(library)
    for path, nested in (("/analyze", False), ("/analyze/tasks", True)):
        r = library.client.post(path, json=body)
        assert r.status_code == 400, r.text
        error = r.json()["error"] if nested else r.json()
        assert error["code"] == "parameter_invalid"
        assert error["message"].startswith("`response_format.json_schema` ") and said in error["message"]
    assert _state(library) == before
