"""Jockey sessions: opening one (new or resumed, with its earlier questions) and its selections' scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from tl_mcp.sandbox.errors import found, invalid
from tl_mcp.sandbox.jockey.request import TurnRequest
from tl_mcp.sandbox.knowledge.models import Evidence, JsonObj
from tl_mcp.sandbox.knowledge.service import KnowledgeService
from tl_mcp.sandbox.store import jockey_sessions, ks_collections, ks_items
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
    saved = found(jockey_sessions.get(svc.db, turn.session_id), turn.session_id, "sessions")
    if saved.store_id != turn.knowledge_store_id:
        raise invalid(
            f"Session `{turn.session_id}` belongs to knowledge store `{saved.store_id}`, not "
            f"`{turn.knowledge_store_id}`. Use the same store on every turn, or omit `session_id` to start "
            "a new session."
        )
    earlier = jockey_sessions.turns(svc.db, turn.session_id)
    selections = list(saved.selections)
    for sel in turn.selections:
        if sel not in selections:
            selections.append(sel)
    return Session(
        saved.id,
        saved.store_id,
        selections,
        saved.messages,
        [t.query for t in earlier],
        False,
        [(t.question, t.answer) for t in earlier],
        [moment_of(m) for m in jockey_sessions.last_moments(svc.db, turn.session_id)],
    )


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
            if ks_items.get(svc.db, sel["id"], store_id) is None:
                raise invalid(f"Selection `{sel['id']}` is not an item of knowledge store `{store_id}`.")
            ids.append(sel["id"])
        else:
            if ks_collections.get(svc.db, store_id, sel["id"]) is None:
                raise invalid(
                    f"Selection `{sel['id']}` is not an item collection of knowledge store `{store_id}`."
                )
            ids.extend(svc.collection_item_ids(sel["id"]))
    return list(dict.fromkeys(ids))
