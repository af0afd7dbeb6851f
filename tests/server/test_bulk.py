"""bulk_ingest through a real MCP client against the embedded sandbox: folders and globs, reuse by content,
reconciling uploads and registrations a killed process left half done, and bad input that changes nothing.
(The SIGKILL-and-restart run over real processes is tests/e2e/test_bulk_restart.py.)"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio
import av
import httpx2
import pytest
from mcp import Client
from PIL import Image

from tests.server.conftest import ProgressRecorder, call_ok, sandbox_settings, text_of
from tl_mcp.config import Settings
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server
from tl_mcp.server.bulk_send import CONTENT_TAG

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSandbox]:
    box = EmbeddedSandbox.start_in_thread(tmp_path_factory.mktemp("bulk") / "data", analyzers="none")
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(sandbox: EmbeddedSandbox, media: Path, tmp_path: Path) -> Settings:
    return sandbox_settings(sandbox, tmp_path / "state", media)


def image(path: Path, shade: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 40, 90)).save(path)
    return path


def tiny_video(path: Path, shade: int) -> Path:
    """Five seconds of one colour at 2 fps: long enough to index (4 s at least), quick to make."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (shade, 120, 30)))
        for i in range(10):
            frame.pts, frame.time_base = i, Fraction(1, 2)
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return path


def assets(sandbox: EmbeddedSandbox) -> dict[str, str]:
    """asset id → filename of every asset at the sandbox, from its own API."""
    found: dict[str, str] = {}
    page = 1
    while True:
        body = httpx2.get(
            f"{sandbox.base_url}/assets",
            params={"page": page, "page_limit": 50},
            headers={"x-api-key": sandbox.api_key},
        ).json()
        found |= {a["_id"]: a["filename"] for a in body["data"]}
        if page >= body["page_info"]["total_page"]:
            return found
        page += 1


def ledger(tmp_path: Path) -> sqlite3.Connection:
    (path,) = (tmp_path / "state").rglob("ingest.sqlite3")
    return sqlite3.connect(path, isolation_level=None)


def sources(data: dict[str, Any], status: str) -> list[str]:
    return sorted(row["source"] for row in data[status])


async def test_a_folder_is_uploaded_once_and_content_seen_before_is_reused(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path
) -> None:
    for i in range(4):
        image(media / f"img{i}.png", 10 * i)
    (media / "copy-of-img0.png").write_bytes((media / "img0.png").read_bytes())
    image(media / "sub" / "deep.png", 99)
    (media / "notes.txt").write_text("not media at all\n")
    image(media / ".hidden.png", 5)
    before = assets(sandbox)
    progress = ProgressRecorder()
    async with Client(build_server(settings)) as c:
        first = await call_ok(
            c, "bulk_ingest", {"folder": str(media), "wait_s": 60}, progress_callback=progress
        )
        data = first.structured_content
        assert data and data["status"] == "completed" and data["total"] == 7, data
        uploaded, reused = sources(data, "uploaded"), sources(data, "reused")
        # The two files with the same bytes: whichever came first was sent, the other reuses its asset.
        assert len(reused) == 1 and reused[0] in ("img0.png", "copy-of-img0.png")
        assert sorted(uploaded + reused) == [
            "copy-of-img0.png",
            "img0.png",
            "img1.png",
            "img2.png",
            "img3.png",
            "sub/deep.png",
        ]
        assert sources(data, "skipped") == ["notes.txt"] and "text file" in data["skipped"][0]["detail"]
        assert not data["failed"]
        new = {k: v for k, v in assets(sandbox).items() if k not in before}
        assert sorted(new.values()) == sorted(Path(s).name for s in uploaded)
        assert all(m and "/7 " in m for _, total, m in progress.calls[1:] if total == 7)
        assert progress.calls[-1][0] == 7 and progress.calls[-1][1] == 7
        progress.assert_increasing()

        # The same call again: the plan finished, so the folder is read again and nothing is sent.
        again = (await call_ok(c, "bulk_ingest", {"folder": str(media)})).structured_content
        assert again and not again["uploaded"] and len(again["reused"]) == 6
        assert assets(sandbox).keys() == before.keys() | new.keys()

        # An asset deleted upstream is not reused: the next call uploads that file again.
        gone = next(row for row in data["uploaded"] if row["source"] == "img2.png")["asset_id"]
        httpx2.delete(f"{sandbox.base_url}/assets/{gone}", headers={"x-api-key": sandbox.api_key})
        third = (await call_ok(c, "bulk_ingest", {"folder": str(media)})).structured_content
        assert third and sources(third, "uploaded") == ["img2.png"] and len(third["reused"]) == 5
    tagged = httpx2.get(
        f"{sandbox.base_url}/assets/{third['uploaded'][0]['asset_id']}",
        headers={"x-api-key": sandbox.api_key},
    ).json()
    assert tagged["user_metadata"][CONTENT_TAG].startswith("sha256:")


