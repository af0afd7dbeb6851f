"""The session → knowledge store map survives restarts and separates backends."""

from __future__ import annotations

from pathlib import Path

from tl_mcp.server.sessions import SessionStore


def test_sessions_persist_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sessions.json"
    SessionStore(path, scope="http://a").remember("sess_1", "ks_1")
    assert SessionStore(path, scope="http://a").get("sess_1") == "ks_1"
    assert SessionStore(path, scope="http://b").get("sess_1") is None


def test_corrupt_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    path.write_text("{not json")
    store = SessionStore(path, scope="x")
    assert store.get("s") is None
    store.remember("s", "ks")
    assert SessionStore(path, scope="x").get("s") == "ks"
