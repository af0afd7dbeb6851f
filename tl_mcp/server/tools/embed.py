"""Toolset `embed`: Marengo embeddings of text, images, audio and video (video runs as a job)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from tl_mcp.api.client import TwelveLabsClient
from tl_mcp.api.errors import TwelveLabsError
from tl_mcp.api.models import Embedding, EmbeddingTask
from tl_mcp.server.errors import explain, upstream
from tl_mcp.server.jobs.events import JobProgress
from tl_mcp.server.jobs.manager import Job, Resumed
from tl_mcp.server.jobs.portable import unknown_kind
from tl_mcp.server.results import FILL, JobResult, JobStatus, Markdown, call, fmt_seconds, tool_result
from tl_mcp.server.state import AppState, app_state
from tl_mcp.server.tools._common import DEFAULT_WAIT_S, Ctx, Id, WaitS, http_url
from tl_mcp.server.tools.tasks import TERMINAL_BAD, follow
from tl_mcp.server.toolspec import ToolSpec, tool

HEAD = 8
MAX_FULL_VECTORS = 64


class Vector(BaseModel):
    # One embedding, summarized; `vector` holds every value only when include_vector was set.
    scope: str | None = Field(default=None, description="clip / asset / video, for video embeddings.")
    option: str | None = Field(default=None, description="visual / audio / transcription, for video.")
    start_sec: float | None = None
    end_sec: float | None = None
    dims: int
    norm: float
    head: list[float] = Field(description=f"The first {HEAD} values.")
    vector: list[float] | None = None


class EmbeddingResult(JobResult[JobStatus]):
    awaited: ClassVar[str] = "to get the vectors"

    task_id: str | None = None
    input_type: Literal["text", "image", "audio", "video"]
    model_name: str
    embedder: str | None = Field(default=None, description="The model that made the vectors, if known.")
    embeddings: list[Vector]


def _vector(values: list[float], full: bool, **where: object) -> Vector:
    return Vector(
        dims=len(values),
        norm=round(math.sqrt(sum(v * v for v in values)), 6),
        head=[round(v, 6) for v in values[:HEAD]],
        vector=list(values) if full else None,
        **where,
    )


def _from_embedding(e: Embedding, full: bool) -> list[Vector]:
    out = []
    for part in e.parts:
        for seg in part.segments:
            out.append(
                _vector(
                    seg.float_,
                    full,
                    scope=seg.embedding_scope,
                    option=seg.embedding_option,
                    start_sec=seg.start_offset_sec,
                    end_sec=seg.end_offset_sec,
                )
            )
    return out


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
    if task.status.lower() in TERMINAL_BAD:
        reason = task.error.message if task.error and task.error.message else "no reason given"
        raise ToolError(f"Video embedding task {task_id} ended with status {task.status}: {reason}.")
    return task


def embedding_markdown(r: EmbeddingResult, source: tuple[str, str] | None = None) -> Markdown:
    """The text of an embedding result; `source` (argument, value) is the input, for the full-vector hint."""
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
    if r.in_progress:
        md.next_step(r.wait_step())
    elif source is not None and not any(v.vector for v in r.embeddings):
        key, value = source
        given = FILL if len(value) > 200 else value
        md.next_step(f"Full vectors: {call('create_embedding', **{key: given}, include_vector=True)}.")
    return md


@tool(toolset="embed", title="Create an embedding", read_only=True, destructive=False, idempotent=True)
async def create_embedding(
    ctx: Ctx,
    text: Annotated[str | None, Field(min_length=1, max_length=2000)] = None,
    image_path: Annotated[str | None, Field(description="In an allowed folder.")] = None,
    image_url: Annotated[str | None, Field(max_length=4000)] = None,
    audio_path: Annotated[str | None, Field(description="In an allowed folder.")] = None,
    audio_url: Annotated[str | None, Field(max_length=4000)] = None,
    video_path: Annotated[str | None, Field(description="In an allowed folder.")] = None,
    video_url: Annotated[str | None, Field(max_length=4000)] = None,
    video_asset_id: Annotated[Id | None, Field(description="From upload_asset.")] = None,
    model_name: Annotated[str, Field(min_length=1, max_length=50)] = "marengo3.0",
    include_vector: Annotated[bool, Field(description="Return the full vectors (large).")] = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
) -> Annotated[CallToolResult, EmbeddingResult]:
    """Embed text, an image, audio or a video (exactly one) in Marengo's shared vector space.

    Use it to compare media yourself or match text against images and clips. Text, image and audio
    return at once; a video runs as a task (clip and whole-video vectors). Vectors come summarized
    unless include_vector=true. To search indexed videos use search_videos: it embeds the query itself.
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
    }
    given = [k for k, v in inputs.items() if v]
    if len(given) != 1:
        raise ToolError(
            f"create_embedding needs exactly one input of {', '.join(inputs)} (got {given or 'none'})."
        )
    key = given[0]
    value = str(inputs[key])
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
                emb = await state.client.embed.text(value, model_name=model_name)
            elif input_type == "image":
                emb = await state.client.embed.image(
                    path=source, url=None if local else value, model_name=model_name
                )
            else:
                emb = await state.client.embed.audio(
                    path=source, url=None if local else value, model_name=model_name
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
            backend=state.backend,
        )
        return tool_result(result, embedding_markdown(result, (key, value)))

    progress = EmbedProgress(model_name=model_name)

    def snapshot(
        job: Job, status: Literal["completed", "in_progress"], vectors: list[Vector]
    ) -> EmbeddingResult:
        return EmbeddingResult(
            status=status,
            job_id=job.id,
            task_id=progress.task_id,
            input_type="video",
            model_name=model_name,
            embeddings=vectors,
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
        r = snapshot(job, "completed", vectors)
        return tool_result(r, embedding_markdown(r, (key, value)))

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
        return tool_result(r, embedding_markdown(r))

    return Resumed("embed", "video embedding", work, partial, progress)


TOOLS: list[ToolSpec] = [create_embedding]
