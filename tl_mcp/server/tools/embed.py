"""Toolset `embed`: Marengo embeddings of text, images, audio and video (video runs as a job)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api.client import TwelveLabsClient
from tl_mcp.api.errors import TwelveLabsError
from tl_mcp.api.models import (
    Embedding,
    EmbeddingSegment,
    EmbeddingTask,
    VideoEmbeddingOption,
    VideoEmbeddingScope,
)
from tl_mcp.api.resources.embed import video_task_options
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.job import Job, Resumed
from tl_mcp.server.jobs.portable import unknown_kind
from tl_mcp.server.results import FILL, JobResult, JobStatus, Markdown, call, fmt_seconds, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS, http_url
from tl_mcp.server.tools.tasks import follow, refuse_bad_end
from tl_mcp.server.toolspec import ToolSpec, tool

HEAD = 8
MAX_FULL_VECTORS = 64
#: Characters of text taken: more than any model's window, so the model (not this tool) decides what fits.
MAX_TEXT = 20_000


class Vector(BaseModel):
    # One embedding, summarized; `vector` holds every value only when include_vector was set.
    # Video only: scope clip / asset / video, option visual / audio / transcription / fused.
    scope: str | None = None
    option: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None
    dims: int
    norm: float
    head: list[float]  # the first HEAD values
    vector: list[float] | None = None


class EmbeddingResult(JobResult[JobStatus]):
    awaited: ClassVar[str] = "to get the vectors"

    task_id: str | None = None
    input_type: Literal["text", "image", "audio", "video"]
    model_name: str
    # The model that really made the vectors, when the backend says (the sandbox does).
    embedder: str | None = None
    embeddings: list[Vector]
    notes: list[str] | None = None


def _vector(values: list[float], full: bool, **where: object) -> Vector:
    return Vector(
        dims=len(values),
        norm=round(math.sqrt(sum(v * v for v in values)), 6),
        head=[round(v, 6) for v in values[:HEAD]],
        vector=list(values) if full else None,
        **where,
    )


def _from_segments(segments: Iterable[EmbeddingSegment], full: bool) -> list[Vector]:
    return [
        _vector(
            seg.float_,
            full,
            scope=seg.embedding_scope,
            option=seg.embedding_option,
            start_sec=seg.start_offset_sec,
            end_sec=seg.end_offset_sec,
        )
        for seg in segments
    ]


def _from_embedding(e: Embedding, full: bool) -> list[Vector]:
    return _from_segments((seg for part in e.parts for seg in part.segments), full)


def _truncation(e: Embedding) -> list[str] | None:
    if not (e.usage and e.usage.truncated):
        return None
    kept = (e.usage.input_tokens or {}).get("text")
    return [
        f"The text was longer than {e.model_name}'s context window and was cut to its first "
        f"{kept or 'allowed'} tokens before embedding (auto_truncate)."
    ]


def vectors_from_task(t: EmbeddingTask, full: bool) -> list[Vector]:
    return [
        _vector(
            d.embedding,
            full,
            scope=d.embedding_scope,
            option=d.embedding_option,
            start_sec=d.start_sec,
            end_sec=d.end_sec,
        )
        for d in t.data or []
    ]


def task_notes(task: EmbeddingTask) -> list[str] | None:
    """What the backend says it did differently from the request (the sandbox's `sandbox_notes`)."""
    notes = (task.metadata or {}).get("sandbox_notes")
    return [str(n) for n in notes] if isinstance(notes, list) and notes else None


@dataclass
class EmbedProgress(JobProgress):
    """A video-embedding job: once its task exists, any replica can follow it."""

    code: ClassVar[str] = "e"
    movable: ClassVar[bool] = True

    model_name: str
    task_id: str | None = None

    def handles(self) -> list[str] | None:
        return [self.task_id, self.model_name] if self.task_id else None


async def follow_embedding_task(client: TwelveLabsClient, job: Job, task_id: str) -> EmbeddingTask:
    """Poll a video-embedding task until it ends, telling the job each change; a failed task is a `ToolError`.

    Shared with the replica that resumes someone else's job, so both report the same way.
    """
    with upstream("Video embedding"):
        task = await follow(
            job,
            f"Embedding task {task_id}",
            lambda: client.embed.get_video_task(task_id),
            lambda t: t.status,
            policy=client.poll,
            watching=call("wait_for_task", id=task_id, kind="embedding_task"),
        )
    refuse_bad_end("Video embedding task", task_id, task.status, task.error.message if task.error else None)
    return task


def embedding_markdown(r: EmbeddingResult, source: Mapping[str, object] | None = None) -> Markdown:
    """The text of an embedding result; `source` (the call's input arguments) for the full-vector hint."""
    md = Markdown(r.titled(f"{r.input_type.capitalize()} embedding"))
    md.field("Model", r.model_name).field("Embedder", r.embedder)
    md.field("Vectors", len(r.embeddings)).field("Task", r.task_id)
    rows = []
    for v in r.embeddings[:20]:
        span = f" {fmt_seconds(v.start_sec)}–{fmt_seconds(v.end_sec)}" if v.start_sec is not None else ""
        label = " ".join(x for x in (v.option, v.scope) if x)
        rows.append(f"- {label}{span}: {v.dims} dims, norm {v.norm:g}, head {v.head[:4]}")
    if rows:
        md.section("Vectors", rows)
    if len(r.embeddings) > 20:
        md.para(f"… and {len(r.embeddings) - 20} more in the structured result.")
    if r.notes:
        md.section("Notes", [f"- {n}" for n in r.notes])
    if r.in_progress:
        md.next_step(r.wait_step())
    elif source is not None and r.embeddings and not any(v.vector for v in r.embeddings):
        args = {k: FILL if isinstance(v, str) and len(v) > 200 else v for k, v in source.items()}
        md.next_step(f"Full vectors: {call('create_embedding', **args, include_vector=True)}.")
    return md


VIDEO_INPUTS = ("video_path", "video_url", "video_asset_id")


def _check_options(key: str, **given: object) -> None:
    """Refuse options that do not apply to the chosen input, naming the inputs they apply to."""
    applies = {
        "clip_length": VIDEO_INPUTS,
        "scopes": VIDEO_INPUTS,
        "fused": VIDEO_INPUTS,
        "end_sec": VIDEO_INPUTS,
        "start_sec": (*VIDEO_INPUTS, "audio_path", "audio_url"),
        "options": (*VIDEO_INPUTS, "video_id"),
    }
    wrong = [name for name, value in given.items() if value not in (None, False) and key not in applies[name]]
    if wrong:
        raise ToolError(
            "; ".join(f"{name} applies to {', '.join(applies[name])}" for name in wrong)
            + f" — not to {key}. Leave it out, or embed one of those inputs."
        )


async def _indexed(
    state: AppState,
    index_id: str | None,
    video_id: str,
    options: list[VideoEmbeddingOption] | None,
    full: bool,
) -> EmbeddingResult:
    """The embeddings an index stored for one of its videos, per segment."""
    if index_id is None:
        raise ToolError(
            "video_id needs its index_id (from list_indexes or the search result that found the video)."
        )
    chosen = options or ["visual", "audio", "transcription"]
    try:
        video = await state.client.indexed_assets.get(index_id, video_id, embedding_option=chosen)
    except TwelveLabsError as exc:
        raise ToolError(explain(f"Reading the embeddings of video {video_id}", exc)) from None
    if video.status not in (None, "ready"):
        raise ToolError(
            f"Video {video_id} is {video.status}: its embeddings exist once indexing is ready. "
            f"Wait with {call('wait_for_task', id=video_id, kind='indexed_asset', index_id=index_id)}."
        )
    stored = video.embedding
    segments = stored.segments if stored else []
    vectors = _from_segments(segments, full)
    notes = None
    if not vectors:
        notes = [f"The index stored no {', '.join(chosen)} embeddings for this video (it needs Marengo)."]
    return EmbeddingResult(
        status="completed",
        input_type="video",
        model_name=(stored.model_name if stored else None) or "marengo3.0",
        embeddings=vectors,
        notes=notes,
        backend=state.backend,
    )


@tool(toolset="embed", title="Create an embedding", read_only=True, destructive=False, idempotent=True)
async def create_embedding(
    ctx: Ctx,
    text: Annotated[str | None, Field(min_length=1, max_length=MAX_TEXT)] = None,
    image_path: str | None = None,
    image_url: Annotated[str | None, Field(max_length=4000)] = None,
    audio_path: str | None = None,
    audio_url: Annotated[str | None, Field(max_length=4000)] = None,
    video_path: str | None = None,
    video_url: Annotated[str | None, Field(max_length=4000)] = None,
    video_asset_id: Annotated[Id | None, Field(description="From upload_asset.")] = None,
    video_id: Id | None = None,
    index_id: Id | None = None,
    model_name: Annotated[str, Field(min_length=1, max_length=50)] = "marengo3.0",
    clip_length: Annotated[float | None, Field(ge=2, le=10)] = None,
    start_sec: float | None = None,
    end_sec: float | None = None,
    scopes: list[Literal["clip", "video"]] | None = None,
    options: list[VideoEmbeddingOption] | None = None,
    fused: bool = False,
    include_vector: Annotated[bool, Field(description="Full vectors (large).")] = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, EmbeddingResult]:
    """Embed text, an image, audio or a video (exactly one) in Marengo's shared vector space.

    Use it to compare media yourself or match text against images and clips (paths: in an allowed
    folder). Text, image and audio return at once; a video runs as a task (clip_length s clips, scopes,
    options, fused). video_id + index_id: what indexing stored. Vectors come summarized unless
    include_vector=true.
    """
    state = app_state(ctx)
    inputs = {
        "text": text,
        "image_path": image_path,
        "image_url": image_url,
        "audio_path": audio_path,
        "audio_url": audio_url,
        "video_path": video_path,
        "video_url": video_url,
        "video_asset_id": video_asset_id,
        "video_id": video_id,
    }
    given = [k for k, v in inputs.items() if v]
    if len(given) != 1:
        raise ToolError(
            f"create_embedding needs exactly one input of {', '.join(inputs)} (got {given or 'none'})."
        )
    key = given[0]
    value = str(inputs[key])
    _check_options(
        key,
        clip_length=clip_length,
        scopes=scopes,
        fused=fused,
        end_sec=end_sec,
        start_sec=start_sec,
        options=options,
    )
    if index_id is not None and key != "video_id":
        raise ToolError("index_id goes with video_id (an indexed video); leave it out for other inputs.")
    if key == "video_id":
        indexed = await _indexed(state, index_id, value, options, include_vector)
        asked: dict[str, object] = {"video_id": value, "index_id": index_id, "options": options}
        return tool_result(indexed, embedding_markdown(indexed, asked))
    task_scopes: list[VideoEmbeddingScope] | None = (
        ["asset" if s == "video" else "clip" for s in scopes] if scopes else None
    )
    if key in VIDEO_INPUTS:
        try:
            # The same checks the client runs, now: a bad combination starts no job and uploads nothing.
            video_task_options(
                model_name,
                start_sec=start_sec,
                end_sec=end_sec,
                clip_length=clip_length,
                scopes=task_scopes,
                options=options,
                fused=fused,
                time_based_metadata=None,
            )
        except ValueError as exc:
            raise ToolError(f"Video embedding options: {exc}.") from None
    if key.endswith("_url"):
        http_url(value, key)
    local = state.files.open(value) if key.endswith("_path") else None
    source = local.file if local else None
    kinds: dict[str, Literal["text", "image", "audio", "video"]] = {
        "text": "text",
        "image": "image",
        "audio": "audio",
        "video": "video",
    }
    input_type = kinds[key.split("_")[0]]

    if input_type != "video":
        try:
            if input_type == "text":
                # Models after 3.0 cut text over their window instead of refusing it; the result says so.
                truncate = None if model_name == "marengo3.0" else True
                emb = await state.client.embed.text(value, model_name=model_name, auto_truncate=truncate)
            elif input_type == "image":
                emb = await state.client.embed.image(
                    path=source, url=None if local else value, model_name=model_name
                )
            else:
                emb = await state.client.embed.audio(
                    path=source,
                    url=None if local else value,
                    model_name=model_name,
                    start_offset_sec=start_sec,
                )
        except TwelveLabsError as exc:
            raise ToolError(explain(f"Embedding the {input_type}", exc)) from None
        except ValueError as exc:
            raise ToolError(f"Embedding the {input_type} failed: {exc}.") from None
        finally:
            if local is not None:
                local.close()
        result = EmbeddingResult(
            status="completed",
            input_type=input_type,
            model_name=emb.model_name or model_name,
            embedder=next(
                (str(p.metadata["embedder"]) for p in emb.parts if p.metadata and p.metadata.get("embedder")),
                None,
            ),
            embeddings=_from_embedding(emb, include_vector),
            notes=_truncation(emb),
            backend=state.backend,
        )
        return tool_result(result, embedding_markdown(result, {key: value, "start_sec": start_sec}))

    progress = EmbedProgress(model_name=model_name)

    def snapshot(
        job: Job,
        status: Literal["completed", "in_progress"],
        vectors: list[Vector],
        notes: list[str] | None = None,
    ) -> EmbeddingResult:
        return EmbeddingResult(
            status=status,
            job_id=job.id,
            task_id=progress.task_id,
            input_type="video",
            model_name=model_name,
            embeddings=vectors,
            notes=notes,
            backend=state.backend,
        )

    def partial(job: Job) -> CallToolResult:
        r = snapshot(job, "in_progress", [])
        return tool_result(r, embedding_markdown(r))

    async def work(job: Job) -> CallToolResult:
        def on_bytes(sent: int, total: int | None) -> None:
            job.emit_note(
                f"Uploaded {sent:,} bytes", progress=float(sent), total=float(total) if total else None
            )

        try:
            job.emit_note("Starting the video embedding task")
            task_id = await state.client.embed.create_video_task(
                path=source,
                url=value if key == "video_url" else None,
                asset_id=value if key == "video_asset_id" else None,
                model_name=model_name,
                start_sec=start_sec,
                end_sec=end_sec,
                clip_length=clip_length,
                scopes=task_scopes,
                options=options,
                fused=fused,
                progress=on_bytes if local else None,
            )
        except TwelveLabsError as exc:
            raise ToolError(explain("Video embedding", exc)) from None
        except ValueError as exc:
            raise ToolError(f"Video embedding failed: {exc}.") from None
        finally:
            if local is not None:
                local.close()
        progress.task_id = task_id
        job.emit_note(f"Embedding task {task_id} started")
        task = await follow_embedding_task(state.client, job, task_id)
        vectors = vectors_from_task(task, include_vector)
        if include_vector and len(vectors) > MAX_FULL_VECTORS:
            for v in vectors[MAX_FULL_VECTORS:]:
                v.vector = None
        r = snapshot(job, "completed", vectors, task_notes(task))
        video_args = {"clip_length": clip_length, "start_sec": start_sec, "end_sec": end_sec}
        chosen = {"scopes": scopes, "options": options, "fused": fused or None}
        return tool_result(r, embedding_markdown(r, {key: value, **video_args, **chosen}))

    try:
        job = state.jobs.start("embed", "video embedding", work, partial, progress)
    except BaseException:
        if local is not None:
            local.close()
        raise
    return await state.jobs.run(job, ctx.report_progress, wait_s=wait_s)


def resume_embedding(state: Callable[[], AppState], job_id: str, fields: list[str]) -> Resumed:
    """A video embedding started on another replica, from its portable id: follow its task upstream."""
    if len(fields) != 2:
        raise unknown_kind(job_id)
    task_id, model_name = fields
    app = state()
    progress = EmbedProgress(model_name=model_name or "marengo3.0", task_id=task_id)

    def result(status: Literal["completed", "in_progress"], vectors: list[Vector]) -> EmbeddingResult:
        return EmbeddingResult(
            status=status,
            job_id=job_id,
            task_id=task_id,
            input_type="video",
            model_name=progress.model_name,
            embeddings=vectors,
            backend=app.backend,
        )

    def partial(job: Job) -> CallToolResult:
        r = result("in_progress", [])
        return tool_result(r, embedding_markdown(r))

    async def work(job: Job) -> CallToolResult:
        task = await follow_embedding_task(app.client, job, task_id)
        # The original call's include_vector is not carried across replicas: vectors come summarized.
        r = result("completed", vectors_from_task(task, False))
        r.notes = task_notes(task)
        return tool_result(r, embedding_markdown(r))

    return Resumed("embed", "video embedding", work, partial, progress)


TOOLS: list[ToolSpec] = [create_embedding]
