"""Embeddings: `/embed` for text, image and audio (sync), `/embed-v2/tasks` for video (async)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._http import HTTPCore
from .._multipart import ByteProgress, FilePart, FileSource, MultipartForm, open_source
from ..models.embed import (
    CreateVideoEmbeddingTaskRequest,
    Embedding,
    EmbeddingPart,
    EmbeddingResponse,
    EmbeddingSegment,
    EmbeddingTask,
    FixedClips,
    MediaSource,
    MultiInput,
    MultiInputEmbeddingRequest,
    TemporalSegmentation,
    TimeBasedMetadataEntry,
    VideoEmbeddingInput,
    VideoEmbeddingOption,
    VideoEmbeddingScope,
    VideoSegmentation,
)
from ..models.indexes import CreatedId
from ._base import Resource, one_source, seg
from .assets import Assets

DEFAULT_EMBED_MODEL = "marengo3.0"
#: What `video_clip_length` / `segmentation.fixed.duration_sec` accept, in seconds.
CLIP_LENGTH_RANGE = (2.0, 10.0)


def video_task_options(
    model_name: str,
    *,
    start_sec: float | None,
    end_sec: float | None,
    clip_length: float | None,
    scopes: Sequence[VideoEmbeddingScope] | None,
    options: Sequence[VideoEmbeddingOption] | None,
    fused: bool,
    time_based_metadata: Sequence[TimeBasedMetadataEntry] | None,
) -> dict[str, Any]:
    """The options of an embed-v2 `video` object (all but its source), checked against the rules of the
    contract and of the model, so a bad combination fails before any upload."""
    low, high = CLIP_LENGTH_RANGE
    if clip_length is not None and not low <= clip_length <= high:
        raise ValueError(f"clip_length must be between {low:g} and {high:g} seconds (got {clip_length:g})")
    if start_sec is not None and start_sec < 0:
        raise ValueError(f"start_sec must be 0 or more (got {start_sec:g})")
    if end_sec is not None and end_sec <= (start_sec or 0.0):
        raise ValueError(f"end_sec ({end_sec:g}) must be greater than start_sec ({start_sec or 0.0:g})")
    newer = model_name != "marengo3.0"
    if options is not None and not options:
        raise ValueError("options, when given, must name at least one of visual, audio, transcription")
    if newer and options and "transcription" in options:
        raise ValueError("the transcription option needs marengo3.0 (on marengo3.5, audio includes speech)")
    # The documented defaults: 3.0 embeds visual, audio and transcription; 3.5 visual and audio.
    defaults = ["visual", "audio"] if newer else ["visual", "audio", "transcription"]
    chosen = list(options) if options else defaults
    if fused and len(chosen) < 2:
        raise ValueError("fused needs at least two options to combine (e.g. visual and audio)")
    if time_based_metadata and not (fused and newer):
        raise ValueError("time_based_metadata needs marengo3.5 and fused=True")
    if scopes is not None and not scopes:
        raise ValueError("scopes, when given, must name clip and/or asset")
    clips = None
    if clip_length is not None:
        flat = VideoSegmentation(strategy="fixed", fixed=FixedClips(duration_sec=clip_length))
        clips = TemporalSegmentation(temporal=flat) if newer else flat
    return {
        "start_sec": start_sec,
        "end_sec": end_sec,
        "segmentation": clips,
        "embedding_option": list(options) if options else None,
        "embedding_scope": list(dict.fromkeys(scopes)) if scopes else None,
        "embedding_type": ["separate_embedding", "fused_embedding"] if fused else None,
        "time_based_metadata": list(time_based_metadata) if time_based_metadata else None,
    }


class Embed(Resource):
    def __init__(self, http: HTTPCore, assets: Assets) -> None:
        super().__init__(http)
        self._assets = assets

    async def _embed(
        self, form: MultipartForm, field: str | None = None, source: FileSource | None = None
    ) -> Embedding:
        with open_source(source) as file:
            if file is not None and field is not None:
                form.files.append(FilePart(field, file))
            # Embedding the same input again returns the same vector: safe to repeat.
            response = await self._call("POST", "/embed", form=form, idempotent=True)
        return self._parse(response, Embedding)

    async def text(
        self, text: str, *, model_name: str = DEFAULT_EMBED_MODEL, auto_truncate: bool | None = None
    ) -> Embedding:
        """The vector of `text`. Marengo 3.0 (`POST /embed`) takes at most 500 tokens and cannot truncate;
        later models take text through `POST /embed-v2` (multi_input, up to 2,000 tokens), where
        `auto_truncate=True` cuts longer text to fit instead of refusing it (`usage.truncated` says so)."""
        if not text.strip():
            raise ValueError("text to embed must not be empty")
        if model_name == DEFAULT_EMBED_MODEL:
            if auto_truncate:
                raise ValueError(
                    "auto_truncate needs marengo3.5: marengo3.0 takes at most 500 tokens of text, untruncated"
                )
            form = MultipartForm()
            form.add("model_name", model_name)
            form.add("text", text)
            return await self._embed(form)
        request = MultiInputEmbeddingRequest(
            model_name=model_name, multi_input=MultiInput(input_text=text), auto_truncate=auto_truncate
        )
        # Embedding the same input again returns the same vector: safe to repeat.
        response = await self._call("POST", "/embed-v2", json_body=request.to_wire(), idempotent=True)
        result = self._parse(response, EmbeddingResponse)
        return Embedding(
            model_name=model_name,
            text_embedding=EmbeddingPart(
                segments=[EmbeddingSegment(float=d.embedding) for d in result.data], metadata=result.metadata
            ),
            usage=result.usage,
        )

    async def image(
        self,
        *,
        path: FileSource | None = None,
        url: str | None = None,
        model_name: str = DEFAULT_EMBED_MODEL,
    ) -> Embedding:
        one_source(path=path, url=url)
        form = MultipartForm()
        form.add("model_name", model_name)
        form.add("image_url", url)
        return await self._embed(form, "image_file", path)

    async def audio(
        self,
        *,
        path: FileSource | None = None,
        url: str | None = None,
        model_name: str = DEFAULT_EMBED_MODEL,
        start_offset_sec: float | None = None,
    ) -> Embedding:
        one_source(path=path, url=url)
        form = MultipartForm()
        form.add("model_name", model_name)
        form.add("audio_url", url)
        form.add("audio_start_offset_sec", start_offset_sec)
        return await self._embed(form, "audio_file", path)

    async def create_video_task(
        self,
        *,
        path: FileSource | None = None,
        url: str | None = None,
        asset_id: str | None = None,
        model_name: str = DEFAULT_EMBED_MODEL,
        start_sec: float | None = None,
        end_sec: float | None = None,
        clip_length: float | None = None,
        scopes: Sequence[VideoEmbeddingScope] | None = None,
        options: Sequence[VideoEmbeddingOption] | None = None,
        fused: bool = False,
        time_based_metadata: Sequence[TimeBasedMetadataEntry] | None = None,
        asset_ready_timeout: float = 600.0,
        progress: ByteProgress | None = None,
    ) -> str:
        """Start an embed-v2 video task; a local `path` is uploaded as an asset first and awaited until ready.

        `clip_length` (2–10 s) cuts fixed clips; `scopes` are `clip` (one vector per clip) and/or `asset`
        (one for the whole span); `options` pick the modalities; `fused` adds one vector combining them;
        `time_based_metadata` (Marengo 3.5, with `fused`) folds timed text into the fused vectors.
        Bad combinations raise `ValueError` before anything is sent. Read the task with `get_video_task`.
        """
        one_source(path=path, url=url, asset_id=asset_id)
        chosen = video_task_options(
            model_name,
            start_sec=start_sec,
            end_sec=end_sec,
            clip_length=clip_length,
            scopes=scopes,
            options=options,
            fused=fused,
            time_based_metadata=time_based_metadata,
        )
        if path is not None:
            asset = await self._assets.upload(path, progress=progress)
            asset_id = (await self._assets.wait_ready(asset.id, max_wait=asset_ready_timeout)).id
        video = VideoEmbeddingInput(media_source=MediaSource(url=url, asset_id=asset_id), **chosen)
        request = CreateVideoEmbeddingTaskRequest(model_name=model_name, video=video)
        response = await self._call("POST", "/embed-v2/tasks", json_body=request.to_wire(), idempotent=False)
        return self._parse(response, CreatedId).id

    async def get_video_task(self, task_id: str) -> EmbeddingTask:
        return await self._get(f"/embed-v2/tasks/{seg(task_id)}", EmbeddingTask)
