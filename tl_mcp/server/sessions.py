"""Which knowledge store each Jockey session belongs to, and whose it is, kept across restarts.

`continue_session` only needs the session id because of this file. It lives in the backend's own state
folder (`Backend.state_dir`), so one file never mixes backends, and each entry names the principal that
started the session: another caller neither learns the store nor gets to continue the session. Writes
are atomic (temp file + rename) so a crash never leaves a half-written file, and re-read when another
process (a server started per call, as the MCP Inspector does) changed it; the file is bounded to the
newest entries. This is the one-process map; with `TL_MCP_REDIS_URL` the replicas share
`shared.redis_state.RedisSessions` instead (same interface, `shared.base.Sessions`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAX_ENTRIES = 2000
FILE_NAME = "sessions.json"


class SessionStore:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / FILE_NAME
        self._seen: int | None = None
        self._data: dict[str, dict[str, str | float]] = {}
        self._refresh()

    def _refresh(self) -> None:
        try:
            stamp = self._path.stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp is None or stamp != self._seen:
            self._seen = stamp
            self._data = self._load()

    def _load(self) -> dict[str, dict[str, str | float]]:
        try:
            raw = json.loads(self._path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable session file %s: %s", self._path, exc)
            return {}
        sessions = raw.get("sessions") if isinstance(raw, dict) and raw.get("version") == 2 else None
        return (
            {k: v for k, v in sessions.items() if isinstance(v, dict)} if isinstance(sessions, dict) else {}
        )

    async def get(self, session_id: str, owner: str) -> str | None:
        """The session's knowledge store, if `owner` started it."""
        self._refresh()
        entry = self._data.get(session_id)
        if entry is None or entry.get("owner", "") != owner:
            return None
        store = entry.get("knowledge_store_id")
        return store if isinstance(store, str) else None

    async def foreign(self, session_id: str, owner: str) -> bool:
        """True when another principal started this session."""
        self._refresh()
        entry = self._data.get(session_id)
        return entry is not None and entry.get("owner", "") != owner

    async def remember(self, session_id: str, knowledge_store_id: str, owner: str) -> None:
        self._refresh()
        entry = self._data.get(session_id)
        if entry is not None and entry.get("owner", "") != owner:
            # The first owner keeps it: continue_session refuses others, so this is someone else's id.
            return
        if entry is not None and entry.get("knowledge_store_id") == knowledge_store_id:
            return
        self._data[session_id] = {
            "knowledge_store_id": knowledge_store_id,
            "owner": owner,
            "updated": time.time(),
        }
        if len(self._data) > MAX_ENTRIES:
            newest = sorted(self._data.items(), key=lambda kv: float(kv[1].get("updated", 0)), reverse=True)
            self._data = dict(newest[:MAX_ENTRIES])
        self._save()

    def _save(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sessions-", dir=self._path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": 2, "sessions": self._data}, fh)
            os.replace(tmp, self._path)
            self._seen = self._path.stat().st_mtime_ns
        except OSError as exc:
            # Losing the mapping only means the caller must pass knowledge_store_id later.
            log.warning("could not save session file %s: %s", self._path, exc)