async def test_globs_pick_by_name_or_by_path(settings: Settings, media: Path) -> None:
    for name in ("a.png", "keep/c.png", "drop/d.png"):
        image(media / name, len(name))
    Image.new("RGB", (8, 8), (1, 2, 3)).save(media / "b.jpg")
    async with Client(build_server(settings)) as c:
        args = {"folder": str(media), "include": ["*.png"], "exclude": ["drop/*"]}
        data = (await call_ok(c, "bulk_ingest", args)).structured_content
    assert data and sources(data, "uploaded") == ["a.png", "keep/c.png"], data


async def test_an_upload_a_killed_process_left_unrecorded_is_found_upstream(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path, tmp_path: Path
) -> None:
    """The ledger says "sending" (the process died between sending and recording): the next call looks
    the content up by its tag at the backend and adopts that asset instead of paying again."""
    image(media / "one" / "x.png", 7)
    (media / "two").mkdir()
    (media / "two" / "x.png").write_bytes((media / "one" / "x.png").read_bytes())
    async with Client(build_server(settings)) as c:
        first = (await call_ok(c, "bulk_ingest", {"folder": str(media / "one")})).structured_content
        assert first and len(first["uploaded"]) == 1
        asset_id = first["uploaded"][0]["asset_id"]
        with ledger(tmp_path) as db:
            db.execute("UPDATE uploads SET state = 'sending', asset_id = NULL")
        count = len(assets(sandbox))
        second = (await call_ok(c, "bulk_ingest", {"folder": str(media / "two")})).structured_content
    assert second and [row["asset_id"] for row in second["uploaded"]] == [asset_id], second
    assert len(assets(sandbox)) == count


