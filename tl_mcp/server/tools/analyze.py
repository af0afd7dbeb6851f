"""Toolset `analyze`: open-ended analysis and summaries of one video via `/analyze`, streamed as progress."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tl_mcp.api.errors import NotFoundError, StreamError, TwelveLabsError
from tl_mcp.api.models import (
    AnalyzeEnd,
    AnalyzeRequest,
    AnalyzeText,
    GeneratedBy,
    ImageInput,
    ResponseFormat,
    VideoSource,
)
from tl_mcp.api.models.analyze import IMAGE_MODEL, MAX_IMAGES, TOKEN_RANGES, PegasusModel
from tl_mcp.redaction import display_url
from tl_mcp.server.errors import explain
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Resumed
from tl_mcp.server.results import JobResult, JobStatus, Json, Markdown, fmt_seconds, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS, http_url, video_not_found
from tl_mcp.server.toolspec import ToolSpec, tool

SummaryKind = Literal["summary", "chapters", "highlights", "gist"]
#: The documented top of Pegasus's response length (`max_tokens`).
MAX_TOKENS = TOKEN_RANGES["general"][1]
#: The sandbox has no generative model; its answers must not pass for one's.
SANDBOX_NOTE = (
    "Note: the offline sandbox answered this extractively: every title, summary and quote is taken from "
    "the video's speech, subtitles and on-screen text, not generated, and nothing about its visuals is known."
)


class AnalyzeUsageInfo(BaseModel):
    input_tokens: int | None = None
    output_tokens: int | None = None


class AnalyzeVideoResult(JobResult[JobStatus]):
    video: dict[str, str] = Field(description="What was analyzed: asset_id or url, and video_id.")
    kind: str | None = Field(default=None, description="For summarize_video.")
    text: str
    parsed: Json = None
    finish_reason: str | None = None
    usage: AnalyzeUsageInfo | None = None


class ImageArg(BaseModel):
    # No docstring: it would be sent as the schema's description in every tools/list.
    model_config = ConfigDict(extra="forbid")
    name: str
    url: str | None = None
    asset_id: str | None = None


AssetId = Annotated[Id | None, Field(description="From upload_asset.")]
Url = Annotated[str | None, Field(max_length=4000, description="Public http(s) URL of the video.")]
VideoId = Annotated[Id | None, Field(description="From search_videos / list_videos; with index_id.")]
IndexId = Annotated[Id | None, Field(description="The index of video_id.")]

_SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "summary": (
        "Summarize this video in one or two paragraphs: what happens, who appears, what is said.",
        {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]},
    ),
    "chapters": (
        "Split this video into chapters. For each chapter give start and end in seconds, a short title and a "
        "one-sentence summary.",
        {
            "type": "object",
            "properties": {
                "chapters": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "start_sec": {"type": "number"},
                            "end_sec": {"type": "number"},
                            "title": {"type": "string"},
                            "summary": {"type": "string"},
                        },
                        "required": ["start_sec", "end_sec", "title"],
                    },
                }
            },
            "required": ["chapters"],
        },
    ),
    "highlights": (
        "List the highlights of this video: the moments most worth watching, each with start and end "
        "in seconds and one sentence saying why.",
        {
            "type": "object",
            "properties": {
                "highlights": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "start_sec": {"type": "number"},
                            "end_sec": {"type": "number"},
                            "highlight": {"type": "string"},
                        },
                        "required": ["start_sec", "end_sec", "highlight"],
                    },
                }
            },
            "required": ["highlights"],
        },
    ),
    "gist": (
        "Give the gist of this video: a title, the main topics, and a few hashtags.",
        {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "topics": {"type": "array", "items": {"type": "string"}},
                "hashtags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["title", "topics", "hashtags"],
        },
    ),
}


async def resolve_source(
    state: AppState, asset_id: str | None, url: str | None, video_id: str | None, index_id: str | None
) -> tuple[VideoSource, dict[str, str]]:
    """The video to analyze and how to describe it: a url or asset as given, a video_id by its asset."""
    given = [n for n, v in (("asset_id", asset_id), ("url", url), ("video_id", video_id)) if v]
    if len(given) != 1:
        raise ToolError(f"Give exactly one of asset_id, url or video_id (got {', '.join(given) or 'none'}).")
    if url:
        return VideoSource(url=http_url(url)), {"url": display_url(url)}
    if asset_id:
        return VideoSource(asset_id=asset_id), {"asset_id": asset_id}
    assert video_id is not None
    if not index_id:
        raise ToolError(
            "video_id needs index_id (the index the video is in) so it can be resolved to its asset; "
            "or pass asset_id directly."
        )
    action = f"Resolving video {video_id}"
    try:
        video = await state.client.videos.get(index_id, video_id)
    except NotFoundError as exc:
        raise ToolError(await video_not_found(state, action, index_id, video_id, exc)) from None
    except TwelveLabsError as exc:
        raise ToolError(explain(action, exc)) from None
    if not video.asset_id:
        raise ToolError(
            f"Video {video_id} has no asset id (indexed before assets existed); analyze it by url instead."
        )
    described = {"asset_id": video.asset_id, "video_id": video_id, "index_id": index_id}
    return VideoSource(asset_id=video.asset_id), described


def _markdown(r: AnalyzeVideoResult, made: GeneratedBy | None = None) -> Markdown:
    title = f"Video {r.kind}" if r.kind else "Video analysis"
    md = Markdown(r.titled(title))
    if r.kind == "chapters" and isinstance(r.parsed, dict) and isinstance(r.parsed.get("chapters"), list):
        md.section(
            "Chapters",
            [
                f"- {fmt_seconds(_num(c.get('start_sec')))}–{fmt_seconds(_num(c.get('end_sec')))} "
                f"**{c.get('title', '')}** {c.get('summary', '')}"
                for c in r.parsed["chapters"]
                if isinstance(c, dict)
            ],
        )
    else:
        md.para(r.text or "_(no text yet)_")
    md.field("Source", ", ".join(f"{k} {v}" for k, v in r.video.items()))
    if made is not None:
        md.para(made.line())
    elif r.backend == "sandbox":
        md.para(SANDBOX_NOTE)
    if r.in_progress:
        md.next_step(r.wait_step())
    return md


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


async def _analyze(
    ctx: Ctx,
    *,
    source: tuple[VideoSource | None, dict[str, str]],
    prompt: str,
    schema: dict[str, Any] | None,
    kind: str | None,
    start_time: float | None,
    end_time: float | None,
    temperature: float | None,
    max_tokens: int | None,
    wait_s: float,
    model_name: str | None = None,
    images: list[ImageInput] | None = None,
) -> CallToolResult:
    state = app_state(ctx)
    video, described = source
    try:
        request = AnalyzeRequest(
            video=video,
            image=images,
            prompt=prompt,
            model_name=model_name,
            response_format=ResponseFormat(json_schema=schema) if schema is not None else None,
            temperature=temperature,
            max_tokens=max_tokens,
            start_time=start_time,
            end_time=end_time,
        )
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ToolError(
            f"This analysis cannot run: {reasons}. Change that argument and call again."
        ) from None

    def partial(job: Job) -> CallToolResult:
        r = AnalyzeVideoResult(
            status="in_progress",
            job_id=job.id,
            video=described,
            kind=kind,
            text=job.text,
            backend=state.backend,
        )
        return tool_result(r, _markdown(r))

    async def work(job: Job) -> CallToolResult:
        end: AnalyzeEnd | None = None
        try:
            # A cancellation lands inside the generator's await, so its HTTP stream closes at once.
            async for event in state.client.analyze.stream(request):
                if isinstance(event, AnalyzeText):
                    job.emit_text(event.text)
                elif isinstance(event, AnalyzeEnd):
                    end = event
        except StreamError as exc:
            raise ToolError(
                explain("Video analysis", exc) + (f"\n\nPartial text:\n{job.text}" if job.text else "")
            ) from None
        except TwelveLabsError as exc:
            raise ToolError(explain("Video analysis", exc)) from None
        text = end.text if end is not None and end.text else job.text
        if text.startswith(job.text):
            job.emit_text(text[len(job.text) :])
        parsed = None
        if schema is not None:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        usage = end.usage if end is not None else None
        r = AnalyzeVideoResult(
            status="completed",
            video=described,
            kind=kind,
            text=text,
            parsed=parsed,
            finish_reason=end.finish_reason if end is not None else None,
            usage=AnalyzeUsageInfo(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
            if usage
            else None,
            backend=state.backend,
        )
        return tool_result(r, _markdown(r, end.generated_by if end is not None else None))

    label = f"analysis of {next(iter(described.values()))}"
    job = state.jobs.start("analyze", label, work, partial, AnalyzeProgress())
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


@tool(
    toolset="analyze",
    title="Analyze a video with a prompt",
    read_only=True,
    destructive=False,
    idempotent=False,
)
async def analyze_video(
    ctx: Ctx,
    prompt: Annotated[str, Field(min_length=1, max_length=4000, description="What to find out.")],
    asset_id: AssetId = None,
    url: Url = None,
    video_id: VideoId = None,
    index_id: IndexId = None,
    output_schema: Annotated[
        dict[str, Any] | None, Field(description="JSON Schema of the answer in `parsed`.")
    ] = None,
    start_time: Annotated[float | None, Field(ge=0)] = None,
    end_time: Annotated[float | None, Field(gt=0)] = None,
    temperature: Annotated[float | None, Field(ge=0, le=1)] = None,
    max_tokens: Annotated[int | None, Field(ge=1, le=MAX_TOKENS)] = None,
    model_name: PegasusModel | None = None,
    image: Annotated[
        list[ImageArg] | None,
        Field(min_length=1, max_length=MAX_IMAGES),
    ] = None,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, AnalyzeVideoResult]:
    """Ask an open-ended question about ONE video (Pegasus): describe, extract, check, write copy.

    Use it for one video; the text streams as progress.
    Many videos: create_response; where: search_videos; formats: summarize_video.
    """
    state = app_state(ctx)
    if image is not None:
        if model_name != IMAGE_MODEL:
            raise ToolError(
                f"image prompts need model_name={IMAGE_MODEL!r} (got {model_name!r}): only Pegasus 1.6 reads "
                'images. Call again with model_name="pegasus1.6".'
            )
        if any(v is not None for v in (asset_id, url, video_id)):
            raise ToolError("Give image or a video (asset_id, url, video_id), not both.")
    if start_time is not None and end_time is not None and end_time <= start_time:
        raise ToolError("end_time must be after start_time.")
    if output_schema is not None:
        # jsonschema (and its referencing/rpds stack) only matters once a schema is given: not at start-up.
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(output_schema)
        except jsonschema.SchemaError as exc:
            raise ToolError(f"output_schema is not a valid JSON Schema: {exc.message}.") from None
    images = None
    if image is not None:
        try:
            images = [ImageInput(**i.model_dump(exclude_none=True)) for i in image]
        except ValidationError as exc:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ToolError(f"image: {reasons}. Fix that image and call again.") from None
    source: tuple[VideoSource | None, dict[str, str]] = (
        (None, {"images": ", ".join(i.name for i in image)})
        if image is not None
        else await resolve_source(state, asset_id, url, video_id, index_id)
    )
    return await _analyze(
        ctx,
        source=source,
        prompt=prompt,
        schema=output_schema,
        kind=None,
        start_time=start_time,
        end_time=end_time,
        temperature=temperature,
        max_tokens=max_tokens,
        wait_s=wait_s,
        model_name=model_name,
        images=images,
    )


@tool(toolset="analyze", title="Summarize a video", read_only=True, destructive=False, idempotent=False)
async def summarize_video(
    ctx: Ctx,
    kind: Annotated[
        SummaryKind,
        Field(description="chapters and highlights are timed; gist: title, topics, hashtags."),
    ] = "summary",
    asset_id: AssetId = None,
    url: Url = None,
    video_id: VideoId = None,
    index_id: IndexId = None,
    prompt: Annotated[str | None, Field(min_length=1, max_length=4000)] = None,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, AnalyzeVideoResult]:
    """Summarize ONE video as a summary, chapters, highlights or a gist, as JSON in `parsed`.

    For an overview or chapter markers (chapters, highlights: start_sec/end_sec); prompt steers it.
    """
    state = app_state(ctx)
    default_prompt, schema = _SCHEMAS[kind]
    # The kind's schema stays, so a custom prompt still gets timed chapters or highlights back.
    prompt = prompt or default_prompt
    source = await resolve_source(state, asset_id, url, video_id, index_id)
    return await _analyze(
        ctx,
        source=source,
        prompt=prompt,
        schema=schema,
        kind=kind,
        start_time=None,
        end_time=None,
        temperature=None,
        max_tokens=None,
        wait_s=wait_s,
    )


@dataclass
class AnalyzeProgress(JobProgress):
    """A streamed analysis: its text is the job's text, and it has no upstream handle to follow."""

    code: ClassVar[str] = "a"

    def handles(self) -> list[str]:
        # Never resumable elsewhere, but a signed id lets another replica explain what to do instead.
        return [secrets.token_hex(6)]


def resume_analysis(state: Callable[[], AppState], job_id: str, fields: list[str]) -> Resumed:
    """An analysis stream cannot move between processes: say how to run it again."""
    raise ToolError(
        f"Job {job_id[:40]}… is a video analysis that was streaming on another replica of this "
        "server. An analysis stream lives in the process that opened it and cannot be picked up "
        "elsewhere. "
        "Run analyze_video again, with a longer wait_s to get the result in one call."
    )


TOOLS: list[ToolSpec] = [analyze_video, summarize_video]
