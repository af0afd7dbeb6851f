"""The ``jockey_sessions``, ``jockey_turns`` and ``jockey_turn_moments`` tables (a Jockey conversation,
its turns and the moments each turn cited): the only SQL that reads or writes their rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.store.db import Database, dumps, loads, now_iso


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    store_id: str
    selections: list[dict[str, Any]]
    messages: int


@dataclass(frozen=True, slots=True)
class TurnRecord:
    question: str
    #: The retrieval query the turn ran (the question widened by earlier ones).
    query: str
    answer: str


def get(db: Database, session_id: str) -> SessionRecord | None:
    row = db.one("SELECT * FROM jockey_sessions WHERE id = ?", (session_id,))
    if row is None:
        return None
    return SessionRecord(row["id"], row["store_id"], loads(row["selections"]) or [], int(row["messages"]))


def turns(db: Database, session_id: str) -> list[TurnRecord]:
    """The session's turns, oldest first."""
    rows = db.all(
        "SELECT query, question, answer FROM jockey_turns WHERE session_id = ? ORDER BY turn", (session_id,)
    )
    return [TurnRecord(r["question"], r["query"], r["answer"]) for r in rows]


def last_moments(db: Database, session_id: str) -> list[dict[str, Any]]:
    """The moments the session's latest turn cited (as saved), best first."""
    rows = db.all(
        "SELECT moment FROM jockey_turn_moments WHERE session_id = ? AND turn = "
        "(SELECT MAX(turn) FROM jockey_turns WHERE session_id = ?) ORDER BY rank",
        (session_id, session_id),
    )
    return [loads(r["moment"]) for r in rows]


def save_turn(
    db: Database,
    session: SessionRecord,
    *,
    new: bool,
    response_id: str,
    question: str,
    query: str,
    answer: str,
    moments: Sequence[dict[str, Any]],
) -> None:
    """Create (``new``) or update the session and append one turn with the moments it cited, at once."""
    stamp = now_iso()
    with db.tx() as conn:
        if new:
            conn.execute(
                "INSERT INTO jockey_sessions (id, store_id, selections, messages, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (session.id, session.store_id, dumps(session.selections), session.messages, stamp, stamp),
            )
        else:
            conn.execute(
                "UPDATE jockey_sessions SET selections = ?, messages = ?, updated_at = ? WHERE id = ?",
                (dumps(session.selections), session.messages, stamp, session.id),
            )
        turn = conn.execute(
            "SELECT COALESCE(MAX(turn), -1) + 1 AS n FROM jockey_turns WHERE session_id = ?", (session.id,)
        ).fetchone()["n"]
        conn.execute(
            "INSERT INTO jockey_turns (session_id, turn, response_id, question, query, answer, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session.id, turn, response_id, question, query, answer, stamp),
        )
        conn.executemany(
            "INSERT INTO jockey_turn_moments (session_id, turn, rank, moment) VALUES (?, ?, ?, ?)",
            [(session.id, turn, rank, dumps(moment)) for rank, moment in enumerate(moments)],
        )
