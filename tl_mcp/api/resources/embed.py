"""Embeddings: `/embed` for text, image and audio (sync), `/embed-v2/tasks` for video (async)."""

from __future__ import annotations

from .._http import HTTPCore
from .._multipart import ByteProgress, FilePart, FileSource, MultipartForm, open_source
from ..models.embed import (
    CreateVideoEmbeddingTaskRequest,
    Embedding,
    EmbeddingTask,
    MediaSource,
    VideoEmbeddingInput,
)
from ..models.indexes import CreatedId
from ._base import Resource, one_source, seg
from .assets import Assets

DEFAULT_EMBED_MODEL = "marengo3.0"


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

    async def text(self, text: str, *, model_name: str = DEFAULT_EMBED_MODEL) -> Embedding:
        if not text.strip():
            raise ValueError("text to embed must not be empty")
        form = MultipartForm()
        form.add("model_name", model_name)
        form.add("text", text)
        return await self._embed(form)

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
        asset_ready_timeout: float = 600.0,
        progress: ByteProgress | None = None,
    ) -> str:
        """Start an embed-v2 video task; a local `path` is uploaded as an asset first and awaited until ready.

        Video tasks use `/embed-v2/tasks` (JSON; url / asset_id sources); read them with `get_video_task`.
        """
        one_source(path=path, url=url, asset_id=asset_id)
        if path is not None:
            asset = await self._assets.upload(path, progress=progress)
            asset_id = (await self._assets.wait_ready(asset.id, max_wait=asset_ready_timeout)).id
        request = CreateVideoEmbeddingTaskRequest(
            model_name=model_name,
            video=VideoEmbeddingInput(
                media_source=MediaSource(url=url, asset_id=asset_id), start_sec=start_sec, end_sec=end_sec
            ),
        )
        response = await self._call("POST", "/embed-v2/tasks", json_body=request.to_wire(), idempotent=False)
        return self._parse(response, CreatedId).id

    async def get_video_task(self, task_id: str) -> EmbeddingTask:
        return await self._get(f"/embed-v2/tasks/{seg(task_id)}", EmbeddingTask)
