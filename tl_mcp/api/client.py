"""`TwelveLabsClient`: the one async client for the TwelveLabs v1.3 API."""

from __future__ import annotations

import json
import logging
import math
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import anyio
import httpx2
from pydantic import BaseModel, ValidationError

from ._http import Body, HTTPCore, QueryParams, RetryPolicy, Timeouts
from ._multipart import (
    ByteProgress,
    FilePart,
    FileSliceStream,
    FileSource,
    MultipartForm,
    OpenFile,
    ProgressCounter,
    open_source,
)
from .errors import APIStatusError, StreamError, TwelveLabsError, UploadError
from .models._base import MetadataValue, Page
from .models.analyze import (
    AnalyzeEvent,
    AnalyzeRequest,
    AnalyzeResult,
    AnalyzeTask,
    AnalyzeTaskCreated,
    ResponseFormat,
    VideoSource,
)
from .models.assets import (
    Asset,
    AssetTranscription,
    CompletedChunk,
    CreateMultipartUploadRequest,
    MultipartUploadSession,
    MultipartUploadStatus,
    PresignedURL,
    PresignedURLs,
    PresignedURLsRequest,
    ReportChunksRequest,
    ReportChunksResult,
)
from .models.embed import (
    CreateVideoEmbeddingTaskRequest,
    Embedding,
    EmbeddingTask,
    MediaSource,
    VideoEmbeddingInput,
)
from .models.indexes import (
    AssetIndexing,
    CreatedId,
    CreateIndexRequest,
    Index,
    IndexAssetRequest,
    IndexedAsset,
    IndexModel,
    Task,
    TaskRef,
    Video,
)
from .models.knowledge import (
    AddItemRequest,
    CreateItemCollectionRequest,
    CreateKnowledgeStoreRequest,
    ItemCollection,
    ItemIdsRequest,
    KnowledgeStore,
    KnowledgeStoreItem,
    KnowledgeStoreSearchPage,
    KnowledgeStoreSearchRequest,
    KSSearchOptions,
    KSSearchQuery,
    KSVideoSearchOptions,
    UpdateItemCollectionRequest,
    UpdateKnowledgeStoreRequest,
)
from .models.responses import ResponseObject, ResponseRequest, ResponseUpdate
from .models.search import SearchPage
from .polling import PollPolicy, poll
from .streaming import (
    AnalyzeAssembler,
    NDJSONDecoder,
    ResponseAssembler,
    SSEDecoder,
    iter_with_idle_timeout,
)

logger = logging.getLogger("tl_mcp.api")

DEFAULT_BASE_URL = "https://api.twelvelabs.io/v1.3"
DEFAULT_USER_AGENT = "tl-mcp/0.1 (+httpx2)"
# Direct uploads are capped at 200 MB by the API; above this we use a multipart-upload session.
DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 * 1024
DEFAULT_EMBED_MODEL = "marengo3.0"
_PRESIGN_BATCH = 50

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _seg(value: str) -> str:
    """A path segment: ids and page tokens are opaque, so escape everything."""
    if not value:
        raise ValueError("an id or token must not be empty")
    return quote(value, safe="")


def _media_kind(name: str) -> Literal["video", "audio", "image"]:
    mime = mimetypes.guess_type(name)[0] or ""
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("image/"):
        return "image"
    return "video"


def _one_source(**sources: object) -> str:
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(sources)} (got {', '.join(given) or 'none'})")
    return given[0]


