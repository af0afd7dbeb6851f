"""Toolset `search`: find moments in indexed videos, and classify videos by searching for each class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent
from pydantic import BaseModel, Field

from tl_mcp.api.errors import TwelveLabsError
from tl_mcp.api.models import SearchClip, SearchPage, SearchResult
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.page_tokens import issue, redeem
from tl_mcp.server.results import FILL, Markdown, Page, ToolResult, call, fmt_seconds, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.thumbnails import DURABLE_THUMBNAIL, fetch_thumbnails, thumbnail_uri
from tl_mcp.server.tools._common import Ctx, Id, http_url
from tl_mcp.server.tools.entity_refs import check_entity_refs, entity_search_note
from tl_mcp.server.tools.metadata import FilterArg
from tl_mcp.server.toolspec import ToolSpec, tool

Modality = Literal["visual", "audio", "transcription"]


class SearchMoment(BaseModel):
    video_id: str | None = Field(default=None, description="For get_video.")
    item_id: str | None = None
    start: float = Field(description="Seconds.")
    end: float = Field(description="Seconds.")
    rank: int | None = None
    score: float | None = None
    confidence: str | None = None
    thumbnail_url: str | None = None
    thumbnail_uri: str | None = Field(default=None, description=DURABLE_THUMBNAIL)
    transcription: str | None = None
    modalities: list[str] | None = None
    user_metadata: dict[str, Any] | None = None


class SearchVideosResult(ToolResult):
    moments: list[SearchMoment]
    index_id: str | None = None
    knowledge_store_id: str | None = None
    query: str | None = None
    total_results: int | None = None
    next_page_token: str | None = None
    thumbnails_returned: int = 0


def _moment_line(numbered: tuple[int, SearchMoment]) -> str:
    i, m = numbered
    who = f"video {m.video_id}" if m.video_id else f"item {m.item_id}"
    score = f", score {m.score:g}" if m.score is not None else ""
    conf = f", {m.confidence}" if m.confidence else ""
    said = f' — "{m.transcription[:120]}"' if m.transcription else ""
    meta = f" {m.user_metadata}" if m.user_metadata else ""
    return f"{i}. {who} {fmt_seconds(m.start)}–{fmt_seconds(m.end)}{score}{conf}{said}{meta}"


def _index_moments(page: SearchPage, limit: int, *, durable: bool) -> list[SearchMoment]:
    """`durable`: also name each picture by a resource URI (the sandbox's signed URLs die with its port)."""
    moments: list[SearchMoment] = []
    for result in page.data:
        # group_by=video gives one result per video with its clips; clip mode gives the clips themselves.
        clips: list[SearchClip | SearchResult] = [*(result.clips or [])] or (
            [result] if result.start is not None and result.end is not None else []
        )
        for clip in clips:
            assert clip.start is not None and clip.end is not None
            video_id = clip.video_id or result.id or result.video_id
            moments.append(
                SearchMoment(
                    video_id=video_id,
                    start=clip.start,
                    end=clip.end,
                    rank=clip.rank,
                    score=clip.score,
                    confidence=clip.confidence,
                    thumbnail_url=clip.thumbnail_url,
                    thumbnail_uri=thumbnail_uri(video_id, clip.start)
                    if durable and video_id and clip.thumbnail_url
                    else None,
                    transcription=clip.transcription,
                    user_metadata=clip.user_metadata or result.user_metadata,
                )
            )
    return moments[:limit]


async def _search_index(
    state: AppState,
    *,
    index_id: str | None,
    query: str | None,
    image_path: str | None,
    image_url: str | None,
    modalities: list[Modality],
    operator: Literal["or", "and"] | None,
    group_by: Literal["clip", "video"],
    limit: int,
    page_token: str | None,
    filter: dict[str, Any] | None,
    transcription_options: list[Literal["lexical", "semantic"]] | None,
    include_user_metadata: bool | None,
) -> SearchPage:
    if page_token:
        return await state.client.search.next_page(page_token, include_user_metadata=include_user_metadata)
    assert index_id is not None
    local = state.files.open(image_path) if image_path else None
    try:
        return await state.client.search.query(
            index_id,
            query_text=query,
            query_media_path=local.file if local else None,
            query_media_url=image_url,
            search_options=tuple(modalities),
            operator=operator,
            group_by=group_by,
            page_limit=limit,
            filter=filter,
            transcription_options=transcription_options,
            include_user_metadata=include_user_metadata,
        )
    finally:
        if local is not None:
            local.close()


def _search_scope(
    *, knowledge_store_id: str | None, **index_search: object
) -> tuple[str, dict[str, object], frozenset[str]]:
    """What a page token of this search is bound to. A store's next page is asked for with its store and
    query (both sent again, so both must match); an index's token stands alone, so each argument may be
    left out on the next call, and one that is given must be the first call's."""
    if knowledge_store_id:
        scope = {"knowledge_store_id": knowledge_store_id, "query": index_search["query"]}
        return "a knowledge-store search (search_videos with knowledge_store_id)", scope, frozenset()
    # Defaults travel as None (the caller passes them as such), so leaving one out on the next call
    # matches a first call that spelled it out.
    return "an index search (search_videos with index_id)", index_search, frozenset(index_search)


@tool(toolset="search", title="Search videos for moments", read_only=True, destructive=False, idempotent=True)
async def search_videos(
    ctx: Ctx,
    query: Annotated[
        str | None,
        Field(min_length=1, max_length=500, description="Words to find; <@entity_id> names an entity."),
    ] = None,
    image_path: Annotated[
        str | None, Field(description="Example image: a local file in an allowed folder.")
    ] = None,
    image_url: Annotated[str | None, Field(description="Example image URL.")] = None,
    index_id: Annotated[Id | None, Field(description="Index to search (list_indexes).")] = None,
    knowledge_store_id: Annotated[
        Id | None, Field(description="Or a knowledge store (text queries only).")
    ] = None,
    modalities: Annotated[
        list[Modality] | None,
        Field(min_length=1, description="Signals to match (default visual, audio)."),
    ] = None,
    operator: Annotated[
        Literal["or", "and"] | None, Field(description="How to combine several modalities.")
    ] = None,
    group_by: Annotated[
        Literal["clip", "video"], Field(description="clip: each moment; video: per video.")
    ] = "clip",
    limit: Annotated[int, Field(ge=1, le=50, description="Most moments to return.")] = 10,
    page_token: Annotated[
        str | None, Field(min_length=1, max_length=500, description="next_page_token of a previous search.")
    ] = None,
    include_thumbnails: Annotated[
        int, Field(ge=0, le=10, description="Also return this many thumbnails as images.")
    ] = 0,
    filter: FilterArg | None = None,
    transcription_options: Annotated[
        list[Literal["lexical", "semantic"]] | None, Field(min_length=1, description="Words or meaning.")
    ] = None,
    include_user_metadata: bool | None = None,
) -> Annotated[CallToolResult, SearchVideosResult]:
    """Find the moments in videos that match words or an example image, with timestamps.

    Use it to locate scenes ("a person opening a laptop", "someone says 'budget'") or to check whether
    something appears. Give query or image_path/image_url, and index_id or knowledge_store_id.
    Reasoning over the moments: create_response; a video's details: get_video.
    """
    state = app_state(ctx)
    if not page_token:
        given = [n for n, v in (("query", query), ("image_path", image_path), ("image_url", image_url)) if v]
        if not given:
            raise ToolError("search_videos needs a query, an image_path or an image_url.")
        if image_path and image_url:
            raise ToolError("Give image_path or image_url, not both.")
        if bool(index_id) == bool(knowledge_store_id):
            raise ToolError(
                "Give exactly one of index_id or knowledge_store_id (list_indexes shows the indexes)."
            )
        if knowledge_store_id and (image_path or image_url or not query):
            raise ToolError(
                "Knowledge-store search takes a text query only; use index_id to search by image."
            )
        if transcription_options and "transcription" not in (modalities or ()):
            raise ToolError(
                'transcription_options apply to spoken words only: add "transcription" to modalities.'
            )
    if knowledge_store_id and (filter or transcription_options or include_user_metadata):
        raise ToolError(
            "filter, transcription_options and include_user_metadata apply to index search; drop them or "
            "search with index_id."
        )
    if image_url:
        http_url(image_url, "image_url")
    check_entity_refs(query, knowledge_store=knowledge_store_id is not None)
    if knowledge_store_id and not query:
        # Also with a page_token: the next page of a knowledge-store search is asked for with its query.
        raise ToolError(
            "Knowledge-store search needs the text query, also when paging with page_token: pass the same "
            "query and knowledge_store_id as the first call."
        )
    chosen = modalities or ["visual", "audio"]
    kind, scope, optional = _search_scope(
        knowledge_store_id=knowledge_store_id,
        index_id=index_id,
        query=query,
        image=image_path or image_url,
        modalities=None if set(chosen) == {"visual", "audio"} else sorted(chosen),
        operator=operator,
        group_by=None if group_by == "clip" else group_by,
        filter=filter,
        transcription_options=sorted(transcription_options) if transcription_options else None,
    )
    if page_token:
        page_token = redeem(page_token, kind, scope, tool="search_videos", optional=optional)
    try:
        if knowledge_store_id:
            if "transcription" in chosen:
                raise ToolError('Knowledge-store search supports the modalities "visual" and "audio" only.')
            ks_modalities: list[Literal["visual", "audio"]] = [m for m in chosen if m != "transcription"]
            assert query is not None
            ks_page = await state.client.knowledge.search(
                knowledge_store_id, query, page_token=page_token, page_size=limit, modalities=ks_modalities
            )
            moments = [
                SearchMoment(
                    item_id=hit.item_id,
                    start=m.start_sec,
                    end=m.end_sec,
                    rank=hit.rank,
                    transcription=m.transcription,
                    modalities=m.modalities or None,
                    thumbnail_uri=thumbnail_uri(hit.item_id, m.start_sec)
                    if state.backend == "sandbox" and hit.item_id
                    else None,
                )
                for hit in ks_page.data
                for m in hit.matches
            ][:limit]
            next_token, total, matched_by = ks_page.next_page_token, None, None
        else:
            page = await _search_index(
                state,
                index_id=index_id,
                query=query,
                image_path=image_path,
                image_url=image_url,
                modalities=chosen,
                operator=operator,
                group_by=group_by,
                limit=limit,
                page_token=page_token,
                filter=filter,
                transcription_options=transcription_options,
                include_user_metadata=include_user_metadata,
            )
            moments = _index_moments(page, limit, durable=state.backend == "sandbox")
            next_token, total = page.page_info.next_page_token, page.page_info.total_results
            matched_by = entity_search_note(page)
    except TwelveLabsError as exc:
        raise ToolError(explain("Search", exc)) from None
    except ValueError as exc:
        raise ToolError(f"Search failed: {exc}.") from None

    images: list[ImageContent] = []
    if include_thumbnails:
        urls = [m.thumbnail_url for m in moments if m.thumbnail_url][:include_thumbnails]
        images = [img for img in await fetch_thumbnails(urls) if img is not None]
    result = SearchVideosResult(
        moments=moments,
        index_id=index_id,
        knowledge_store_id=knowledge_store_id,
        query=query,
        total_results=total,
        next_page_token=issue(next_token, kind, scope),
        thumbnails_returned=len(images),
        backend=state.backend,
    )
    md = Markdown(f"Search results: {len(moments)} moment(s)")
    md.field("Query", query or ("(image)" if image_path or image_url else None))
    md.field("Index", index_id).field("Knowledge store", knowledge_store_id)
    if matched_by:
        md.para(f"How entities were matched: {matched_by}.")
    paging = None
    next_token = result.next_page_token
    if next_token:
        # A store's next page is asked for with its query; an index's page token stands alone.
        paging = (
            call("search_videos", page_token=next_token, knowledge_store_id=knowledge_store_id, query=query)
            if knowledge_store_id
            else call(
                "search_videos",
                page_token=next_token,
                index_id=index_id,
                include_user_metadata=include_user_metadata,
            )
        )
    Page(list(enumerate(moments, 1)), paging).render(
        md, "Moments", _moment_line, "No matching moments.", more="More results"
    )
    if include_thumbnails and len(images) < min(include_thumbnails, len(moments)):
        md.para(f"{len(images)} thumbnail(s) could be fetched; the others were unavailable.")
    top = moments[0].video_id if moments else None
    if top and index_id:
        md.next_step(
            f"Details of a video: {call('get_video', index_id=index_id, video_id=top)}; ask about it: "
            f"{call('analyze_video', video_id=top, index_id=index_id, prompt=FILL)}."
        )
    return tool_result(result, md, images=images)


class ClassSpec(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100, description="Label to assign, e.g. 'Cooking'.")]
    prompts: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=300)]],
        Field(min_length=1, max_length=20, description="What this class looks or sounds like."),
    ]


