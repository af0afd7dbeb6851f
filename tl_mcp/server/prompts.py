"""Recipes for working with a knowledge store through Jockey, each optionally in a domain persona."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from tl_mcp.server.state import AppState

Persona = Literal["security", "media", "compliance", "education"]

#: The domain instructions from TwelveLabs' "Create a response" guide, passed to Jockey as `instructions`.
PERSONAS: dict[str, str] = {
    "security": (
        "You are a security analyst. Prioritize temporal accuracy and flag low-confidence identifications."
    ),
    "media": "You are an editorial assistant. Focus on visual quality, pacing, and narrative arc.",
    "compliance": "You are a compliance reviewer. Identify claims, disclaimers, and required disclosures.",
    "education": (
        "You are a learning designer. Analyze pedagogical effectiveness, teaching methods, and assessment "
        "opportunities."
    ),
}

StoreId = Annotated[str, Field(description="Knowledge store to work on (see twelvelabs://knowledge-stores).")]
PersonaArg = Annotated[
    Persona | None, Field(description="Optional domain lens: security, media, compliance or education.")
]


def _recipe(knowledge_store_id: str, persona: str | None, task: str, follow_up: str) -> str:
    call = f'create_response with knowledge_store_id="{knowledge_store_id}"'
    if persona:
        if persona not in PERSONAS:
            raise ValueError(f"unknown persona {persona!r}; choose one of {', '.join(PERSONAS)}")
        call += f' and instructions="{PERSONAS[persona]}"'
    return (
        f"Use the TwelveLabs tools on knowledge store {knowledge_store_id}.\n\n"
        f"1. Call {call}, asking Jockey: {task}\n"
        "2. Keep the citations: each one names the item or video and the start/end seconds it comes from; "
        "quote them as timestamps when you report back.\n"
        f"3. {follow_up} Use continue_session with the returned session_id, so Jockey keeps the context.\n"
        'If the call returns status "in_progress", call wait_for_task with its job_id until it completes.'
    )


def register_prompts(server: MCPServer[AppState]) -> None:
    @server.prompt(
        title="Corpus overview",
        description="Survey a knowledge store: themes, people, places and how the videos relate.",
    )
    def corpus_overview(knowledge_store_id: StoreId, persona: PersonaArg = None) -> str:
        return _recipe(
            knowledge_store_id,
            persona,
            "What are the main themes across these videos? Group them, name the recurring people, places and "
            "topics, and cite the moments that show each.",
            "Ask which themes deserve a deeper look and drill into the one the user picks.",
        )

    @server.prompt(
        title="Extract entities",
        description="List the people, organizations, objects, places and on-screen text in a store.",
    )
    def extract_entities(knowledge_store_id: StoreId, persona: PersonaArg = None) -> str:
        return _recipe(
            knowledge_store_id,
            persona,
            "List every notable entity (people, organizations, products, places, on-screen text) with the "
            "videos and timestamps where each appears. Pass an output_schema with an array of "
            "{name, type, appearances: [{item, start_sec, end_sec}]} to get it as JSON.",
            "Merge duplicates and ask Jockey about any entity whose identification is uncertain.",
        )

    @server.prompt(
        title="Find moments",
        description="Find the exact moments that match a description, with timestamps.",
    )
    def find_moments(
        knowledge_store_id: StoreId,
        description: Annotated[str, Field(description="What happens in the moments to find.")],
        persona: PersonaArg = None,
    ) -> str:
        return _recipe(
            knowledge_store_id,
            persona,
            f"Find every moment where this happens: {description}. For each, give the video, start and end "
            "time, and one sentence on what is shown. search_videos with the same text is a faster "
            "cross-check.",
            "Ask for the surrounding context of the strongest match.",
        )

    @server.prompt(
        title="Organize collection",
        description="Propose how to group the videos of a knowledge store into collections.",
    )
    def organize_collection(knowledge_store_id: StoreId, persona: PersonaArg = None) -> str:
        return _recipe(
            knowledge_store_id,
            persona,
            "Propose a way to organize these videos into a few collections (by topic, event, audience or "
            "format). For each collection give a name, a one-line description and its items.",
            "Refine the grouping with the user's feedback.",
        )

    @server.prompt(
        title="Track entity",
        description="Follow one person, object or topic across every video, in time order.",
    )
    def track_entity(
        knowledge_store_id: StoreId,
        entity: Annotated[str, Field(description="The person, object or topic to follow.")],
        persona: PersonaArg = None,
    ) -> str:
        return _recipe(
            knowledge_store_id,
            persona,
            f"Track {entity} across all videos: every appearance in time order, what they do or what is said "
            "about them, and how that changes over time.",
            f"Ask for the appearances of {entity} that are least certain and have Jockey double-check them.",
        )

    @server.prompt(
        title="Enrich content",
        description="Write titles, descriptions, tags and chapters for the videos of a knowledge store.",
    )
    def enrich_content(knowledge_store_id: StoreId, persona: PersonaArg = None) -> str:
        return _recipe(
            knowledge_store_id,
            persona,
            "For each video write a title, a two-sentence description, 5-10 tags and a list of chapters with "
            "start times. Pass an output_schema to get it as JSON.",
            "Ask for the chapters of any video whose description seems thin.",
        )