async def test_index_and_store_registrations_happen_once_even_after_a_lost_answer(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path, tmp_path: Path
) -> None:
    tiny_video(media / "v1.mp4", 10)
    tiny_video(media / "v2.mp4", 200)
    headers = {"x-api-key": sandbox.api_key}
    async with Client(build_server(settings)) as c:
        index = (await call_ok(c, "create_index", {"name": "bulk"})).structured_content
        store = (await call_ok(c, "create_knowledge_store", {"name": "bulk"})).structured_content
        assert index and store
        args = {
            "folder": str(media),
            "index_id": index["id"],
            "knowledge_store_id": store["id"],
            "wait_s": 120,
        }
        result = await call_ok(c, "bulk_ingest", args)
        data = result.structured_content
        assert data and len(data["uploaded"]) == 2 and not data["failed"], text_of(result)
        assert all(row["indexed_asset_id"] and row["item_id"] for row in data["uploaded"])
        # The next step the result names works: it follows one file's indexing.
        hint = f'wait_for_task(id="{data["uploaded"][0]["indexed_asset_id"]}", index_id="{index["id"]}")'
        assert hint in text_of(result)
        waited = await call_ok(
            c,
            "wait_for_task",
            {"id": data["uploaded"][0]["indexed_asset_id"], "index_id": index["id"], "wait_s": 60},
        )
        assert waited.structured_content and waited.structured_content["status"] == "ready"

        # As if the process died after sending the registrations but before recording their ids.
        with ledger(tmp_path) as db:
            db.execute("UPDATE registrations SET ref_id = NULL")
        again = (await call_ok(c, "bulk_ingest", args)).structured_content
    assert again and len(again["reused"]) == 2
    assert {r["indexed_asset_id"] for r in again["reused"]} == {
        r["indexed_asset_id"] for r in data["uploaded"]
    }
    assert {r["item_id"] for r in again["reused"]} == {r["item_id"] for r in data["uploaded"]}
    videos = httpx2.get(f"{sandbox.base_url}/indexes/{index['id']}/indexed-assets", headers=headers).json()
    assert len(videos["data"]) == 2
    items = httpx2.get(f"{sandbox.base_url}/knowledge-stores/{store['id']}/items", headers=headers).json()
    assert len(items["data"]) == 2

    # A registration deleted upstream since is made again, not reported from the ledger.
    gone = again["reused"][0]["indexed_asset_id"]
    deleted = httpx2.delete(
        f"{sandbox.base_url}/indexes/{index['id']}/indexed-assets/{gone}", headers=headers
    )
    assert deleted.status_code in (200, 204)
    async with Client(build_server(settings)) as c:
        third = (await call_ok(c, "bulk_ingest", args)).structured_content
    assert third and not third["failed"], third
    remade = {r["indexed_asset_id"] for r in third["reused"]}
    assert gone not in remade and len(remade) == 2
    videos = httpx2.get(f"{sandbox.base_url}/indexes/{index['id']}/indexed-assets", headers=headers).json()
    assert {v["_id"] for v in videos["data"]} == remade


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"folder": "/etc"}, "resolves outside the allowed folders"),
        ({"folder": "relative/path"}, "is relative"),
        ({"folder": "FILE"}, "is not a folder"),
        ({"include": ["*.mov"]}, "match none of the 1 files"),
        ({"urls": ["http://127.0.0.1:9/a.mp4"]}, "127.0.0.1, a private, loopback"),
        ({"urls": ["https://example.com/a.mp4", "http://localhost/b.mp4"]}, "loopback"),
        ({"urls": ["http://[::ffff:10.0.0.1]/c.mp4"]}, "non-public address"),
        ({"urls": ["ftp://example.com/a.mp4"]}, "must be an http(s) URL"),
        ({"urls": ["https://example.com/a.mp4"], "include": ["*.mp4"]}, "leave them out with urls"),
        ({"index_id": "nope"}, "there is no index nope"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    sandbox: EmbeddedSandbox,
    settings: Settings,
    media: Path,
    tmp_path: Path,
    args: dict[str, Any],
    expected: str,
) -> None:
    image(media / "a.png", 1)
    if args.get("folder") == "FILE":
        args = {"folder": str(media / "a.png")}
    if "urls" not in args:
        args = {"folder": str(media), **args} if "folder" not in args else args
    before = assets(sandbox)
    async with Client(build_server(settings)) as c:
        result = await c.call_tool("bulk_ingest", args)
    assert result.is_error and expected in text_of(result), text_of(result)
    assert assets(sandbox) == before
    assert (
        not list((tmp_path / "state").rglob("ingest.sqlite3"))
        or not ledger(tmp_path).execute("SELECT count(*) FROM plans").fetchone()[0]
    )


async def test_a_url_list_is_one_plan_and_a_url_sent_before_is_reused(
    sandbox: EmbeddedSandbox, settings: Settings
) -> None:
    # `.invalid` never resolves, so the private-address check leaves it to the sandbox, which takes the
    # asset and fetches it later (and fails then: no test here depends on that fetch).
    urls = ["https://media.invalid/a.mp4", "https://media.invalid/clips/b.mp4?x=1"]
    before = assets(sandbox)
    async with Client(build_server(settings)) as c:
        first = (await call_ok(c, "bulk_ingest", {"urls": urls})).structured_content
        assert first and sources(first, "uploaded") == sorted(urls), first
        new = {k: v for k, v in assets(sandbox).items() if k not in before}
        assert sorted(new.values()) == ["a.mp4", "b.mp4"]
        again = (await call_ok(c, "bulk_ingest", {"urls": urls[::-1]})).structured_content
    assert again and again["plan_id"] == first["plan_id"] and not again["uploaded"], again
    assert sources(again, "reused") == sorted(urls)
    assert assets(sandbox).keys() == before.keys() | new.keys()


