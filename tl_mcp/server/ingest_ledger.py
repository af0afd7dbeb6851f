"""What bulk ingests remember across restarts: which content each backend already has, and each bulk plan.

Two records, behind one small interface (`IngestLedger`) so another store (e.g. Redis, shared by replicas)
can replace the SQLite one:

- the upload ledger: content key (a SHA-256 of the file, or of the URL) → the asset made from it, and
  per asset the index / knowledge store it was registered with. An entry is written as an intent
  ("sending") before the request goes out and completed after, so a process killed in between leaves a
  trace its successor reconciles with the backend instead of paying for the upload again; the intent
  names its process and holds a lease while it sends, so another process that wants the same content
  waits for that answer instead of sending it too;
- bulk plans: the files of one bulk ingest and the state of each, so a restarted server resumes the plan.

Every row is keyed by the backend's identity (`Backend.identity`): the cloud under one key and each
sandbox never share an entry, even if two of them ever shared a state folder.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

FILE_NAME = "ingest.sqlite3"

UploadState = Literal["sending", "done"]
FileStatus = Literal["pending", "uploaded", "reused", "skipped", "failed"]


@dataclass(frozen=True)
class Upload:
    """A ledger entry: `asset_id` is None while the upload is only intended (`sending`)."""

    key: str
    state: UploadState
    asset_id: str | None
    filename: str | None


@dataclass
class PlanFile:
    """One file (or URL) of a bulk plan and what happened to it."""

    position: int
    source: str
    status: FileStatus = "pending"
    asset_id: str | None = None
    detail: str | None = None
    indexed_asset_id: str | None = None
    item_id: str | None = None


@dataclass
class Plan:
    plan_id: str
    owner: str
    #: The arguments that made the plan (JSON-able), shown back to the caller who resumes it.
    spec: dict[str, object]
    files: list[PlanFile]
    finished: bool = False


class IngestLedger(Protocol):
    """The upload ledger and the bulk plans of one backend."""

    def upload(self, key: str) -> Upload | None: ...

    def claim_upload(
        self, key: str, filename: str | None, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> Upload | None:
        """Record that `runner` is about to send `key` (an intent, kept until recorded or forgotten, with the
        file name first given): None
        when it may, else the entry that stops it: done already, or being sent by another process (whose
        lease lasts and which `alive` says may still run)."""

    def renew_uploads(self, runner: str, lease_s: float) -> None:
        """Extend the leases of the uploads `runner` is sending."""

    def release_upload(self, key: str, runner: str) -> None:
        """`runner` no longer sends `key` (its answer was lost); the intent stays for the next sender."""

    def record_upload(self, key: str, asset_id: str, filename: str | None) -> None: ...

    def forget_upload(self, key: str) -> None:
        """The asset is gone upstream (or the intended upload never arrived): upload it again next time."""

    def registration(self, asset_id: str, destination: str) -> tuple[bool, str | None]:
        """(an attempt was recorded, the id it made) for `asset_id` in `destination` (`index:…`/`store:…`)."""

    def claim_registration(
        self, asset_id: str, destination: str, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> tuple[bool, str | None] | None:
        """Make `runner` the one process registering `asset_id` in `destination` (released after): None
        while another holds it (its lease lasts and `alive` says it may run), else what `registration`
        said just before; the claim counts as an attempt from then on."""

    def release_registration(self, asset_id: str, destination: str, runner: str) -> None: ...

    def intend_registration(self, asset_id: str, destination: str) -> None:
        """Record that a registration is about to be sent (replacing one whose id no longer exists)."""

    def record_registration(self, asset_id: str, destination: str, ref_id: str) -> None: ...

    def plan(self, plan_id: str) -> Plan | None: ...

    def save_plan(self, plan: Plan) -> None:
        """Store `plan` and its files, replacing any plan of that id."""

    def update_file(self, plan_id: str, file: PlanFile) -> None: ...

    def finish_plan(self, plan_id: str) -> None: ...

    def claim_plan(
        self, plan_id: str, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> tuple[str, str | None] | None:
        """Make `runner` the one process working on the plan for `lease_s`: None when it now is, else
        (the holder, its job id) while a claim lasts (`runner`'s own, or another whose `alive` is true)."""

    def renew_plan(self, plan_id: str, runner: str, lease_s: float, *, job_id: str | None = None) -> None:
        """Extend `runner`'s claim (and name its job, once it has one)."""

    def release_plan(self, plan_id: str, runner: str) -> None: ...

    def close(self) -> None: ...


_DDL = """
CREATE TABLE IF NOT EXISTS uploads (
    backend TEXT NOT NULL, content_key TEXT NOT NULL, state TEXT NOT NULL,
    asset_id TEXT, filename TEXT, updated REAL NOT NULL, runner TEXT, lease_until REAL,
    PRIMARY KEY (backend, content_key)
);
CREATE TABLE IF NOT EXISTS registrations (
    backend TEXT NOT NULL, asset_id TEXT NOT NULL, destination TEXT NOT NULL, ref_id TEXT,
    updated REAL NOT NULL, runner TEXT, lease_until REAL,
    PRIMARY KEY (backend, asset_id, destination)
);
CREATE TABLE IF NOT EXISTS plans (
    backend TEXT NOT NULL, plan_id TEXT NOT NULL, owner TEXT NOT NULL, spec TEXT NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL,
    runner TEXT, job_id TEXT, lease_until REAL,
    PRIMARY KEY (backend, plan_id)
);
CREATE TABLE IF NOT EXISTS plan_files (
    backend TEXT NOT NULL, plan_id TEXT NOT NULL, position INTEGER NOT NULL, source TEXT NOT NULL,
    status TEXT NOT NULL, asset_id TEXT, detail TEXT, indexed_asset_id TEXT, item_id TEXT,
    PRIMARY KEY (backend, plan_id, position)
);
"""

#: Finished plans are kept this long (for a repeated call to report on), then dropped.
KEEP_FINISHED_S = 30 * 24 * 3600.0


class SqliteIngestLedger:
    """`IngestLedger` in one SQLite file (WAL) in the backend's state folder; safe across processes."""

    def __init__(self, state_dir: Path, identity: str) -> None:
        self._path = state_dir / FILE_NAME
        self._backend = identity
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        """Opened on first use, so a server that never ingests in bulk writes nothing to its state folder."""
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # One connection for the event loop and worker threads alike, one statement at a time (_lock).
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_DDL)
            # Ledgers written before uploads had a sender keep opening: the columns are added.
            for table in ("uploads", "registrations"):
                have = {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}
                for column, kind in (("runner", "TEXT"), ("lease_until", "REAL")):
                    if column not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            cutoff = time.time() - KEEP_FINISHED_S
            db.execute(
                "DELETE FROM plan_files WHERE backend = ? AND plan_id IN (SELECT plan_id FROM plans "
                "WHERE backend = ? AND finished = 1 AND updated < ?)",
                (self._backend, self._backend, cutoff),
            )
            db.execute(
                "DELETE FROM plans WHERE backend = ? AND finished = 1 AND updated < ?",
                (self._backend, cutoff),
            )
            self._conn = db
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: Sequence[object]) -> tuple[object, ...] | None:
        with self._lock:
            row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def upload(self, key: str) -> Upload | None:
        row = self._one(
            "SELECT state, asset_id, filename FROM uploads WHERE backend = ? AND content_key = ?",
            (self._backend, key),
        )
        if row is None:
            return None
        state: UploadState = "done" if row[0] == "done" else "sending"
        return Upload(key, state, _str(row[1]), _str(row[2]))

    def claim_upload(
        self, key: str, filename: str | None, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> Upload | None:
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT state, asset_id, filename, runner, lease_until FROM uploads "
                "WHERE backend = ? AND content_key = ?",
                (self._backend, key),
            ).fetchone()
            if row is not None:
                found = Upload(key, "done" if row[0] == "done" else "sending", _str(row[1]), _str(row[2]))
                holder, until = _str(row[3]), row[4]
                if found.state == "done" or (
                    holder and holder != runner and (until or 0.0) > now and alive(holder)
                ):
                    return found
            # A file name already recorded stays: it is the name a lost upload is looked up by.
            db.execute(
                "INSERT INTO uploads (backend, content_key, state, filename, updated, runner, lease_until) "
                "VALUES (?, ?, 'sending', ?, ?, ?, ?) ON CONFLICT (backend, content_key) DO UPDATE SET "
                "updated = excluded.updated, runner = excluded.runner, lease_until = excluded.lease_until",
                (self._backend, key, filename, now, runner, now + lease_s),
            )
        return None

    def renew_uploads(self, runner: str, lease_s: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE uploads SET lease_until = ? WHERE backend = ? AND runner = ? AND state = 'sending'",
                (time.time() + lease_s, self._backend, runner),
            )

    def release_upload(self, key: str, runner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE uploads SET runner = NULL, lease_until = NULL "
                "WHERE backend = ? AND content_key = ? AND runner = ?",
                (self._backend, key, runner),
            )

    def record_upload(self, key: str, asset_id: str, filename: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads (backend, content_key, state, asset_id, filename, updated) "
                "VALUES (?, ?, 'done', ?, ?, ?)",
                (self._backend, key, asset_id, filename, time.time()),
            )

    def forget_upload(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE backend = ? AND content_key = ?", (self._backend, key))

    def registration(self, asset_id: str, destination: str) -> tuple[bool, str | None]:
        row = self._one(
            "SELECT ref_id FROM registrations WHERE backend = ? AND asset_id = ? AND destination = ?",
            (self._backend, asset_id, destination),
        )
        return (row is not None, _str(row[0]) if row else None)

    def claim_registration(
        self, asset_id: str, destination: str, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> tuple[bool, str | None] | None:
        now = time.time()
        where = (self._backend, asset_id, destination)
        with self._tx() as db:
            row = db.execute(
                "SELECT ref_id, runner, lease_until FROM registrations "
                "WHERE backend = ? AND asset_id = ? AND destination = ?",
                where,
            ).fetchone()
            if row is not None:
                holder, until = _str(row[1]), row[2]
                if holder and holder != runner and (until or 0.0) > now and alive(holder):
                    return None
            db.execute(
                "INSERT INTO registrations (backend, asset_id, destination, ref_id, updated, runner, "
                "lease_until) VALUES (?, ?, ?, NULL, ?, ?, ?) ON CONFLICT (backend, asset_id, destination) "
                "DO UPDATE SET runner = excluded.runner, lease_until = excluded.lease_until",
                (*where, now, runner, now + lease_s),
            )
        return (row is not None, _str(row[0]) if row else None)

    def release_registration(self, asset_id: str, destination: str, runner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE registrations SET runner = NULL, lease_until = NULL "
                "WHERE backend = ? AND asset_id = ? AND destination = ? AND runner = ?",
                (self._backend, asset_id, destination, runner),
            )

    def intend_registration(self, asset_id: str, destination: str) -> None:
        with self._tx() as db:
            # Its claim (runner, lease) stays: the registration is still being sent by that process.
            db.execute(
                "INSERT INTO registrations (backend, asset_id, destination, ref_id, updated) "
                "VALUES (?, ?, ?, NULL, ?) ON CONFLICT (backend, asset_id, destination) "
                "DO UPDATE SET ref_id = NULL, updated = excluded.updated",
                (self._backend, asset_id, destination, time.time()),
            )

    def record_registration(self, asset_id: str, destination: str, ref_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO registrations (backend, asset_id, destination, ref_id, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                (self._backend, asset_id, destination, ref_id, time.time()),
            )

    def plan(self, plan_id: str) -> Plan | None:
        with self._lock:
            head = self._db.execute(
                "SELECT owner, spec, finished FROM plans WHERE backend = ? AND plan_id = ?",
                (self._backend, plan_id),
            ).fetchone()
            if head is None:
                return None
            rows = self._db.execute(
                "SELECT position, source, status, asset_id, detail, indexed_asset_id, item_id "
                "FROM plan_files WHERE backend = ? AND plan_id = ? ORDER BY position",
                (self._backend, plan_id),
            ).fetchall()
        files = [PlanFile(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]
        return Plan(plan_id, head[0], json.loads(head[1]), files, finished=bool(head[2]))

    def save_plan(self, plan: Plan) -> None:
        with self._tx() as db:
            key = (self._backend, plan.plan_id)
            db.execute("DELETE FROM plan_files WHERE backend = ? AND plan_id = ?", key)
            db.execute(
                "INSERT OR REPLACE INTO plans (backend, plan_id, owner, spec, finished, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (*key, plan.owner, json.dumps(plan.spec), int(plan.finished), time.time()),
            )
            db.executemany(
                "INSERT INTO plan_files (backend, plan_id, position, source, status, asset_id, detail, "
                "indexed_asset_id, item_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        *key,
                        f.position,
                        f.source,
                        f.status,
                        f.asset_id,
                        f.detail,
                        f.indexed_asset_id,
                        f.item_id,
                    )
                    for f in plan.files
                ],
            )

    def update_file(self, plan_id: str, file: PlanFile) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE plan_files SET status = ?, asset_id = ?, detail = ?, indexed_asset_id = ?, "
                "item_id = ? WHERE backend = ? AND plan_id = ? AND position = ?",
                (
                    file.status,
                    file.asset_id,
                    file.detail,
                    file.indexed_asset_id,
                    file.item_id,
                    self._backend,
                    plan_id,
                    file.position,
                ),
            )

    def finish_plan(self, plan_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE plans SET finished = 1, updated = ? WHERE backend = ? AND plan_id = ?",
                (time.time(), self._backend, plan_id),
            )

    def claim_plan(
        self, plan_id: str, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> tuple[str, str | None] | None:
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT runner, job_id, lease_until FROM plans WHERE backend = ? AND plan_id = ?",
                (self._backend, plan_id),
            ).fetchone()
            if row is None:
                raise KeyError(plan_id)
            holder, holder_job, until = row
            if holder and (until or 0.0) > now and (holder == runner or alive(holder)):
                return holder, holder_job
            db.execute(
                "UPDATE plans SET runner = ?, job_id = NULL, lease_until = ? "
                "WHERE backend = ? AND plan_id = ?",
                (runner, now + lease_s, self._backend, plan_id),
            )
        return None

    def renew_plan(self, plan_id: str, runner: str, lease_s: float, *, job_id: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE plans SET lease_until = ?, job_id = coalesce(?, job_id) "
                "WHERE backend = ? AND plan_id = ? AND runner = ?",
                (time.time() + lease_s, job_id, self._backend, plan_id, runner),
            )

    def release_plan(self, plan_id: str, runner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE plans SET runner = NULL, job_id = NULL, lease_until = NULL "
                "WHERE backend = ? AND plan_id = ? AND runner = ?",
                (self._backend, plan_id, runner),
            )

    async def aclose(self) -> None:
        """For `contextlib.aclosing` beside the server's other async resources."""
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
