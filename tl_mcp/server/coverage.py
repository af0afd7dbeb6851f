"""What TwelveLabs offers, and where each capability is in tl-mcp: the README's coverage table.

One row per capability a user of the API (the seeds, the v1.3 contract) or of the official TwelveLabs MCP
server (its 24 tools, by name) reaches for. Each row names the tl-mcp tools (or the resource, prompt or
setting) that give it, and what it does on the cloud and on the offline sandbox. tests/server/
test_coverage.py keeps the table honest: every tool named exists, every tool appears in a row, every
official tool is answered by a row, and a row with no tool says why.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capability:
    area: str
    capability: str
    #: tl-mcp tools that do it; empty when it is reached another way (`how`) or not offered (`how` says why).
    tools: tuple[str, ...]
    #: The official TwelveLabs MCP server's tools this row answers to (see shared/reference/anchors.md).
    official: tuple[str, ...] = ()
    cloud: str = "yes"
    sandbox: str = "yes"
    how: str = ""


YES = "yes"

COVERAGE: tuple[Capability, ...] = (
    # ---------------------------------------------------------------------------------------- indexes
    Capability(
        "Indexes", "Create a search index (Marengo, chosen modalities)", ("create_index",), ("create-index",)
    ),
    Capability("Indexes", "List indexes", ("list_indexes",), ("list-indexes",)),
    Capability("Indexes", "Delete an index", ("delete_index",), ("delete-index",)),
    # ----------------------------------------------------------------------------------------- ingest
    Capability(
        "Ingest",
        "Upload a local file (direct, or multipart for big files) or a URL as an asset",
        ("upload_asset",),
        ("create-asset",),
        how="local files only inside `--allow-dir` folders; never base64 through arguments",
    ),
    Capability(
        "Ingest",
        "Index an uploaded video and follow the indexing",
        ("upload_asset", "wait_for_task"),
        ("start-video-indexing-task", "get-video-indexing-tasks"),
    ),
    Capability(
        "Ingest",
        "Upload a whole folder or a list of URLs",
        ("bulk_ingest",),
        ("start-video-indexing-task",),
        how="one job, resumable after a restart; content uploaded before is reused, not paid twice",
    ),
    Capability("Ingest", "Delete an asset", ("delete_asset",), ("delete-asset",)),
    Capability("Ingest", "List uploaded assets, by type or file name", ("list_assets",)),
    # --------------------------------------------------------------------------------------- metadata
    Capability(
        "Metadata",
        "User metadata on upload (asset, video, store item): text, numbers, booleans, lists of text",
        ("upload_asset", "add_to_knowledge_store"),
        ("start-video-indexing-task",),
    ),
    Capability(
        "Metadata",
        "Edit or delete the user metadata of an asset or an indexed video (PUT / PATCH)",
        ("update_metadata",),
        how="the official server has no metadata update",
    ),
    Capability(
        "Metadata",
        "Filter search by system fields and metadata keys (the search filter language)",
        ("search_videos",),
        ("search",),
        sandbox="yes: the documented grammar, parsed and applied; a filter that does not parse is a 400",
    ),
    Capability(
        "Metadata",
        "List videos by indexing status, media ranges, dates and metadata",
        ("list_videos",),
        ("list-videos", "get-video-indexing-tasks"),
    ),
    # ----------------------------------------------------------------------------------------- videos
    Capability("Videos", "List the videos of an index", ("list_videos",), ("list-videos",)),
    Capability(
        "Videos",
        "Inspect an indexed video (file, duration, URLs, transcript)",
        ("get_video",),
        ("get-indexed-asset",),
        sandbox="yes (transcript from offline speech recognition)",
    ),
    Capability("Videos", "Remove a video from an index", ("delete_video",)),
    # ----------------------------------------------------------------------------------------- search
    Capability(
        "Search",
        "Find moments by text (visual, audio, transcription)",
        ("search_videos",),
        ("search",),
        sandbox="yes: speech, on-screen text and semantic text match; no text→visual model offline",
    ),
    Capability(
        "Search",
        "Find moments like an example image",
        ("search_videos",),
        ("search",),
        sandbox="yes: frame similarity",
    ),
    Capability(
        "Search",
        "Label the videos of an index with classes (the old /classify)",
        ("classify_videos",),
        sandbox="yes: through the same search",
    ),
    # ---------------------------------------------------------------------------------------- analyze
    Capability(
        "Analyze",
        "Ask an open-ended question about one video, optionally as JSON (Pegasus)",
        ("analyze_video",),
        ("sync-analyse-video",),
        how="`image` prompts (1-20, pegasus1.6) too",
        sandbox="extractive: built from the video's transcript and on-screen text, and says so",
    ),
    Capability(
        "Analyze",
        "Summary, chapters, highlights of one video",
        ("summarize_video",),
        sandbox="extractive, and says so",
    ),
    Capability(
        "Analyze",
        "Async analysis tasks: time-based segments with custom fields (time_array on pegasus1.6), long "
        "videos; follow one to its segments (start, end, fields)",
        ("start_analysis_task", "wait_for_task"),
        ("async-analyse-video", "get-analyse-task"),
        how="toolset `analysis_tasks` (off by default); a repeated call reuses its task, not paid twice",
        sandbox="yes: a segment is a scene whose speech, subtitles or on-screen text match; says so",
    ),
    Capability(
        "Analyze",
        "Batches: one prompt or set of segment definitions over many videos, per-video status and errors",
        ("start_analysis_task",),
        how="`asset_ids`; a video that fails alone does not fail the batch",
    ),
    Capability(
        "Analyze",
        "List, cancel or delete analysis tasks and batches (by status, asset, URL or mode)",
        ("list_analysis_tasks", "cancel_analysis_task", "delete_analysis_task"),
        ("list-analyse-tasks", "delete-analyse-task"),
        how="toolset `analysis_tasks`; delete is in `admin`. Cancelling one that has ended says so and "
        "changes nothing; deleting one still running is refused: cancel it first",
    ),
    # ------------------------------------------------------------------------------------- embeddings
    Capability(
        "Embeddings",
        "Embed text, an image or audio (Marengo)",
        ("create_embedding",),
        sandbox="yes: text with E5; images and audio by local features, not Marengo's shared space",
    ),
    Capability(
        "Embeddings",
        "Embed a video (an embedding task: clip length, clip/video scopes, offsets, modalities, fused) "
        "and follow it",
        ("create_embedding", "wait_for_task"),
        ("start-video-embeddings-task", "get-video-embeddings-tasks"),
        sandbox="yes: every option computed locally; a fused vector is the separate ones side by side "
        "(the result says so); time_based_metadata needs marengo3.5 (cloud, API client only)",
    ),
    Capability(
        "Embeddings",
        "The embeddings of an already indexed video",
        ("create_embedding",),
        ("retrieve-video-embeddings",),
        sandbox="yes: key-frame vectors, sound fingerprints, and the words of each segment",
    ),
    # --------------------------------------------------------------------------------------- entities
    Capability(
        "Entities",
        "Entity collections: create, list, rename, delete",
        (
            "create_entity_collection",
            "list_entity_collections",
            "update_entity_collection",
            "delete_entity_collection",
        ),
        ("create-entity-collection", "list-entity-collections", "delete-entity-collection"),
        how="toolset `entities`, off by default; deletes in `admin`",
    ),
    Capability(
        "Entities",
        "Register a person or object by reference images; list, inspect, update (incl. its images), delete",
        ("create_entity", "list_entities", "get_entity", "update_entity", "delete_entity"),
        ("create-entity", "list-entities", "delete-entity"),
        how="`list_entities` also lists the entities of an asset",
    ),
    Capability(
        "Entities",
        "Find every moment an entity appears (`<@entity_id>` in a search query)",
        ("find_entity_moments", "search_videos"),
        ("search",),
        sandbox="visual similarity of frames to the reference images, not identity recognition, and says so",
    ),
    # ------------------------------------------------------------------------- knowledge stores, Jockey
    Capability(
        "Jockey",
        "Ask about the videos of a knowledge store, with cited moments, streamed",
        ("create_response",),
        how="the official server has no knowledge stores or Jockey",
        sandbox="extractive answers over offline retrieval, and says so",
    ),
    Capability(
        "Jockey",
        "Continue a Jockey session",
        ("continue_session",),
    ),
    Capability(
        "Knowledge stores",
        "Create, list and inspect knowledge stores and their items",
        ("create_knowledge_store", "list_knowledge_stores", "list_knowledge_store_items"),
    ),
    Capability(
        "Knowledge stores",
        "Add an asset to a store, and follow its ingestion",
        ("add_to_knowledge_store", "wait_for_task"),
    ),
    Capability(
        "Knowledge stores",
        "Delete a store, or remove one item",
        ("delete_knowledge_store", "remove_from_knowledge_store"),
    ),
    Capability(
        "Knowledge stores",
        "Store enrichment (`ingestion_config`: a description or a JSON Schema) at creation; name, "
        "description and metadata (string, number, bool, string array) later",
        ("create_knowledge_store", "update_knowledge_store"),
        sandbox="kept and checked as the contract says (422 for an unsupported schema); no enrichment runs "
        "offline, and the result says so",
    ),
    Capability(
        "Knowledge stores",
        "Item collections: create, list, list items, add/remove items; name them in Jockey `selections`",
        (
            "create_item_collection",
            "list_item_collections",
            "list_collection_items",
            "update_item_collection",
        ),
        how="`stores` toolset, off by default",
    ),
    Capability(
        "Knowledge stores",
        "Store search with `group_by`, asset-type/item/collection filters, item metadata, page tokens",
        ("search_knowledge_store",),
        how="`stores` toolset; a collection filter goes out as its item ids, since the API filters by item",
        sandbox="yes: the offline retrieval of `search_videos`",
    ),
    Capability(
        "Jockey",
        "Request `metadata` (the April-2026 docs' ≤ 16 string pairs)",
        (),
        how="not sent: SDK 1.3.6 (which wins over the older docs) has no request `metadata`; the sandbox "
        "still accepts it from April-shape callers",
        cloud="no",
        sandbox="accepted, not used",
    ),
    # ------------------------------------------------------------------------------------- local work
    Capability(
        "Clips",
        "Cut found moments into MP4 files or one highlight reel",
        ("export_clips",),
        how="needs a write folder (`--allow-write-dir`)",
    ),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def coverage_table() -> str:
    lines = [
        "| Area | Capability | tl-mcp | Official server | Cloud | Sandbox |",
        "|---|---|---|---|---|---|",
    ]
    for row in COVERAGE:
        tools = ", ".join(f"`{t}`" for t in row.tools)
        how = _cell(row.how)
        where = f"{tools} ({how})" if tools and how else tools or how
        official = ", ".join(f"`{t}`" for t in row.official) or "—"
        lines.append(
            f"| {row.area} | {_cell(row.capability)} | {where} | {official} | {_cell(row.cloud)} "
            f"| {_cell(row.sandbox)} |"
        )
    return "\n".join(lines) + "\n"