class TwelveLabsClient:
    """Async client for TwelveLabs v1.3. Use as `async with TwelveLabsClient(key) as tl: ...`.

    Read requests (and the POSTs that are safe to repeat: search, embed) are retried per `RetryPolicy`;
    creating things is never repeated automatically. The API key is never shown in reprs, logs or errors.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        user_agent: str | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("an API key is required (set TWELVELABS_API_KEY)")
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeout or Timeouts()
        self.retry = retry or RetryPolicy()
        #: How waits on upstream work (asset processing, indexing, tasks) space their checks.
        self.poll = poll or PollPolicy()
        self._http = HTTPCore(
            base_url=self.base_url,
            api_key=api_key,
            transport=transport,
            timeouts=self.timeouts,
            retry=self.retry,
            user_agent=user_agent or DEFAULT_USER_AGENT,
        )

    def __repr__(self) -> str:
        return f"TwelveLabsClient(base_url={self.base_url!r}, api_key='***')"

    async def __aenter__(self) -> TwelveLabsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ plumbing

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json_body: Any = None,
        form: MultipartForm | None = None,
        progress: ByteProgress | None = None,
        idempotent: bool | None = None,
    ) -> httpx2.Response:
        body = None
        if form is not None:
            body = Body(form=form, progress=progress)
        elif json_body is not None:
            body = Body(json=json_body)
        return await self._http.request(method, path, params=params, body=body, idempotent=idempotent)

    async def _parse(self, response: httpx2.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise TwelveLabsError(
                f"{response.request.method} {response.request.url.path}: unexpected response shape "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})",
                status=response.status_code,
            ) from exc

    async def _get(self, path: str, model: type[M], params: QueryParams | None = None) -> M:
        return await self._parse(await self._call("GET", path, params=params), model)

    async def _page(self, path: str, model: type[M], params: QueryParams) -> Page[M]:
        return await self._parse(await self._call("GET", path, params=params), Page[model])  # type: ignore[valid-type]

    @staticmethod
    async def _iterate_pages(
        fetch: Callable[[int], Awaitable[Page[T]]], *, start: int = 1, max_pages: int = 10_000
    ) -> AsyncIterator[T]:
        page_no = start
        for _ in range(max_pages):
            page = await fetch(page_no)
            for entry in page.data:
                yield entry
            if not page.has_more:
                return
            page_no += 1

    # ------------------------------------------------------------ assets

    async def upload_file(
        self,
        path: FileSource,
        *,
        filename: str | None = None,
        progress: ByteProgress | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        user_metadata: Mapping[str, MetadataValue] | None = None,
        enable_hls: bool | None = None,
        enable_thumbnail: bool | None = None,
    ) -> Asset:
        """Upload a local file as an asset, streaming it from disk; large files use a multipart session.

        `path` may also be an open binary file: it is read with positional reads and left open.
        """
        with open_source(path) as file:
            assert file is not None
            return await self._upload_open_file(
                file,
                filename=filename,
                progress=progress,
                multipart_threshold=multipart_threshold,
                user_metadata=user_metadata,
                enable_hls=enable_hls,
                enable_thumbnail=enable_thumbnail,
            )

    async def _upload_open_file(
        self,
        file: OpenFile,
        *,
        filename: str | None,
        progress: ByteProgress | None,
        multipart_threshold: int,
        user_metadata: Mapping[str, MetadataValue] | None,
        enable_hls: bool | None,
        enable_thumbnail: bool | None,
    ) -> Asset:
        size = file.size
        if size == 0:
            raise ValueError(f"{file.name} is empty; nothing to upload")
        if size > multipart_threshold:
            return await self._upload_multipart(
                file,
                filename=filename,
                progress=progress,
                user_metadata=user_metadata,
                enable_hls=enable_hls,
                enable_thumbnail=enable_thumbnail,
            )
        form = MultipartForm()
        form.add("method", "direct")
        form.add("filename", filename)
        form.add("enable_hls", enable_hls)
        form.add("enable_thumbnail", enable_thumbnail)
        if user_metadata is not None:
            form.add("user_metadata", json.dumps(dict(user_metadata)))
        form.files.append(FilePart("file", file, filename=filename))
        response = await self._call("POST", "/assets", form=form, progress=progress, idempotent=False)
        return await self._parse(response, Asset)

    async def create_asset_from_url(
        self,
        url: str,
        *,
        filename: str | None = None,
        user_metadata: Mapping[str, MetadataValue] | None = None,
        enable_hls: bool | None = None,
        enable_thumbnail: bool | None = None,
    ) -> Asset:
        form = MultipartForm()
        form.add("method", "url")
        form.add("url", url)
        form.add("filename", filename)
        form.add("enable_hls", enable_hls)
        form.add("enable_thumbnail", enable_thumbnail)
        if user_metadata is not None:
            form.add("user_metadata", json.dumps(dict(user_metadata)))
        return await self._parse(await self._call("POST", "/assets", form=form, idempotent=False), Asset)

    async def get_asset(self, asset_id: str) -> Asset:
        return await self._get(f"/assets/{_seg(asset_id)}", Asset)

    async def list_assets(
        self,
        page: int = 1,
        page_limit: int = 10,
        *,
        asset_ids: Sequence[str] | None = None,
        asset_types: Sequence[str] | None = None,
        filename: str | None = None,
    ) -> Page[Asset]:
        params: dict[str, Any] = {"page": page, "page_limit": page_limit, "filename": filename}
        if asset_ids:
            params["asset_ids"] = list(asset_ids)
        if asset_types:
            params["asset_types"] = list(asset_types)
        return await self._page("/assets", Asset, params)

    def iter_assets(self, *, page_limit: int = 50) -> AsyncIterator[Asset]:
        return self._iterate_pages(lambda n: self.list_assets(n, page_limit))

    async def delete_asset(self, asset_id: str, *, force: bool = False) -> None:
        await self._call("DELETE", f"/assets/{_seg(asset_id)}", params={"force": "true"} if force else None)

    async def get_asset_transcription(
        self,
        asset_id: str,
        *,
        include: Sequence[Literal["words", "sentences", "utterances"]] = ("sentences",),
    ) -> AssetTranscription:
        return await self._get(
            f"/assets/{_seg(asset_id)}/transcription", AssetTranscription, {"include": list(include)}
        )

    async def list_asset_indexings(
        self, asset_id: str, page: int = 1, page_limit: int = 10
    ) -> Page[AssetIndexing]:
        """The indexed assets (videos) made from `asset_id`, newest first, each with its index."""
        params = {"page": page, "page_limit": page_limit}
        return await self._page(f"/assets/{_seg(asset_id)}/indexed-assets", AssetIndexing, params)

    async def sandbox_thumbnail(self, media_id: str, seconds: float) -> bytes:
        """The JPEG of the scene at `seconds` of an asset, video or knowledge-store item.

        A sandbox extension: TwelveLabs has no such route (its thumbnails come as signed URLs in search
        results and citations), so against the cloud this is a 404.
        """
        response = await self._call("GET", f"/thumbnails/{_seg(media_id)}", params={"time": f"{seconds:g}"})
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime != "image/jpeg":
            raise TwelveLabsError(
                f"GET /thumbnails/{media_id}: expected a JPEG, got {mime or 'no content type'}",
                status=response.status_code,
            )
        return response.content

    # ------------------------------------------------------------ multipart upload sessions

    async def create_multipart_upload(self, request: CreateMultipartUploadRequest) -> MultipartUploadSession:
        response = await self._call(
            "POST", "/assets/multipart-uploads", json_body=request.to_wire(), idempotent=False
        )
        return await self._parse(response, MultipartUploadSession)

    async def get_presigned_urls(self, upload_id: str, start: int, count: int) -> PresignedURLs:
        body = PresignedURLsRequest(start=start, count=count).to_wire()
        path = f"/assets/multipart-uploads/{_seg(upload_id)}/presigned-urls"
        # Asking for URLs again just mints new ones: safe to repeat.
        return await self._parse(
            await self._call("POST", path, json_body=body, idempotent=True), PresignedURLs
        )

    async def report_completed_chunks(
        self, upload_id: str, chunks: Sequence[CompletedChunk]
    ) -> ReportChunksResult:
        body = ReportChunksRequest(completed_chunks=list(chunks)).to_wire()
        path = f"/assets/multipart-uploads/{_seg(upload_id)}"
        # Reporting a chunk twice is counted as a duplicate, not an error: safe to repeat.
        return await self._parse(
            await self._call("POST", path, json_body=body, idempotent=True), ReportChunksResult
        )

    async def get_multipart_upload(self, upload_id: str) -> MultipartUploadStatus:
        return await self._get(f"/assets/multipart-uploads/{_seg(upload_id)}", MultipartUploadStatus)

    async def _put_part(
        self,
        url: PresignedURL,
        headers: Mapping[str, str],
        file: OpenFile,
        offset: int,
        length: int,
        counter: ProgressCounter,
    ) -> str:
        def stream() -> httpx2.AsyncByteStream:
            return FileSliceStream(file, offset, length, counter)

        # Presigned URLs may point at another host: never send the API key there.
        response = await self._http.request(
            "PUT",
            url.url,
            body=Body(stream_factory=stream, content_length=length),
            headers=headers,
            idempotent=True,
            authenticated=False,
        )
        etag = response.headers.get("etag")
        if not etag:
            raise UploadError(f"the storage server accepted part {url.chunk_index} but returned no ETag")
        return etag.strip()

    async def _upload_multipart(
        self,
        file: OpenFile,
        *,
        filename: str | None,
        progress: ByteProgress | None,
        user_metadata: Mapping[str, MetadataValue] | None,
        enable_hls: bool | None,
        enable_thumbnail: bool | None,
    ) -> Asset:
        size = file.size
        session = await self.create_multipart_upload(
            CreateMultipartUploadRequest(
                filename=filename or file.name,
                type=_media_kind(file.name),
                total_size=size,
                enable_hls=enable_hls,
                enable_thumbnail=enable_thumbnail,
                user_metadata=dict(user_metadata) if user_metadata is not None else None,
            )
        )
        chunk_size = session.chunk_size
        total_chunks = session.total_chunks or math.ceil(size / chunk_size)
        if chunk_size <= 0 or total_chunks != math.ceil(size / chunk_size):
            raise UploadError(
                f"the upload session's chunking ({total_chunks} × {chunk_size} B) "
                f"does not fit a {size} B file"
            )
        urls = {u.chunk_index: u for u in session.upload_urls}
        counter = ProgressCounter(size, progress)
        await counter.update(0)
        for index in range(1, total_chunks + 1):
            if index not in urls:
                count = min(_PRESIGN_BATCH, total_chunks - index + 1)
                fresh = await self.get_presigned_urls(session.upload_id, index, count)
                urls.update({u.chunk_index: u for u in fresh.upload_urls})
                if index not in urls:
                    raise UploadError(f"the API gave no upload URL for part {index} of {total_chunks}")
            offset = (index - 1) * chunk_size
            length = min(chunk_size, size - offset)
            etag = await self._put_part(
                urls.pop(index), session.upload_headers, file, offset, length, counter
            )
            counter.commit(length)
            await counter.update(0)
            await self.report_completed_chunks(
                session.upload_id,
                [CompletedChunk(chunk_index=index, proof=etag, chunk_size=length)],
            )
        status = await self.get_multipart_upload(session.upload_id)
        if status.status not in ("completed",) and (status.chunks_completed or 0) < total_chunks:
            raise UploadError(
                f"multipart upload {session.upload_id} is {status.status!r} after sending every part "
                f"({status.chunks_completed} of {total_chunks} parts confirmed)"
            )
        return await self.get_asset(session.asset_id)

    # ------------------------------------------------------------ indexes

    async def create_index(
        self, name: str, *, models: list[IndexModel] | None = None, addons: list[str] | None = None
    ) -> str:
        request = CreateIndexRequest(index_name=name, models=models or [IndexModel()], addons=addons)
        response = await self._call("POST", "/indexes", json_body=request.to_wire(), idempotent=False)
        return (await self._parse(response, CreatedId)).id

    async def get_index(self, index_id: str) -> Index:
        return await self._get(f"/indexes/{_seg(index_id)}", Index)

    async def list_indexes(self, page: int = 1, page_limit: int = 10, name: str | None = None) -> Page[Index]:
        return await self._page(
            "/indexes", Index, {"page": page, "page_limit": page_limit, "index_name": name}
        )

    def iter_indexes(self, *, page_limit: int = 50, name: str | None = None) -> AsyncIterator[Index]:
        return self._iterate_pages(lambda n: self.list_indexes(n, page_limit, name))

    async def rename_index(self, index_id: str, name: str) -> None:
        await self._call("PUT", f"/indexes/{_seg(index_id)}", json_body={"index_name": name})

    async def delete_index(self, index_id: str) -> None:
        await self._call("DELETE", f"/indexes/{_seg(index_id)}")

    # ------------------------------------------------------------ indexed assets

    async def index_asset(
        self,
        index_id: str,
        asset_id: str,
        *,
        enable_video_stream: bool | None = None,
        user_metadata: Mapping[str, MetadataValue] | None = None,
    ) -> str:
        request = IndexAssetRequest(
            asset_id=asset_id,
            enable_video_stream=enable_video_stream,
            user_metadata=dict(user_metadata) if user_metadata is not None else None,
        )
        path = f"/indexes/{_seg(index_id)}/indexed-assets"
        return (await self._parse(await self._call("POST", path, json_body=request.to_wire()), CreatedId)).id

    async def get_indexed_asset(
        self, index_id: str, indexed_asset_id: str, *, transcription: bool = False
    ) -> IndexedAsset:
        path = f"/indexes/{_seg(index_id)}/indexed-assets/{_seg(indexed_asset_id)}"
        return await self._get(path, IndexedAsset, {"transcription": "true"} if transcription else None)

    async def list_indexed_assets(
        self, index_id: str, page: int = 1, page_limit: int = 10, *, status: Sequence[str] | None = None
    ) -> Page[IndexedAsset]:
        params: dict[str, Any] = {"page": page, "page_limit": page_limit}
        if status:
            params["status"] = list(status)
        return await self._page(f"/indexes/{_seg(index_id)}/indexed-assets", IndexedAsset, params)

    def iter_indexed_assets(self, index_id: str, *, page_limit: int = 50) -> AsyncIterator[IndexedAsset]:
        return self._iterate_pages(lambda n: self.list_indexed_assets(index_id, n, page_limit))

    async def delete_indexed_asset(self, index_id: str, indexed_asset_id: str) -> None:
        await self._call("DELETE", f"/indexes/{_seg(index_id)}/indexed-assets/{_seg(indexed_asset_id)}")

    # ------------------------------------------------------------ videos

    async def list_videos(self, index_id: str, page: int = 1, page_limit: int = 10) -> Page[Video]:
        return await self._page(
            f"/indexes/{_seg(index_id)}/videos", Video, {"page": page, "page_limit": page_limit}
        )

    def iter_videos(self, index_id: str, *, page_limit: int = 50) -> AsyncIterator[Video]:
        return self._iterate_pages(lambda n: self.list_videos(index_id, n, page_limit))

    async def get_video(self, index_id: str, video_id: str, *, transcription: bool = False) -> Video:
        path = f"/indexes/{_seg(index_id)}/videos/{_seg(video_id)}"
        return await self._get(path, Video, {"transcription": "true"} if transcription else None)

    async def delete_video(self, index_id: str, video_id: str) -> None:
        await self._call("DELETE", f"/indexes/{_seg(index_id)}/videos/{_seg(video_id)}")

    # ------------------------------------------------------------ tasks (upload + index in one call)

    async def create_task(
        self,
        index_id: str,
        *,
        path: FileSource | None = None,
        url: str | None = None,
        progress: ByteProgress | None = None,
        enable_video_stream: bool | None = None,
        user_metadata: Mapping[str, MetadataValue] | None = None,
    ) -> TaskRef:
        _one_source(path=path, url=url)
        form = MultipartForm()
        form.add("index_id", index_id)
        form.add("video_url", url)
        form.add("enable_video_stream", enable_video_stream)
        if user_metadata is not None:
            form.add("user_metadata", json.dumps(dict(user_metadata)))
        with open_source(path) as file:
            if file is not None:
                form.files.append(FilePart("video_file", file))
            response = await self._call("POST", "/tasks", form=form, progress=progress)
        return await self._parse(response, TaskRef)

    async def get_task(self, task_id: str) -> Task:
        return await self._get(f"/tasks/{_seg(task_id)}", Task)

    async def list_tasks(
        self, page: int = 1, page_limit: int = 10, *, index_id: str | None = None
    ) -> Page[Task]:
        return await self._page(
            "/tasks", Task, {"page": page, "page_limit": page_limit, "index_id": index_id}
        )

    # ------------------------------------------------------------ search

    async def search(
        self,
        index_id: str,
        *,
        query_text: str | None = None,
        query_media_path: FileSource | None = None,
        query_media_url: str | None = None,
        query_media_type: Literal["image"] = "image",
        search_options: Sequence[str] = ("visual", "audio"),
        operator: Literal["or", "and"] | None = None,
        group_by: Literal["clip", "video"] | None = None,
        page_limit: int | None = None,
        filter: Mapping[str, Any] | None = None,
        transcription_options: Sequence[str] | None = None,
        include_user_metadata: bool | None = None,
    ) -> SearchPage:
        if query_text is None and query_media_path is None and query_media_url is None:
            raise ValueError("search needs query_text, query_media_path or query_media_url")
        if not search_options:
            raise ValueError("search_options must name at least one of visual, audio, transcription")
        form = MultipartForm()
        form.add("index_id", index_id)
        form.add_all("search_options", list(search_options))
        form.add("query_text", query_text)
        if query_media_path is not None or query_media_url is not None:
            form.add("query_media_type", query_media_type)
        form.add("query_media_url", query_media_url)
        form.add("operator", operator)
        form.add("group_by", group_by)
        form.add("page_limit", page_limit)
        if filter is not None:
            form.add("filter", json.dumps(dict(filter)))
        form.add_all("transcription_options", list(transcription_options) if transcription_options else None)
        form.add("include_user_metadata", include_user_metadata)
        with open_source(query_media_path) as file:
            if file is not None:
                form.files.append(FilePart("query_media_file", file))
            # A search reads the index and changes nothing: safe to repeat.
            response = await self._call("POST", "/search", form=form, idempotent=True)
        return await self._parse(response, SearchPage)

    async def search_page(self, page_token: str, *, include_user_metadata: bool | None = None) -> SearchPage:
        params = (
            {"include_user_metadata": include_user_metadata} if include_user_metadata is not None else None
        )
        return await self._get(f"/search/{_seg(page_token)}", SearchPage, params)

    async def iter_search(
        self, index_id: str, *, max_pages: int = 100, **kwargs: Any
    ) -> AsyncIterator[SearchPage]:
        """The first page from `search(...)`, then every following page via its `next_page_token`."""
        page = await self.search(index_id, **kwargs)
        for _ in range(max_pages):
            yield page
            token = page.page_info.next_page_token
            if not token:
                return
            page = await self.search_page(token)

    # ------------------------------------------------------------ embeddings

    async def _embed(
        self, form: MultipartForm, field: str | None = None, source: FileSource | None = None
    ) -> Embedding:
        with open_source(source) as file:
            if file is not None and field is not None:
                form.files.append(FilePart(field, file))
            # Embedding the same input again returns the same vector: safe to repeat.
            response = await self._call("POST", "/embed", form=form, idempotent=True)
        return await self._parse(response, Embedding)

    async def embed_text(self, text: str, *, model_name: str = DEFAULT_EMBED_MODEL) -> Embedding:
        if not text.strip():
            raise ValueError("text to embed must not be empty")
        form = MultipartForm()
        form.add("model_name", model_name)
        form.add("text", text)
        return await self._embed(form)

    async def embed_image(
        self,
        *,
        path: FileSource | None = None,
        url: str | None = None,
        model_name: str = DEFAULT_EMBED_MODEL,
    ) -> Embedding:
        _one_source(path=path, url=url)
        form = MultipartForm()
        form.add("model_name", model_name)
        form.add("image_url", url)
        return await self._embed(form, "image_file", path)

    async def embed_audio(
        self,
        *,
        path: FileSource | None = None,
        url: str | None = None,
        model_name: str = DEFAULT_EMBED_MODEL,
        start_offset_sec: float | None = None,
    ) -> Embedding:
        _one_source(path=path, url=url)
        form = MultipartForm()
        form.add("model_name", model_name)
        form.add("audio_url", url)
        form.add("audio_start_offset_sec", start_offset_sec)
        return await self._embed(form, "audio_file", path)

    async def create_video_embedding_task(
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

        Video tasks use `/embed-v2/tasks` (JSON; url / asset_id sources); read them with
        `get_video_embedding_task`.
        """
        _one_source(path=path, url=url, asset_id=asset_id)
        if path is not None:
            asset = await self.upload_file(path, progress=progress)
            asset_id = (await self.wait_for_asset(asset.id, max_wait=asset_ready_timeout)).id
        request = CreateVideoEmbeddingTaskRequest(
            model_name=model_name,
            video=VideoEmbeddingInput(
                media_source=MediaSource(url=url, asset_id=asset_id), start_sec=start_sec, end_sec=end_sec
            ),
        )
        response = await self._call("POST", "/embed-v2/tasks", json_body=request.to_wire(), idempotent=False)
        return (await self._parse(response, CreatedId)).id

    async def get_video_embedding_task(self, task_id: str) -> EmbeddingTask:
        return await self._get(f"/embed-v2/tasks/{_seg(task_id)}", EmbeddingTask)

    async def wait_for_asset(self, asset_id: str, *, max_wait: float = 600.0) -> Asset:
        """Poll an asset (per `self.poll`) until it is `ready`; raise on `failed` or after `max_wait` s."""
        with anyio.move_on_after(max_wait):
            asset = await poll(
                lambda: self.get_asset(asset_id), lambda a: a.status in ("ready", "failed"), policy=self.poll
            )
            if asset.status == "failed":
                reason = asset.error.message if asset.error and asset.error.message else "no reason given"
                raise TwelveLabsError(f"asset {asset_id} failed to process: {reason}")
            return asset
        raise TwelveLabsError(f"asset {asset_id} was not ready after {max_wait:g} s; poll it again later")

    # ------------------------------------------------------------ analyze

    @staticmethod
    def _analyze_request(
        video: VideoSource,
        prompt: str,
        *,
        response_format: Mapping[str, Any] | None,
        temperature: float | None,
        max_tokens: int | None,
        model_name: str | None,
        start_time: float | None,
        end_time: float | None,
        stream: bool | None,
    ) -> AnalyzeRequest:
        if not prompt.strip():
            raise ValueError("prompt must not be empty")
        return AnalyzeRequest(
            video=video,
            prompt=prompt,
            response_format=ResponseFormat(json_schema=dict(response_format))
            if response_format is not None
            else None,
            temperature=temperature,
            max_tokens=max_tokens,
            model_name=model_name,
            start_time=start_time,
            end_time=end_time,
            stream=stream,
        )

    async def analyze(
        self,
        video: VideoSource,
        prompt: str,
        *,
        response_format: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_name: str | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
    ) -> AnalyzeResult:
        request = self._analyze_request(
            video,
            prompt,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            model_name=model_name,
            start_time=start_time,
            end_time=end_time,
            stream=False,
        )
        response = await self._call("POST", "/analyze", json_body=request.to_wire(), idempotent=False)
        return await self._parse(response, AnalyzeResult)

    async def analyze_stream(
        self,
        video: VideoSource,
        prompt: str,
        *,
        response_format: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_name: str | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
    ) -> AsyncIterator[AnalyzeEvent]:
        """NDJSON stream of start / text / end events; `StreamError` (with the partial text) on early end.

        Wrap in `contextlib.aclosing(...)` if you may stop early, so the connection closes at once.
        """
        request = self._analyze_request(
            video,
            prompt,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            model_name=model_name,
            start_time=start_time,
            end_time=end_time,
            stream=True,
        )
        assembler = AnalyzeAssembler()
        decoder = NDJSONDecoder()
        async with self._http.stream("POST", "/analyze", body=Body(json=request.to_wire())) as response:
            try:
                async for chunk in iter_with_idle_timeout(response.aiter_raw(), self.timeouts.stream_idle):
                    for obj in decoder.feed(chunk):
                        for event in assembler.feed(obj):
                            yield event
            except (httpx2.TransportError, TwelveLabsError) as exc:
                raise StreamError(
                    f"the analyze stream broke: {exc}",
                    partial_text=assembler.text,
                ) from exc
            for obj in decoder.flush():
                for event in assembler.feed(obj):
                    yield event
            assembler.finish()

    async def create_analyze_task(
        self,
        video: VideoSource,
        prompt: str,
        *,
        response_format: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_name: str | None = None,
    ) -> str:
        body = self._analyze_request(
            video,
            prompt,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            model_name=model_name,
            start_time=None,
            end_time=None,
            stream=None,
        ).to_wire()
        response = await self._call("POST", "/analyze/tasks", json_body=body, idempotent=False)
        return (await self._parse(response, AnalyzeTaskCreated)).task_id

    async def get_analyze_task(self, task_id: str) -> AnalyzeTask:
        return await self._get(f"/analyze/tasks/{_seg(task_id)}", AnalyzeTask)

    async def cancel_analyze_task(self, task_id: str) -> None:
        # Cancelling twice answers 200 again (SDK 1.3.5): safe to repeat.
        await self._call("POST", f"/analyze/tasks/{_seg(task_id)}/cancel", idempotent=True)

    # ------------------------------------------------------------ knowledge stores

    async def create_knowledge_store(
        self,
        name: str,
        *,
        description: str | None = None,
        ingestion_config: Mapping[str, Any] | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> KnowledgeStore:
        request = CreateKnowledgeStoreRequest(
            name=name,
            description=description,
            ingestion_config=dict(ingestion_config) if ingestion_config is not None else None,
            metadata=dict(metadata) if metadata is not None else None,
        )
        response = await self._call(
            "POST", "/knowledge-stores", json_body=request.to_wire(), idempotent=False
        )
        return await self._parse(response, KnowledgeStore)

    async def get_knowledge_store(self, ks_id: str) -> KnowledgeStore:
        return await self._get(f"/knowledge-stores/{_seg(ks_id)}", KnowledgeStore)

    async def list_knowledge_stores(self, page: int = 1, page_limit: int = 10) -> Page[KnowledgeStore]:
        return await self._page("/knowledge-stores", KnowledgeStore, {"page": page, "page_limit": page_limit})

    def iter_knowledge_stores(self, *, page_limit: int = 50) -> AsyncIterator[KnowledgeStore]:
        return self._iterate_pages(lambda n: self.list_knowledge_stores(n, page_limit))

    async def update_knowledge_store(
        self,
        ks_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> KnowledgeStore:
        request = UpdateKnowledgeStoreRequest(
            name=name, description=description, metadata=dict(metadata) if metadata is not None else None
        )
        body = request.to_wire()
        if not body:
            raise ValueError("nothing to update: pass name, description or metadata")
        # PATCH replaces the given fields with the same values on a repeat: safe to repeat.
        response = await self._call(
            "PATCH", f"/knowledge-stores/{_seg(ks_id)}", json_body=body, idempotent=True
        )
        return await self._parse(response, KnowledgeStore)

    async def delete_knowledge_store(self, ks_id: str) -> None:
        await self._call("DELETE", f"/knowledge-stores/{_seg(ks_id)}")

    async def add_knowledge_store_item(
        self,
        ks_id: str,
        *,
        asset_id: str,
        asset_type: Literal["video", "image"] | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> KnowledgeStoreItem:
        request = AddItemRequest(
            asset_id=asset_id,
            asset_type=asset_type,
            metadata=dict(metadata) if metadata is not None else None,
        )
        path = f"/knowledge-stores/{_seg(ks_id)}/items"
        response = await self._call("POST", path, json_body=request.to_wire(), idempotent=False)
        return await self._parse(response, KnowledgeStoreItem)

    async def get_knowledge_store_item(self, ks_id: str, item_id: str) -> KnowledgeStoreItem:
        return await self._get(f"/knowledge-stores/{_seg(ks_id)}/items/{_seg(item_id)}", KnowledgeStoreItem)

    async def list_knowledge_store_items(
        self, ks_id: str, page: int = 1, page_limit: int = 10, status: Sequence[str] | None = None
    ) -> Page[KnowledgeStoreItem]:
        params: dict[str, Any] = {"page": page, "page_limit": page_limit}
        if status:
            params["status"] = list(status)
        return await self._page(f"/knowledge-stores/{_seg(ks_id)}/items", KnowledgeStoreItem, params)

    def iter_knowledge_store_items(
        self, ks_id: str, *, page_limit: int = 50, status: Sequence[str] | None = None
    ) -> AsyncIterator[KnowledgeStoreItem]:
        return self._iterate_pages(lambda n: self.list_knowledge_store_items(ks_id, n, page_limit, status))

    async def delete_knowledge_store_item(self, ks_id: str, item_id: str) -> None:
        await self._call("DELETE", f"/knowledge-stores/{_seg(ks_id)}/items/{_seg(item_id)}")

    # ------------------------------------------------------------ item collections

    def _collections(self, ks_id: str, collection_id: str | None = None) -> str:
        path = f"/knowledge-stores/{_seg(ks_id)}/item-collections"
        return path if collection_id is None else f"{path}/{_seg(collection_id)}"

    async def create_item_collection(
        self,
        ks_id: str,
        name: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> ItemCollection:
        request = CreateItemCollectionRequest(
            name=name, description=description, metadata=dict(metadata) if metadata is not None else None
        )
        response = await self._call(
            "POST", self._collections(ks_id), json_body=request.to_wire(), idempotent=False
        )
        return await self._parse(response, ItemCollection)

    async def get_item_collection(self, ks_id: str, collection_id: str) -> ItemCollection:
        return await self._get(self._collections(ks_id, collection_id), ItemCollection)

    async def list_item_collections(
        self, ks_id: str, page: int = 1, page_limit: int = 10
    ) -> Page[ItemCollection]:
        return await self._page(
            self._collections(ks_id), ItemCollection, {"page": page, "page_limit": page_limit}
        )

    async def update_item_collection(
        self,
        ks_id: str,
        collection_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> ItemCollection:
        body = UpdateItemCollectionRequest(
            name=name, description=description, metadata=dict(metadata) if metadata is not None else None
        ).to_wire()
        if not body:
            raise ValueError("nothing to update: pass name, description or metadata")
        path = self._collections(ks_id, collection_id)
        return await self._parse(
            await self._call("PATCH", path, json_body=body, idempotent=True), ItemCollection
        )

    async def delete_item_collection(self, ks_id: str, collection_id: str) -> None:
        await self._call("DELETE", self._collections(ks_id, collection_id))

    async def list_item_collection_items(
        self, ks_id: str, collection_id: str, page: int = 1, page_limit: int = 10
    ) -> Page[KnowledgeStoreItem]:
        path = f"{self._collections(ks_id, collection_id)}/items"
        return await self._page(path, KnowledgeStoreItem, {"page": page, "page_limit": page_limit})

    async def add_items_to_collection(
        self, ks_id: str, collection_id: str, item_ids: Sequence[str]
    ) -> ItemCollection:
        body = ItemIdsRequest(item_ids=list(item_ids)).to_wire()
        path = f"{self._collections(ks_id, collection_id)}/items/add"
        # Documented as idempotent (members already present are skipped).
        return await self._parse(
            await self._call("POST", path, json_body=body, idempotent=True), ItemCollection
        )

    async def remove_items_from_collection(
        self, ks_id: str, collection_id: str, item_ids: Sequence[str]
    ) -> None:
        body = ItemIdsRequest(item_ids=list(item_ids)).to_wire()
        path = f"{self._collections(ks_id, collection_id)}/items/remove"
        await self._call("POST", path, json_body=body, idempotent=True)

    # ------------------------------------------------------------ knowledge-store search

    async def search_knowledge_store(
        self,
        ks_id: str,
        query: str,
        *,
        page_token: str | None = None,
        page_size: int | None = None,
        modalities: Sequence[Literal["visual", "audio"]] | None = None,
        group_by: Literal["none", "item"] | None = None,
        filter: Mapping[str, Any] | None = None,
        include_metadata: bool | None = None,
    ) -> KnowledgeStoreSearchPage:
        if not query.strip():
            raise ValueError("query must not be empty")
        request = KnowledgeStoreSearchRequest(
            query=KSSearchQuery(text=query),
            page_token=page_token,
            page_size=page_size,
            search_options=KSSearchOptions(video=KSVideoSearchOptions(modalities=list(modalities)))
            if modalities
            else None,
            group_by=group_by,
            filter=dict(filter) if filter is not None else None,
            include_metadata=include_metadata,
        )
        path = f"/knowledge-stores/{_seg(ks_id)}/search"
        response = await self._call("POST", path, json_body=request.to_wire(), idempotent=True)
        return await self._parse(response, KnowledgeStoreSearchPage)

    async def iter_knowledge_store_search(
        self, ks_id: str, query: str, *, max_pages: int = 100, **kwargs: Any
    ) -> AsyncIterator[KnowledgeStoreSearchPage]:
        token: str | None = None
        for _ in range(max_pages):
            page = await self.search_knowledge_store(ks_id, query, page_token=token, **kwargs)
            yield page
            token = page.next_page_token
            if not token:
                return

    # ------------------------------------------------------------ responses (Jockey)

    async def create_response(self, request: ResponseRequest) -> ResponseObject:
        """One Jockey turn, waiting for the whole answer. Never retried: a turn is not idempotent."""
        response = await self._http.request(
            "POST",
            "/responses",
            body=Body(json=request.to_wire(stream=False)),
            idempotent=False,
            timeout=self.timeouts.httpx_stream(),
        )
        return await self._parse(response, ResponseObject)

    async def stream_response(self, request: ResponseRequest) -> AsyncIterator[ResponseUpdate]:
        """One Jockey turn over SSE as typed updates; `ResponseDone` is last on success.

        Raises `StreamError` (with `partial_text` and `session_id`) when the stream fails or ends early.
        Cancelling the consuming task closes the HTTP stream at once; when you may stop iterating early, wrap
        the iterator in `contextlib.aclosing(...)`.
        """
        assembler = ResponseAssembler()
        body = Body(json=request.to_wire(stream=True))
        headers = {"accept": "text/event-stream"}
        async with self._http.stream("POST", "/responses", body=body, headers=headers) as response:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type and "json" in content_type:
                try:
                    raw = await response.aread()
                except httpx2.TransportError as exc:
                    # Same failure as a broken SSE body, so callers handle one exception type.
                    raise StreamError(f"the response broke before it was complete: {exc}") from exc
                for update in assembler.from_json_body(raw):
                    yield update
                return
            decoder = SSEDecoder()
            try:
                async for chunk in iter_with_idle_timeout(response.aiter_raw(), self.timeouts.stream_idle):
                    for event in decoder.feed(chunk):
                        for update in assembler.feed_sse(event):
                            yield update
                        if assembler.saw_done_marker:
                            break
                    if assembler.saw_done_marker:
                        break
            except StreamError:
                raise
            except (httpx2.TransportError, TwelveLabsError) as exc:
                raise StreamError(
                    f"the response stream broke: {exc}",
                    partial_text=assembler.partial_text,
                    session_id=assembler.session_id,
                    response_id=assembler.response_id,
                ) from exc
            if not assembler.saw_done_marker:
                for event in decoder.flush():
                    for update in assembler.feed_sse(event):
                        yield update
            assembler.finish()


__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MULTIPART_THRESHOLD", "APIStatusError", "TwelveLabsClient"]