class Recording(httpx2.AsyncBaseTransport):
    """Forwards to the sandbox over loopback and keeps every request the server sent."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.seen: list[tuple[httpx2.Request, bytes]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        self.seen.append((request, body))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_every_request_bulk_ingest_sends_is_in_the_openapi_contract(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path, tmp_path: Path
) -> None:
    """Uploads (with the content tag), the lookups that reconcile a lost upload and lost registrations,
    and the registrations themselves, each checked against the OpenAPI snapshot (query names, JSON
    bodies, multipart fields). All of them are in the snapshot: the SDK 1.3.6 delta changes none."""
    from tests.api.conftest import Seen, check_against_spec
    from tests.openapi_spec import match_path

    tiny_video(media / "one" / "v.mp4", 30)
    (media / "two").mkdir()
    (media / "two" / "v.mp4").write_bytes((media / "one" / "v.mp4").read_bytes())
    transport = Recording()
    async with Client(build_server(settings, transport=transport)) as c:
        index = (await call_ok(c, "create_index", {"name": "contract"})).structured_content
        store = (await call_ok(c, "create_knowledge_store", {"name": "contract"})).structured_content
        assert index and store
        where = {"index_id": index["id"], "knowledge_store_id": store["id"], "wait_s": 120}
        await call_ok(c, "bulk_ingest", {"folder": str(media / "one"), **where})
        with ledger(tmp_path) as db:
            db.execute("UPDATE uploads SET state = 'sending', asset_id = NULL")
            db.execute("UPDATE registrations SET ref_id = NULL")
        second = (await call_ok(c, "bulk_ingest", {"folder": str(media / "two"), **where})).structured_content
        assert second and len(second["uploaded"]) == 1 and second["uploaded"][0]["item_id"], second
        await call_ok(c, "bulk_ingest", {"urls": ["https://media.invalid/c.mp4"]})
    prefix = sandbox.base_url.rstrip("/")
    checked = set()
    for request, body in transport.seen:
        path = str(request.url).removeprefix(prefix).split("?", 1)[0]
        template = match_path(path)
        assert template, f"{request.method} {path} is not in the OpenAPI snapshot"
        check_against_spec(Seen(request.method, path, request.url.params, request.headers, body, template))
        checked.add((request.method, template))
    assert {
        ("POST", "/assets"),
        ("GET", "/assets"),
        ("GET", "/assets/{asset_id}"),
        ("GET", "/assets/{asset_id}/indexed-assets"),
        ("POST", "/indexes/{index-id}/indexed-assets"),
        ("GET", "/knowledge-stores/{knowledge_store_id}/items"),
        ("POST", "/knowledge-stores/{knowledge_store_id}/items"),
    } <= checked, checked


async def test_the_same_call_while_it_runs_follows_the_running_job(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path
) -> None:
    for i in range(30):
        image(media / f"f{i:02d}.png", i)
    before = assets(sandbox)
    args = {"folder": str(media), "concurrency": 1}
    async with Client(build_server(settings)) as c:
        first = (await call_ok(c, "bulk_ingest", {**args, "wait_s": 0})).structured_content
        assert first and first["status"] == "in_progress", first
        second = (await call_ok(c, "bulk_ingest", {**args, "wait_s": 60})).structured_content
    assert second and second["status"] == "completed" and second["plan_id"] == first["plan_id"]
    assert len(second["uploaded"]) == 30, second
    new = [name for key, name in assets(sandbox).items() if key not in before]
    assert sorted(new) == [f"f{i:02d}.png" for i in range(30)]


def test_a_plan_is_claimed_by_one_live_process_at_a_time(tmp_path: Path) -> None:
    """Another live process's claim holds; once that process is gone (or its lease ran out), it is free."""
    import socket
    import subprocess

    from tl_mcp.server.bulk_plan import alive
    from tl_mcp.server.ingest_ledger import Plan, PlanFile, SqliteIngestLedger

    store = SqliteIngestLedger(tmp_path, "sandbox:test")
    store.save_plan(Plan("bulk_x", "", {"urls": []}, [PlanFile(0, "https://example.com/a.mp4")]))
    other = subprocess.Popen(["sleep", "60"])
    try:
        them = f"{socket.gethostname()}:{other.pid}:abcd"
        assert store.claim_plan("bulk_x", them, 60, alive) is None
        store.renew_plan("bulk_x", them, 60, job_id="job_1")
        assert store.claim_plan("bulk_x", "me:1:x", 60, alive) == (them, "job_1")
    finally:
        other.kill()
        other.wait()
    assert store.claim_plan("bulk_x", "me:1:x", 60, alive) is None
    # A claim from a host we cannot check holds until its lease ends.
    store.release_plan("bulk_x", "me:1:x")
    assert store.claim_plan("bulk_x", "far:1:y", 0.2, alive) is None
    assert store.claim_plan("bulk_x", "me:1:x", 60, alive) == ("far:1:y", None)
    time.sleep(0.3)
    assert store.claim_plan("bulk_x", "me:1:x", 60, alive) is None
    store.close()


