"""Jockey sessions: opening one (new or resumed, with its earlier questions) and its selections' scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from tl_mcp.sandbox.errors import found, invalid
from tl_mcp.sandbox.jockey.request import TurnRequest
from tl_mcp.sandbox.knowledge.models import Evidence, JsonObj
from tl_mcp.sandbox.knowledge.service import KnowledgeService
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.ids import new_id


@dataclass(slots=True)
class Session:
    id: str
    store_id: str
    selections: list[JsonObj]
    messages: int
    #: The retrieval queries of earlier turns, oldest first (they widen short follow-ups).
    questions: list[str]
    new: bool
    #: Earlier turns as (question, answer), oldest first: what a model answerer is shown.
    history: list[tuple[str, str]] = field(default_factory=list)
    #: The moments the previous turn cited, best first: what "that part" points at.
    last_moments: list[Evidence] = field(default_factory=list)


def open_session(svc: KnowledgeService, turn: TurnRequest) -> Session:
    if turn.session_id is None:
        return Session(new_id("sess"), turn.knowledge_store_id, list(turn.selections), 0, [], True)
    row = svc.db.one("SELECT * FROM jockey_sessions WHERE id = ?", (turn.session_id,))
    row = found(row, turn.session_id, "sessions")
    if row["store_id"] != turn.knowledge_store_id:
        raise invalid(
            f"Session `{turn.session_id}` belongs to knowledge store `{row['store_id']}`, not "
            f"`{turn.knowledge_store_id}`. Use the same store on every turn, or omit `session_id` to start "
            "a new session."
        )
    rows = svc.db.all(
        "SELECT query, question, answer FROM jockey_turns WHERE session_id = ? ORDER BY turn",
        (turn.session_id,),
    )
    selections = loads(row["selections"]) or []
    for sel in turn.selections:
        if sel not in selections:
            selections.append(sel)
    return Session(
        row["id"],
        row["store_id"],
        selections,
        int(row["messages"]),
        [r["query"] for r in rows],
        False,
        [(r["question"], r["answer"]) for r in rows],
        _last_moments(svc, turn.session_id),
    )


def _last_moments(svc: KnowledgeService, session_id: str) -> list[Evidence]:
    rows = svc.db.all(
        "SELECT moment FROM jockey_turn_moments WHERE session_id = ? AND turn = "
        "(SELECT MAX(turn) FROM jockey_turns WHERE session_id = ?) ORDER BY rank",
        (session_id, session_id),
    )
    return [moment_of(loads(r["moment"])) for r in rows]


def moment_json(moment: Evidence) -> JsonObj:
    return asdict(moment)


def moment_of(data: JsonObj) -> Evidence:
    return Evidence(**{**data, "context": tuple((str(s), str(t)) for s, t in data.get("context") or ())})


def validate_selections(
    svc: KnowledgeService, store_id: str, selections: Sequence[JsonObj]
) -> list[str] | None:
    """Item ids the selections point at (None when there are none)."""
    if not selections:
        return None
    ids: list[str] = []
    for sel in selections:
        if sel["kind"] == "item":
            if (
                svc.db.one("SELECT id FROM ks_items WHERE id = ? AND store_id = ?", (sel["id"], store_id))
                is None
            ):
                raise invalid(f"Selection `{sel['id']}` is not an item of knowledge store `{store_id}`.")
            ids.append(sel["id"])
        else:
            if (
                svc.db.one(
                    "SELECT id FROM ks_collections WHERE id = ? AND store_id = ?", (sel["id"], store_id)
                )
                is None
            ):
                raise invalid(
                    f"Selection `{sel['id']}` is not an item collection of knowledge store `{store_id}`."
                )
            ids.extend(svc.collection_item_ids(sel["id"]))
    return list(dict.fromkeys(ids))