class ClassMatch(BaseModel):
    name: str
    score: float | None = Field(description="Best score of a matching moment.")
    duration_ratio: float | None = Field(description="Share of the video matched, 0–1.")
    matched_seconds: float
    clips: list[SearchMoment] | None = None


class VideoClasses(BaseModel):
    video_id: str
    duration: float | None = None
    classes: list[ClassMatch]


class ClassifyResult(ToolResult):
    index_id: str
    videos: list[VideoClasses]
    counted: str = Field(description="The threshold that applied.")


def _threshold(
    clips: list[SearchMoment], min_score: float | None
) -> tuple[Callable[[SearchMoment], bool], str]:
    """Which clips are matches, and how to say so. Search returns every clip that scores at all, so
    counting them all would credit a class with the whole video; only clips at the threshold count."""
    if any(c.score is not None for c in clips):
        if min_score is not None:
            return (
                lambda c: c.score is not None and c.score >= min_score,
                f"moments scoring at least {min_score:g} (min_score)",
            )
        if any(c.confidence for c in clips):
            return (
                lambda c: c.score is not None and c.confidence not in (None, "low"),
                "moments of medium or high confidence (set min_score for a score threshold instead)",
            )
        return lambda c: c.score is not None, "every scored moment the search returned"
    note = "every moment the search returned: it ranks without scores (Marengo 3.0), so"
    if min_score is not None:
        return lambda c: True, f"{note} min_score cannot apply"
    return lambda c: True, f"{note} no score threshold applies"