async def test_the_retry_hint_of_failed_files_sends_nothing_twice(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path
) -> None:
    """Images cannot be indexed: each fails at its registration, after the upload. Following the printed
    retry call tries the registrations again, and reuses the uploads."""
    from tests.server.test_next_steps import next_steps, parse_calls

    image(media / "a.png", 3)
    image(media / "b.png", 4)
    async with Client(build_server(settings)) as c:
        index = (await call_ok(c, "create_index", {"name": "retry"})).structured_content
        assert index
        result = await call_ok(c, "bulk_ingest", {"folder": str(media), "index_id": index["id"]})
        data = result.structured_content
        assert data and sources(data, "failed") == ["a.png", "b.png"], data
        assert "is an image; indexes hold video and audio" in data["failed"][0]["detail"]
        count = len(assets(sandbox))
        (retry,) = [h for h in next_steps(result) if h.startswith("Retry the failed files")]
        ((tool, args),) = parse_calls(retry)
        again = (await call_ok(c, tool, args)).structured_content
    assert again and sources(again, "failed") == ["a.png", "b.png"]
    assert {r["asset_id"] for r in again["failed"]} == {r["asset_id"] for r in data["failed"]}
    assert len(assets(sandbox)) == count


def test_the_ledger_keeps_each_backend_apart_and_survives_reopening(tmp_path: Path) -> None:
    from tl_mcp.server.ingest_ledger import SqliteIngestLedger

    cloud = SqliteIngestLedger(tmp_path, "cloud:https://api.twelvelabs.io/v1.3 key:abc")
    box = SqliteIngestLedger(tmp_path, "sandbox:/data")
    assert cloud.claim_upload("sha256:00", "a.mp4", "me:1:x", 60, lambda _runner: True) is None
    cloud.record_upload("sha256:00", "asset-1", "a.mp4")
    assert box.upload("sha256:00") is None
    cloud.close()
    again = SqliteIngestLedger(tmp_path, "cloud:https://api.twelvelabs.io/v1.3 key:abc")
    entry = again.upload("sha256:00")
    assert entry and entry.state == "done" and entry.asset_id == "asset-1"
    mode = sqlite3.connect(tmp_path / "ingest.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again.close()
    box.close()


async def test_a_big_file_reports_its_bytes_on_the_way(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path
) -> None:
    import numpy as np

    noise = np.random.default_rng(7).integers(0, 256, (1800, 1800, 3), dtype=np.uint8)
    Image.fromarray(noise).save(media / "big.png", compress_level=0)
    size = (media / "big.png").stat().st_size
    assert size >= 8 * 1024 * 1024
    image(media / "small.png", 9)
    progress = ProgressRecorder()
    async with Client(build_server(settings)) as c:
        data = (
            await call_ok(c, "bulk_ingest", {"folder": str(media), "wait_s": 60}, progress_callback=progress)
        ).structured_content
    assert data and sources(data, "uploaded") == ["big.png", "small.png"], data
    on_the_way = [m for _, _, m in progress.calls if m and m.startswith("big.png: ") and "bytes sent" in m]
    assert on_the_way and all(f"of {size:,} bytes" in m for m in on_the_way), progress.calls
    assert not any(m and m.startswith("small.png: ") for _, _, m in progress.calls)
    progress.assert_increasing()


async def test_two_bulk_calls_at_once_over_the_same_files_send_and_index_each_once(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path
) -> None:
    """Two plans (different globs, one folder) running together: the second reuses what the first sent."""
    for i in range(6):
        tiny_video(media / f"v{i}.mp4", 20 * i)
    before = assets(sandbox)
    results: list[dict[str, Any]] = []
    async with Client(build_server(settings)) as c:
        index = (await call_ok(c, "create_index", {"name": "together"})).structured_content
        assert index

        async def ingest(extra: dict[str, Any]) -> None:
            args = {"folder": str(media), "index_id": index["id"], "wait_s": 60, **extra}
            data = (await call_ok(c, "bulk_ingest", args)).structured_content
            assert data and data["status"] == "completed" and not data["failed"], data
            results.append(data)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ingest, {"include": ["*.mp4"]})
            tg.start_soon(ingest, {})
    new = [name for key, name in assets(sandbox).items() if key not in before]
    assert sorted(new) == [f"v{i}.mp4" for i in range(6)]
    assert sum(len(r["uploaded"]) for r in results) == 6 and sum(len(r["reused"]) for r in results) == 6
    listed = httpx2.get(
        f"{sandbox.base_url}/indexes/{index['id']}/indexed-assets",
        params={"page_limit": 50},
        headers={"x-api-key": sandbox.api_key},
    ).json()["data"]
    assert len(listed) == 6, listed


