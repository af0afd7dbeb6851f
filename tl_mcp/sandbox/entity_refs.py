"""Entity search offline: `<@entity_id>` in a search's `query_text` resolved to the entity's reference
pictures, and moments ranked by how much their key frames look like them.

The cloud recognises the person or object itself; the sandbox cannot. What it does for real is compare
the analysed pictures of the entity's assets (an image asset's picture, a video asset's key frames) with
each indexed segment's key frame, by the same image embedder that image queries use. The note it returns
says exactly that, and search puts it in the response for the caller to show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.errors import ApiError, invalid
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.retrieval import Moment, rank_image
from tl_mcp.sandbox.store import entities

#: `<@entity_id>`, as the contract spells an entity inside `query_text`.
ENTITY_REF = re.compile(r"<@([^<>]*)>")


@dataclass(frozen=True)
class ReferencedEntity:
    entity_id: str
    name: str
    pictures: list[FloatArray]


@dataclass(frozen=True)
class EntityQuery:
    entities: list[ReferencedEntity]
    #: The query with the references taken out (what else the caller asked for), or None.
    rest: str | None

    @property
    def note(self) -> str:
        who = ", ".join(f"{e.name} ({len(e.pictures)} reference picture(s))" for e in self.entities)
        text = (
            f"entity search offline is visual similarity of indexed key frames to the entity's reference "
            f"images, not identity recognition: it finds frames that look like the pictures of {who}, not "
            "the person or object itself"
        )
        if self.rest:
            text += (
                f"; the rest of the query ({self.rest!r}) only re-orders them: moments whose on-screen text "
                "or speech matches it best come first"
            )
        return text

    def describe(self) -> dict[str, object]:
        """`search_metadata.entity_search` of the response: how the entities were matched, for clients to
        show (the cloud's responses have no such field; this one tells what the sandbox did instead)."""
        return {
            "method": "reference_image_similarity",
            "entities": [
                {"entity_id": e.entity_id, "name": e.name, "reference_pictures": len(e.pictures)}
                for e in self.entities
            ],
            "note": self.note,
        }


def resolve(engine: Engine, query_text: str | None) -> EntityQuery | None:
    """The entities `query_text` names, with the pictures to compare; None when it names none.

    Every reference must name an existing entity that is ready and has at least one picture; otherwise the
    search is refused with what to fix (nothing else happens).
    """
    if not query_text or "<@" not in query_text:
        return None
    named = ENTITY_REF.findall(query_text)
    if len(named) != query_text.count("<@"):
        raise invalid("`query_text` has `<@` without a closing `>`; name an entity as `<@entity_id>`.")
    ids = list(dict.fromkeys(named))
    found: list[ReferencedEntity] = []
    for entity_id in ids:
        if not entity_id.strip() or entity_id != entity_id.strip():
            raise invalid(
                f"`<@{entity_id}>` in `query_text` is not an entity id; write `<@entity_id>` with no spaces."
            )
        row = entities.entity_by_id(engine.db, entity_id)
        if row is None:
            raise invalid(
                f"Entity `{entity_id}` (named as `<@{entity_id}>` in `query_text`) does not exist; list the "
                "entities of your collections (GET /entity-collections/{id}/entities) for their ids."
            )
        if entities.status(engine.db, entity_id) != "ready":
            raise ApiError(
                400,
                "entity_not_ready",
                f"Entity `{entity_id}` is still processing (its reference assets are being analysed); retry "
                "when its status is ready.",
            )
        pictures = _pictures(engine, entities.asset_ids(engine.db, entity_id))
        if not pictures:
            raise invalid(
                f"Entity `{entity_id}` has no analysed picture to compare with (its assets have no image or "
                "key frame); add an image asset of it (POST .../entities/{id}/assets)."
            )
        found.append(ReferencedEntity(entity_id, str(row["name"]), pictures))
    rest = " ".join(ENTITY_REF.sub(" ", query_text).split())
    return EntityQuery(found, rest or None)


def rank(indexes: list[AssetIndex], query: EntityQuery, text_moments: list[Moment]) -> list[Moment]:
    """Segments that look like every named entity, scored by the least similar of them (all must be seen),
    ordered by how well they match the rest of the query (`text_moments`), then by that likeness."""
    best: dict[tuple[str, int], Moment] | None = None
    for entity in query.entities:
        hits = {(m.asset_id, m.segment): m for m in rank_image(indexes, entity.pictures)}
        if best is None:
            best = hits
        else:
            best = {key: min(m, hits[key], key=lambda x: x.score) for key, m in best.items() if key in hits}
    said = {(m.asset_id, m.segment): m.score for m in text_moments}
    moments = list((best or {}).values())
    moments.sort(key=lambda m: (-said.get((m.asset_id, m.segment), 0.0), -m.score, m.asset_id, m.start))
    return moments


def _pictures(engine: Engine, asset_ids: list[str]) -> list[FloatArray]:
    out: list[FloatArray] = []
    for asset_id in asset_ids:
        index = engine.asset_index(asset_id)
        if index is not None and index.image_vecs is not None:
            out.extend(np.asarray(v) for v in index.image_vecs)
    return out
