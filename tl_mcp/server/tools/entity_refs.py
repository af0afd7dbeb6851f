"""`<@entity_id>` in a search query (entity search): checked before the network, and what the backend
says about how it matched the entities. Shared by `search_videos` and `find_entity_moments`."""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

from tl_mcp.api.models import SearchPage
from tl_mcp.api.resources.entities import ENTITY_REF, referenced_entities


def check_entity_refs(query: str | None, *, knowledge_store: bool) -> list[str]:
    """The entity ids `query` names; a `ToolError` when a reference is malformed or cannot apply."""
    if not query or "<@" not in query:
        return []
    if query.count("<@") != len(ENTITY_REF.findall(query)):
        raise ToolError(
            "The query has a malformed entity reference: write each entity as <@entity_id> (no spaces), "
            "with the id from list_entities."
        )
    if knowledge_store:
        raise ToolError(
            "Entity references (<@entity_id>) work in index search only: pass index_id instead of "
            "knowledge_store_id, or use find_entity_moments."
        )
    return referenced_entities(query)


def entity_search_note(page: SearchPage) -> str | None:
    """How the backend matched the entities, when it says (the offline sandbox: visual similarity to the
    reference images, not identity recognition); None from the cloud, which recognises them."""
    described = (page.search_metadata or {}).get("entity_search")
    note = described.get("note") if isinstance(described, dict) else None
    return note if isinstance(note, str) and note else None