async def test_include_patterns_are_a_way_past_the_folder_listing_limit(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder error says to narrow with include/exclude: files the globs leave out do not count."""
    from tl_mcp.server.tools import bulk

    monkeypatch.setattr(bulk, "MAX_FILES", 5)  # the listing then stops past 100 files
    for i in range(120):
        (media / f"note{i:03d}.txt").write_text("x")
    image(media / "keep.png", 7)
    before = assets(sandbox)
    async with Client(build_server(settings)) as c:
        everything = await c.call_tool("bulk_ingest", {"folder": str(media)})
        assert everything.is_error and "more than 100 files" in text_of(everything)
        assert "include/exclude" in text_of(everything)
        assert assets(sandbox).keys() == before.keys()
        data = (
            await call_ok(c, "bulk_ingest", {"folder": str(media), "include": ["*.png"]})
        ).structured_content
    assert data and sources(data, "uploaded") == ["keep.png"], data


def test_an_upload_being_sent_is_claimed_by_one_live_process(tmp_path: Path) -> None:
    """The upload intent is a claim: another live process waits for it; a done entry is never re-sent; a
    released or dead sender's intent is free (and a ledger from before claims keeps opening)."""
    from tl_mcp.server.ingest_ledger import SqliteIngestLedger

    old = sqlite3.connect(tmp_path / "ingest.sqlite3", isolation_level=None)
    old.execute(
        "CREATE TABLE uploads (backend TEXT NOT NULL, content_key TEXT NOT NULL, state TEXT NOT NULL, "
        "asset_id TEXT, filename TEXT, updated REAL NOT NULL, PRIMARY KEY (backend, content_key))"
    )
    old.execute("INSERT INTO uploads VALUES ('box', 'sha256:old', 'sending', NULL, 'o.mp4', 0)")
    old.execute(
        "CREATE TABLE registrations (backend TEXT NOT NULL, asset_id TEXT NOT NULL, destination TEXT NOT "
        "NULL, ref_id TEXT, updated REAL NOT NULL, PRIMARY KEY (backend, asset_id, destination))"
    )
    old.execute("INSERT INTO registrations VALUES ('box', 'asset-0', 'index:i', 'video-0', 0)")
    old.close()
    store = SqliteIngestLedger(tmp_path, "box")
    alive = {"them:1:a": True}
    assert store.claim_registration("asset-0", "index:i", "me:1:x", 60, alive.get) == (True, "video-0")
    assert store.claim_upload("sha256:old", "o.mp4", "me:1:x", 60, alive.get) is None
    assert store.claim_upload("sha256:01", "a.mp4", "them:1:a", 60, alive.get) is None
    held = store.claim_upload("sha256:01", "a.mp4", "me:1:x", 60, alive.get)
    assert held and held.state == "sending"
    store.release_upload("sha256:01", "them:1:a")
    assert store.claim_upload("sha256:01", "a.mp4", "me:1:x", 60, alive.get) is None
    store.record_upload("sha256:01", "asset-1", "a.mp4")
    done = store.claim_upload("sha256:01", "a.mp4", "them:1:a", 60, alive.get)
    assert done and done.state == "done" and done.asset_id == "asset-1"
    assert store.claim_upload("sha256:02", "b.mp4", "them:1:a", 60, alive.get) is None
    alive["them:1:a"] = False
    assert store.claim_upload("sha256:02", "b.mp4", "me:1:x", 60, alive.get) is None
    store.close()


async def test_a_registration_another_live_process_is_making_is_waited_for_not_repeated(
    sandbox: EmbeddedSandbox, settings: Settings, media: Path, tmp_path: Path
) -> None:
    import socket

    from tl_mcp.server.ingest_ledger import SqliteIngestLedger

    tiny_video(media / "a.mp4", 40)
    async with Client(build_server(settings)) as c:
        index = (await call_ok(c, "create_index", {"name": "held"})).structured_content
        assert index
        first = (await call_ok(c, "bulk_ingest", {"folder": str(media)})).structured_content
        assert first
        asset_id = first["uploaded"][0]["asset_id"]
        db = ledger(tmp_path)
        (identity,) = db.execute("SELECT DISTINCT backend FROM uploads").fetchone()
        (path,) = (tmp_path / "state").rglob("ingest.sqlite3")
        # Another tl-mcp process, alive, which has just claimed the registration and is sending it.
        other = await anyio.open_process(["sleep", "60"])
        try:
            them = SqliteIngestLedger(path.parent, identity)
            runner = f"{socket.gethostname()}:{other.pid}:abcd"
            assert them.claim_registration(asset_id, f"index:{index['id']}", runner, 60, lambda _r: True)
            them.close()
            args = {"folder": str(media), "index_id": index["id"], "wait_s": 2}
            waiting = (await call_ok(c, "bulk_ingest", args)).structured_content
            assert waiting and waiting["status"] == "in_progress", waiting
            assert not indexed_assets(sandbox, index["id"])
        finally:
            other.kill()
            await other.wait()
        done = (await call_ok(c, "wait_for_task", {"id": waiting["job_id"], "wait_s": 60})).structured_content
    assert done and done["result"]["status"] == "completed", done
    assert [row["asset_id"] for row in indexed_assets(sandbox, index["id"])] == [asset_id]


def indexed_assets(sandbox: EmbeddedSandbox, index_id: str) -> list[dict[str, Any]]:
    body = httpx2.get(
        f"{sandbox.base_url}/indexes/{index_id}/indexed-assets",
        params={"page_limit": 50},
        headers={"x-api-key": sandbox.api_key},
    ).json()
    return list(body["data"])
