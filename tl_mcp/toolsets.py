"""The one catalogue of toolsets: id, what it holds, and whether it is on by default.

Settings validate `--toolsets` / `TL_MCP_TOOLSETS` against it, the registry orders tools by it, and
`tl-mcp tools` (the README's tool reference) prints it. It sits beside config.py, not in `server/`,
because settings need it and the sandbox, which reads settings too, must not import the server. Each
tool names its toolset where it is declared (`server/toolspec.py`); which module it lives in is free
(`wait_for_task` lives in tools/tasks.py and belongs to `ingest`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Toolset:
    id: str
    description: str
    default_on: bool = True


#: In the order clients list the tools.
TOOLSETS: tuple[Toolset, ...] = (
    Toolset("jockey", "Ask Jockey about a knowledge store and continue the conversation."),
    Toolset("search", "Find moments in indexed videos by text or image; classify videos."),
    Toolset("embed", "Marengo embeddings of text, images, audio and video."),
    Toolset("ingest", "Upload media and wait for long work (jobs, indexing, store items) to finish."),
    Toolset("library", "List, inspect and create indexes, videos, knowledge stores and their items."),
    Toolset("analyze", "Open-ended analysis and summaries of one video."),
    Toolset(
        "clips",
        "Cut found moments into MP4 files or a highlight reel. On when a write folder is configured.",
        default_on=False,
    ),
    Toolset("admin", "Deletions: every tool here destroys data.", default_on=False),
    Toolset(
        "stores",
        "Knowledge-store depth: store metadata, item collections for Jockey selections, store search with "
        "grouping and filters. Off by default: add `stores` to --toolsets.",
        default_on=False,
    ),
    Toolset(
        "entities",
        "Register people or objects by reference images, find where they appear; add it to --toolsets.",
        default_on=False,
    ),
    Toolset(
        "analysis_tasks",
        "Async Pegasus tasks: timed segments with custom fields, batches; list and cancel them. Off by "
        "default: add it to --toolsets.",
        default_on=False,
    ),
)

ALL_TOOLSETS: tuple[str, ...] = tuple(t.id for t in TOOLSETS)
#: Writes local files: on by default only when a write folder is configured (`Settings.from_sources`).
WRITE_TOOLSET = "clips"
#: On unless asked otherwise: everything but the destructive `admin` and the file-writing `clips`.
DEFAULT_TOOLSETS: tuple[str, ...] = tuple(t.id for t in TOOLSETS if t.default_on)
