"""Replicas on hosts whose clocks differ share one Redis ingest ledger: a lease one writes is judged
by another, so leases are in Redis's clock. The other replica is a real process whose wall clock runs
five minutes ahead (a host whose NTP is off), against a real `redis-server`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import ROOT, redis_server
from tl_mcp.server.ingest_ledger import Plan
from tl_mcp.server.shared.redis_ledger import RedisIngestLedger
from tl_mcp.server.shared.redis_state import prefix_of

_AHEAD = """
import json, sys, time
_wall = time.time
time.time = lambda: _wall() + 300.0  # this host's clock runs five minutes ahead
from tl_mcp.server.shared.redis_ledger import RedisIngestLedger
ledger = RedisIngestLedger(sys.argv[1], sys.argv[2])
live = lambda runner: True  # on another host a claim's lease is all there is to go by
upload = ledger.claim_upload("sha256:01", "a.mp4", "host-b:2:b", 60, live)
registration = ledger.claim_registration("asset-1", "index:ix1", "host-b:2:b", 60, live)
plan = ledger.claim_plan("plan_1", "host-b:2:b", 60, live)
print(json.dumps([upload is not None, registration is None, plan is not None]))
"""


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def test_a_live_replicas_claims_hold_for_a_replica_whose_clock_runs_ahead(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = prefix_of(f"clocks:{tmp_path}")
    ledger = RedisIngestLedger(redis_url, prefix)
    try:
        live = {"host-a:1:a": True}.get
        assert ledger.claim_upload("sha256:01", "a.mp4", "host-a:1:a", 60, live) is None
        assert ledger.claim_registration("asset-1", "index:ix1", "host-a:1:a", 60, live) == (False, None)
        ledger.save_plan(Plan("plan_1", "owner", {"folder": "/x"}, []))
        assert ledger.claim_plan("plan_1", "host-a:1:a", 60, live) is None
        other = subprocess.run(
            [sys.executable, "-c", _AHEAD, redis_url, prefix],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        assert other.returncode == 0, other.stderr
        # Each of A's claims is still held for B (60 s leases, taken a moment ago by Redis's clock).
        assert json.loads(other.stdout) == [True, True, True]
    finally:
        ledger.close()
