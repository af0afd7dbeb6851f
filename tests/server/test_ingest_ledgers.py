"""The bulk-ingest ledger, one contract for both implementations: the backend's SQLite file (one
host) and Redis (every replica, `TL_MCP_REDIS_URL`; a real `redis-server`).

Uploads go from intended to done and can be forgotten, and one live runner at a time sends each;
registrations record the attempt, then the id; a plan round-trips with its files; one runner at a time
holds a plan's claim, which only it renews or releases; backends never share an entry; and in Redis
every key expires.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.services import redis_server
from tl_mcp.server.ingest_ledger import IngestLedger, Plan, PlanFile, SqliteIngestLedger
from tl_mcp.server.shared.redis_ledger import RedisIngestLedger
from tl_mcp.server.shared.redis_state import prefix_of


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> IngestLedger:
    if kind == "sqlite":
        return SqliteIngestLedger(tmp_path, backend)
    url = request.getfixturevalue("redis_url")
    return RedisIngestLedger(url, prefix_of(f"{tmp_path}:{backend}"))


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_upload_goes_from_intended_to_done_and_can_be_forgotten(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ledger = _open(kind, request, tmp_path, "sandbox:a")
    assert ledger.upload("sha256:00") is None
    assert ledger.claim_upload("sha256:00", "a.mp4", "me", 60, lambda _: True) is None
    sending = ledger.upload("sha256:00")
    assert sending and sending.state == "sending" and sending.asset_id is None and sending.filename == "a.mp4"
    # An intent taken again keeps the file name first recorded.
    assert ledger.claim_upload("sha256:00", "other.mp4", "me", 60, lambda _: True) is None
    assert (ledger.upload("sha256:00") or sending).filename == "a.mp4"
    ledger.record_upload("sha256:00", "asset-1", "a.mp4")
    done = ledger.upload("sha256:00")
    assert done and done.state == "done" and done.asset_id == "asset-1"
    ledger.forget_upload("sha256:00")
    assert ledger.upload("sha256:00") is None
    ledger.close()


def test_an_upload_being_sent_is_held_by_one_live_runner(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Another live runner waits while a lease lasts; a done upload is never claimed again; a released
    or dead sender's intent is free."""
    ledger = _open(kind, request, tmp_path, "sandbox:c")
    alive = {"them": True}
    assert ledger.claim_upload("sha256:01", "a.mp4", "them", 60, alive.get) is None
    held = ledger.claim_upload("sha256:01", "a.mp4", "me", 60, alive.get)
    assert held and held.state == "sending" and held.filename == "a.mp4"
    ledger.renew_uploads("them", 60)
    assert ledger.claim_upload("sha256:01", "a.mp4", "me", 60, alive.get) is not None
    ledger.release_upload("sha256:01", "them")
    assert ledger.claim_upload("sha256:01", "a.mp4", "me", 60, alive.get) is None
    ledger.record_upload("sha256:01", "asset-1", "a.mp4")
    done = ledger.claim_upload("sha256:01", "a.mp4", "them", 60, alive.get)
    assert done and done.state == "done" and done.asset_id == "asset-1"
    assert ledger.claim_upload("sha256:02", "b.mp4", "them", 0.2, alive.get) is None
    time.sleep(0.3)
    assert ledger.claim_upload("sha256:02", "b.mp4", "me", 60, alive.get) is None  # its lease ran out
    assert ledger.claim_upload("sha256:03", "c.mp4", "them", 60, alive.get) is None
    alive["them"] = False
    assert ledger.claim_upload("sha256:03", "c.mp4", "me", 60, alive.get) is None
    ledger.close()