def _covered(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


@tool(
    toolset="search",
    title="Classify videos into your classes",
    read_only=True,
    destructive=False,
    idempotent=True,
)
async def classify_videos(
    ctx: Ctx,
    index_id: Annotated[Id, Field(description="Index whose videos to classify.")],
    classes: Annotated[list[ClassSpec], Field(min_length=1, max_length=20, description="The taxonomy.")],
    min_score: Annotated[
        float | None,
        Field(ge=0, description="Only moments scoring at least this count (default: medium confidence up)."),
    ] = None,
    min_duration_ratio: Annotated[
        float | None, Field(ge=0, le=1, description="Drop classes covering less of the video than this.")
    ] = None,
    include_clips: Annotated[bool, Field(description="Also list the matching moments per class.")] = False,
    modalities: Annotated[list[Modality] | None, Field(min_length=1)] = None,
) -> Annotated[CallToolResult, ClassifyResult]:
    """Label every video in an index with the classes it matches, like the old /classify API.

    Use it for zero-shot categorization ("which videos are about cooking, sports or travel?"); per video
    you get each matching class, its best score and the share of the video it covers. Several specific
    prompts per class beat one vague one. One question about one video: analyze_video.
    """
    state = app_state(ctx)
    chosen = tuple(modalities or ["visual", "audio"])
    hits: dict[str, dict[str, list[SearchMoment]]] = {}
    limiter = anyio.Semaphore(4)

    failures: list[TwelveLabsError] = []

    durable = state.backend == "sandbox"

    async def run(spec: ClassSpec, prompt: str, scope: anyio.CancelScope) -> None:
        try:
            async with limiter:
                page = await state.client.search.query(
                    index_id, query_text=prompt, search_options=chosen, page_limit=50
                )
        except TwelveLabsError as exc:
            # Kept out of the task group: it would arrive wrapped in an ExceptionGroup that no handler
            # below recognises, and the caller would get the SDK's bare "Error executing tool".
            failures.append(exc)
            scope.cancel()
            return
        for m in _index_moments(page, 50, durable=durable):
            if m.video_id:
                hits.setdefault(m.video_id, {}).setdefault(spec.name, []).append(m)

    with upstream("Classification"):
        async with anyio.create_task_group() as tg:
            for spec in classes:
                for prompt in spec.prompts:
                    tg.start_soon(run, spec, prompt, tg.cancel_scope)
        if failures:
            raise failures[0]
        durations: dict[str, float | None] = {}
        for video_id in hits:
            video = await state.client.videos.get(index_id, video_id)
            durations[video_id] = video.system_metadata.duration if video.system_metadata else None

    counts, counted = _threshold([c for per in hits.values() for cl in per.values() for c in cl], min_score)
    videos: list[VideoClasses] = []
    for video_id, per_class in hits.items():
        duration = durations.get(video_id)
        matches: list[ClassMatch] = []
        for spec in classes:
            clips = [c for c in per_class.get(spec.name, []) if counts(c)]
            if not clips:
                continue
            scores = [c.score for c in clips if c.score is not None]
            covered = _covered([(c.start, c.end) for c in clips])
            ratio = min(covered / duration, 1.0) if duration else None
            if min_duration_ratio is not None and (ratio is None or ratio < min_duration_ratio):
                continue
            matches.append(
                ClassMatch(
                    name=spec.name,
                    score=max(scores) if scores else None,
                    duration_ratio=round(ratio, 4) if ratio is not None else None,
                    matched_seconds=round(covered, 3),
                    clips=sorted(clips, key=lambda c: c.start) if include_clips else None,
                )
            )
        if matches:
            matches.sort(key=lambda m: (m.duration_ratio or 0.0, m.score or 0.0), reverse=True)
            videos.append(VideoClasses(video_id=video_id, duration=duration, classes=matches))
    videos.sort(key=lambda v: v.video_id)
    result = ClassifyResult(index_id=index_id, videos=videos, counted=counted, backend=state.backend)
    md = Markdown(f"Classification of index {index_id}")
    lines = []
    for v in videos:
        parts = []
        for c in v.classes:
            share = (
                f"{c.duration_ratio:.0%} of the video" if c.duration_ratio is not None else "coverage unknown"
            )
            score = f", best score {c.score:g}" if c.score is not None else ""
            parts.append(f"{c.name} ({share}{score})")
        lines.append(f"- video {v.video_id}: " + "; ".join(parts))
    md.section("Videos", lines or ["No video matched any class."])
    md.para(f"Counted as matches: {counted}.")
    return tool_result(result, md)


TOOLS: list[ToolSpec] = [search_videos, classify_videos]
