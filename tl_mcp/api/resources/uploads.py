"""Multipart upload sessions (`/assets/multipart-uploads`): how files above the direct-upload limit travel."""

from __future__ import annotations

import math
import mimetypes
from collections.abc import Mapping, Sequence
from typing import Literal

import httpx2

from .._http import Body
from .._multipart import ByteProgress, FileSliceStream, OpenFile, ProgressCounter
from ..errors import UploadError
from ..models._base import MetadataValue
from ..models.assets import (
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
from ._base import Resource, seg

_PRESIGN_BATCH = 50


def _media_kind(name: str) -> Literal["video", "audio", "image"]:
    mime = mimetypes.guess_type(name)[0] or ""
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("image/"):
        return "image"
    return "video"


class Uploads(Resource):
    """A session hands out presigned part URLs; each part is PUT there and reported; then the asset exists.

    `upload` runs the whole session for one open file and returns the new asset's id.
    """

    async def create(self, request: CreateMultipartUploadRequest) -> MultipartUploadSession:
        response = await self._call(
            "POST", "/assets/multipart-uploads", json_body=request.to_wire(), idempotent=False
        )
        return self._parse(response, MultipartUploadSession)

    async def presigned_urls(self, upload_id: str, start: int, count: int) -> PresignedURLs:
        body = PresignedURLsRequest(start=start, count=count).to_wire()
        path = f"/assets/multipart-uploads/{seg(upload_id)}/presigned-urls"
        # Asking for URLs again just mints new ones: safe to repeat.
        return self._parse(await self._call("POST", path, json_body=body, idempotent=True), PresignedURLs)

    async def report_chunks(self, upload_id: str, chunks: Sequence[CompletedChunk]) -> ReportChunksResult:
        body = ReportChunksRequest(completed_chunks=list(chunks)).to_wire()
        path = f"/assets/multipart-uploads/{seg(upload_id)}"
        # Reporting a chunk twice is counted as a duplicate, not an error: safe to repeat.
        return self._parse(
            await self._call("POST", path, json_body=body, idempotent=True), ReportChunksResult
        )

    async def get(self, upload_id: str) -> MultipartUploadStatus:
        return await self._get(f"/assets/multipart-uploads/{seg(upload_id)}", MultipartUploadStatus)

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

    async def upload(
        self,
        file: OpenFile,
        *,
        filename: str | None,
        progress: ByteProgress | None,
        user_metadata: Mapping[str, MetadataValue] | None,
        enable_hls: bool | None,
        enable_thumbnail: bool | None,
    ) -> str:
        """Send `file` part by part; the id of the asset it became once every part is confirmed."""
        size = file.size
        session = await self.create(
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
                fresh = await self.presigned_urls(session.upload_id, index, count)
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
            await self.report_chunks(
                session.upload_id,
                [CompletedChunk(chunk_index=index, proof=etag, chunk_size=length)],
            )
        status = await self.get(session.upload_id)
        if status.status not in ("completed",) and (status.chunks_completed or 0) < total_chunks:
            raise UploadError(
                f"multipart upload {session.upload_id} is {status.status!r} after sending every part "
                f"({status.chunks_completed} of {total_chunks} parts confirmed)"
            )
        return session.asset_id
