"""Which knowledge store each Jockey session belongs to, kept across restarts in a small JSON file.

`continue_session` only needs the session id because of this file. Writes are atomic (temp file +
rename) so a crash never leaves a half-written file; the file is bounded to the newest entries.
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


class SessionStore:
    def __init__(self, path: Path, *, scope: str) -> None:
        # `scope` separates backends: a sandbox session id means nothing to the cloud and vice versa.
        self._path = path
        self._scope = scope
        self._data: dict[str, dict[str, str | float]] = self._load()

    def _load(self) -> dict[str, dict[str, str | float]]:
        try:
            raw = json.loads(self._path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable session file %s: %s", self._path, exc)
            return {}
        sessions = raw.get("sessions") if isinstance(raw, dict) else None
        return (
            {k: v for k, v in sessions.items() if isinstance(v, dict)} if isinstance(sessions, dict) else {}
        )

    def _key(self, session_id: str) -> str:
        return f"{self._scope} {session_id}"

    def get(self, session_id: str) -> str | None:
        entry = self._data.get(self._key(session_id))
        store = entry.get("knowledge_store_id") if entry else None
        return store if isinstance(store, str) else None

    def remember(self, session_id: str, knowledge_store_id: str) -> None:
        key = self._key(session_id)
        if self._data.get(key, {}).get("knowledge_store_id") == knowledge_store_id:
            return
        self._data[key] = {"knowledge_store_id": knowledge_store_id, "updated": time.time()}
        if len(self._data) > MAX_ENTRIES:
            newest = sorted(self._data.items(), key=lambda kv: float(kv[1].get("updated", 0)), reverse=True)
            self._data = dict(newest[:MAX_ENTRIES])
        self._save()

    def _save(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".sessions-", dir=self._path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "sessions": self._data}, fh)
            os.replace(tmp, self._path)
        except OSError as exc:
            # Losing the mapping only means the caller must pass knowledge_store_id later.
            log.warning("could not save session file %s: %s", self._path, exc)
