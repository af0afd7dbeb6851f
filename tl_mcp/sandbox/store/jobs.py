"""The durable job queue: every background step is a row in ``jobs``, run by one worker thread. This is
the only SQL on ``jobs``.

The worker takes queued jobs in order; at startup, jobs left ``running`` by a crash are re-queued (and given
up after ``MAX_ATTEMPTS``, which calls the kind's ``failed`` so its owner marks its asset / indexed asset /
task failed), so a ``kill -9`` at any moment leaves a consistent state.

The queue knows nothing of what jobs do: :class:`Worker` entries (kind -> run, failed) are handed to it by
the app (``tl_mcp.sandbox.app.WORKERS``), with the context object they run against. It sits in ``store``,
below the engine that owns it and the ``work`` modules that run on it, so neither depends on the other.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tl_mcp.sandbox.media import MediaError
from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso
from tl_mcp.sandbox.store.ids import new_id

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Worker(Generic[C]):
    """One kind of background work. ``run(context, ref, payload)`` raising marks the job failed and calls
    ``failed(context, ref, message)``, so the job's owner can mark what it was working on failed too."""

    run: Callable[[C, str, dict[str, Any]], None]
    failed: Callable[[C, str, str], None]


class JobQueue(Generic[C]):
    def __init__(self, db: Database, workers: Mapping[str, Worker[C]], context: C) -> None:
        self.db = db
        self.workers = workers
        self.context = context
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tl-mcp-sandbox-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("sandbox worker did not stop within %.0fs (a long analysis is running)", timeout)
            self._thread = None

    def recover(self) -> None:
        """Re-queue jobs a crash interrupted; give up on those interrupted too often."""
        rows = self.db.all("SELECT id, kind, ref, attempts FROM jobs WHERE status='running'")
        for row in rows:
            if row["attempts"] >= MAX_ATTEMPTS:
                message = f"processing was interrupted {row['attempts']} times (server restarts); giving up"
                self._give_up(row["id"], row["kind"], row["ref"], message)
            else:
                log.info("resuming interrupted %s job for %s", row["kind"], row["ref"])
                self.db.run(
                    "UPDATE jobs SET status='queued', updated_at=? WHERE id=?", (now_iso(), row["id"])
                )
        if rows:
            self._wake.set()

    def enqueue(self, kind: str, ref: str, payload: dict[str, Any] | None = None) -> str:
        with self.db.tx() as conn:
            job_id = self.add(conn, kind, ref, payload)
        self.wake()
        return job_id

    def add(
        self, conn: sqlite3.Connection, kind: str, ref: str, payload: dict[str, Any] | None = None
    ) -> str:
        """Queue a job inside the caller's transaction, so it exists exactly when the rows it works on do;
        call :meth:`wake` once that transaction has committed."""
        job_id, now = new_id(), now_iso()
        conn.execute(
            "INSERT INTO jobs(id, kind, ref, status, payload, created_at, updated_at) VALUES(?,?,?,?,?,?,?)",
            (job_id, kind, ref, "queued", dumps(payload or {}), now, now),
        )
        return job_id

    def wake(self) -> None:
        self._wake.set()

    def drop_queued(self, conn: sqlite3.Connection, kind: str, ref: str) -> None:
        """Retire the queued jobs of ``kind`` for ``ref`` (its rows are being deleted in ``conn``)."""
        conn.execute("UPDATE jobs SET status='done' WHERE kind=? AND ref=? AND status='queued'", (kind, ref))

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no job is queued or running; code driving the engine directly waits on this."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.db.one("SELECT 1 FROM jobs WHERE status IN ('queued','running') LIMIT 1"):
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            row = self.db.one("SELECT * FROM jobs WHERE status='queued' ORDER BY created_at, rowid LIMIT 1")
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            with self.db.tx() as conn:
                claimed = conn.execute(
                    "UPDATE jobs SET status='running', attempts=attempts+1, updated_at=? "
                    "WHERE id=? AND status='queued'",
                    (now_iso(), row["id"]),
                ).rowcount
            if not claimed:
                continue
            self._execute(row["id"], row["kind"], row["ref"], loads(row["payload"]) or {})

    def _execute(self, job_id: str, kind: str, ref: str, payload: dict[str, Any]) -> None:
        worker = self.workers.get(kind)
        try:
            if worker is None:
                raise RuntimeError(f"unknown job kind {kind!r}")
            worker.run(self.context, ref, payload)
        except Exception as exc:
            message = exc.message if isinstance(exc, MediaError) else str(exc) or type(exc).__name__
            if not isinstance(exc, MediaError):
                log.exception("%s job for %s failed", kind, ref)
            self._give_up(job_id, kind, ref, message)
            return
        self.db.run("UPDATE jobs SET status='done', updated_at=? WHERE id=?", (now_iso(), job_id))

    def _give_up(self, job_id: str, kind: str, ref: str, message: str) -> None:
        self.db.run(
            "UPDATE jobs SET status='failed', error=?, updated_at=? WHERE id=?", (message, now_iso(), job_id)
        )
        worker = self.workers.get(kind)
        if worker is None:
            return
        try:
            worker.failed(self.context, ref, message)
        except Exception:
            log.exception("failure hook for %s %s raised", kind, ref)