def test_a_registration_is_made_by_one_live_runner_at_a_time(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A claim says what was recorded before it and counts as an attempt; another live runner waits
    until it is released; a recorded id survives claims and releases."""
    ledger = _open(kind, request, tmp_path, "sandbox:d")
    alive = {"them": True}
    assert ledger.claim_registration("asset-1", "index:i1", "them", 60, alive.get) == (False, None)
    assert ledger.claim_registration("asset-1", "index:i1", "me", 60, alive.get) is None
    assert ledger.registration("asset-1", "index:i1") == (True, None)
    ledger.intend_registration("asset-1", "index:i1")
    assert ledger.claim_registration("asset-1", "index:i1", "me", 60, alive.get) is None
    ledger.record_registration("asset-1", "index:i1", "video-1")
    ledger.release_registration("asset-1", "index:i1", "them")
    assert ledger.claim_registration("asset-1", "index:i1", "me", 60, alive.get) == (True, "video-1")
    ledger.release_registration("asset-1", "index:i1", "me")
    assert ledger.registration("asset-1", "index:i1") == (True, "video-1")
    assert ledger.claim_registration("asset-1", "store:s1", "them", 60, alive.get) == (False, None)
    alive["them"] = False
    assert ledger.claim_registration("asset-1", "store:s1", "me", 60, alive.get) == (True, None)
    ledger.close()


def test_a_registration_records_the_attempt_then_its_id(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ledger = _open(kind, request, tmp_path, "sandbox:a")
    assert ledger.registration("asset-1", "index:i1") == (False, None)
    ledger.intend_registration("asset-1", "index:i1")
    assert ledger.registration("asset-1", "index:i1") == (True, None)
    ledger.record_registration("asset-1", "index:i1", "video-1")
    ledger.intend_registration("asset-1", "store:k1")
    assert ledger.registration("asset-1", "index:i1") == (True, "video-1")
    assert ledger.registration("asset-1", "store:k1") == (True, None)
    ledger.close()


def test_a_plan_round_trips_with_its_files(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    ledger = _open(kind, request, tmp_path, "sandbox:a")
    files = [PlanFile(0, "a.mp4"), PlanFile(1, "b.mp4")]
    ledger.save_plan(Plan("bulk_1", "p1", {"folder": "/media", "glob": "*.mp4"}, files))
    ledger.update_file("bulk_1", PlanFile(1, "b.mp4", "uploaded", "asset-2", None, "video-2", None))
    # A position the plan does not have changes nothing.
    ledger.update_file("bulk_1", PlanFile(7, "x.mp4", "failed"))
    plan = ledger.plan("bulk_1")
    assert plan and plan.owner == "p1" and plan.spec == {"folder": "/media", "glob": "*.mp4"}
    assert plan.files == [PlanFile(0, "a.mp4"), PlanFile(1, "b.mp4", "uploaded", "asset-2", None, "video-2")]
    assert not plan.finished
    ledger.finish_plan("bulk_1")
    assert (ledger.plan("bulk_1") or plan).finished
    # Saving again replaces the files.
    ledger.save_plan(Plan("bulk_1", "p1", {"folder": "/media"}, [PlanFile(0, "c.mp4")]))
    assert [f.source for f in (ledger.plan("bulk_1") or plan).files] == ["c.mp4"]
    assert ledger.plan("bulk_unknown") is None
    ledger.close()


def test_one_runner_holds_a_claim_and_only_it_renews_or_releases_it(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ledger = _open(kind, request, tmp_path, "sandbox:a")
    ledger.save_plan(Plan("bulk_x", "", {}, [PlanFile(0, "a.mp4")]))
    with pytest.raises(KeyError):
        ledger.claim_plan("bulk_none", "me", 60, lambda _: True)
    assert ledger.claim_plan("bulk_x", "them", 60, lambda _: True) is None
    ledger.renew_plan("bulk_x", "them", 60, job_id="job_1")
    assert ledger.claim_plan("bulk_x", "me", 60, lambda _: True) == ("them", "job_1")
    # Not the holder: neither renewing nor releasing does anything.
    ledger.renew_plan("bulk_x", "me", 60, job_id="job_2")
    ledger.release_plan("bulk_x", "me")
    assert ledger.claim_plan("bulk_x", "me", 60, lambda _: True) == ("them", "job_1")
    # A holder that is gone loses its claim at once; one whose lease ran out too.
    assert ledger.claim_plan("bulk_x", "me", 0.2, lambda holder: holder != "them") is None
    assert ledger.claim_plan("bulk_x", "them", 60, lambda _: True) == ("me", None)
    time.sleep(0.3)
    assert ledger.claim_plan("bulk_x", "them", 60, lambda _: True) is None
    ledger.release_plan("bulk_x", "them")
    assert ledger.claim_plan("bulk_x", "me", 60, lambda _: True) is None
    ledger.close()


def test_backends_never_share_an_entry(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cloud = _open(kind, request, tmp_path, "cloud:key-a")
    box = _open(kind, request, tmp_path, "sandbox:/data")
    cloud.record_upload("sha256:00", "asset-1", "a.mp4")
    cloud.save_plan(Plan("bulk_1", "p", {}, []))
    assert box.upload("sha256:00") is None and box.plan("bulk_1") is None
    cloud.close()
    box.close()


def test_every_redis_ledger_key_expires(redis_url: str, tmp_path: Path) -> None:
    prefix = prefix_of(f"ttl:{tmp_path}")
    ledger = RedisIngestLedger(redis_url, prefix)
    ledger.claim_upload("sha256:00", "a.mp4", "me", 60, lambda _: True)
    ledger.record_registration("asset-1", "index:i1", "video-1")
    ledger.save_plan(Plan("bulk_1", "p", {}, [PlanFile(0, "a.mp4")]))
    ledger.claim_plan("bulk_1", "me", 60, lambda _: True)
    ledger.finish_plan("bulk_1")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    assert len(keys) == 5, keys
    assert all(client.pttl(k) > 0 for k in keys), {k: client.pttl(k) for k in keys}
    client.close()
    ledger.close()
