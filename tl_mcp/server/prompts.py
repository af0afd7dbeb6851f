"""Recipes for working with a knowledge store through Jockey, each optionally in a domain persona.

A bad `prompts/get` (an unknown persona, a missing or unknown argument) is the caller's to fix, so it is
answered as invalid params (-32602) saying what is accepted, never as an internal error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.types import INVALID_PARAMS
from pydantic import Field, ValidationError

from tl_mcp.server.errors import invalid_arguments
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


class CheckedPrompt(Prompt):
    """The SDK's prompt, with argument errors that reach the caller as invalid params."""

    async def render(self, arguments: dict[str, Any] | None, context: Any) -> Any:
        given = arguments or {}
        accepted = [a.name for a in self.arguments or []]
        unknown = sorted(set(given) - set(accepted))
        missing = [a.name for a in self.arguments or [] if a.required and a.name not in given]
        if unknown or missing:
            problems = [f"{n} is not an argument of this prompt" for n in unknown]
            problems += [f"{n} is required" for n in missing]
            raise MCPError(
                INVALID_PARAMS,
                f"Invalid arguments for prompt {self.name}: {'; '.join(problems)}. "
                f"It takes: {', '.join(accepted)}.",
            )
        try:
            return await super().render(arguments, context)
        except ValueError as exc:
            # The SDK wraps the validation error of the prompt's arguments in a bare ValueError.
            if isinstance(exc.__cause__, ValidationError):
                text = invalid_arguments(f"prompt {self.name}", exc.__cause__, accepted)
                raise MCPError(INVALID_PARAMS, text) from None
            raise


def _recipe(knowledge_store_id: str, persona: str | None, task: str, follow_up: str) -> str:
    call = f'create_response with knowledge_store_id="{knowledge_store_id}"'
    if persona:
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
    def prompt(*, title: str, description: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
        def add(fn: Callable[..., str]) -> Callable[..., str]:
            server.add_prompt(CheckedPrompt.from_function(fn, title=title, description=description))
            return fn

        return add

    @prompt(
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

    @prompt(
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

    @prompt(
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

    @prompt(
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

    @prompt(
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

    @prompt(
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
