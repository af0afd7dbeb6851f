"""Assets (`/assets`): uploaded media, before and apart from any index."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anyio

from .._http import HTTPCore
from .._multipart import ByteProgress, FilePart, FileSource, MultipartForm, OpenFile, open_source
from ..errors import TwelveLabsError
from ..models._base import MetadataValue, Page
from ..models.assets import Asset, AssetTranscription
from ..models.indexes import AssetIndexing
from ..polling import PollPolicy, poll
from ._base import Resource, seg
from .uploads import Uploads

# Direct uploads are capped at 200 MB by the API; above this we use a multipart-upload session.
DEFAULT_MULTIPART_THRESHOLD = 100 * 1024 * 1024


class Assets(Resource):
    def __init__(self, http: HTTPCore, uploads: Uploads, poll_policy: PollPolicy) -> None:
        super().__init__(http)
        self._uploads = uploads
        self._poll = poll_policy

    async def upload(
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
            if file.size == 0:
                raise ValueError(f"{file.name} is empty; nothing to upload")
            if file.size > multipart_threshold:
                asset_id = await self._uploads.upload(
                    file,
                    filename=filename,
                    progress=progress,
                    user_metadata=user_metadata,
                    enable_hls=enable_hls,
                    enable_thumbnail=enable_thumbnail,
                )
                return await self.get(asset_id)
            return await self._upload_direct(
                file,
                filename=filename,
                progress=progress,
                user_metadata=user_metadata,
                enable_hls=enable_hls,
                enable_thumbnail=enable_thumbnail,
            )

    async def _upload_direct(
        self,
        file: OpenFile,
        *,
        filename: str | None,
        progress: ByteProgress | None,
        user_metadata: Mapping[str, MetadataValue] | None,
        enable_hls: bool | None,
        enable_thumbnail: bool | None,
    ) -> Asset:
        form = self._form("direct", filename, user_metadata, enable_hls, enable_thumbnail)
        form.files.append(FilePart("file", file, filename=filename))
        response = await self._call("POST", "/assets", form=form, progress=progress, idempotent=False)
        return self._parse(response, Asset)

    async def create_from_url(
        self,
        url: str,
        *,
        filename: str | None = None,
        user_metadata: Mapping[str, MetadataValue] | None = None,
        enable_hls: bool | None = None,
        enable_thumbnail: bool | None = None,
    ) -> Asset:
        form = self._form("url", filename, user_metadata, enable_hls, enable_thumbnail, url=url)
        return self._parse(await self._call("POST", "/assets", form=form, idempotent=False), Asset)

    @staticmethod
    def _form(
        method: Literal["direct", "url"],
        filename: str | None,
        user_metadata: Mapping[str, MetadataValue] | None,
        enable_hls: bool | None,
        enable_thumbnail: bool | None,
        *,
        url: str | None = None,
    ) -> MultipartForm:
        form = MultipartForm()
        form.add("method", method)
        form.add("url", url)
        form.add("filename", filename)
        form.add("enable_hls", enable_hls)
        form.add("enable_thumbnail", enable_thumbnail)
        if user_metadata is not None:
            form.add("user_metadata", json.dumps(dict(user_metadata)))
        return form

    async def get(self, asset_id: str) -> Asset:
        return await self._get(f"/assets/{seg(asset_id)}", Asset)

    async def list(
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

    async def update_metadata(
        self, asset_id: str, user_metadata: Mapping[str, MetadataValue | None], *, replace: bool = False
    ) -> None:
        """`replace` (PUT): keys left out are removed. Otherwise (PATCH) they are kept and a `None` value
        deletes its key. Either way `""` and `[]` are ignored."""
        body = {"user_metadata": dict(user_metadata)}
        # Applying the same edit again leaves the same metadata: safe to repeat.
        await self._call(
            "PUT" if replace else "PATCH",
            f"/assets/{seg(asset_id)}/user-metadata",
            json_body=body,
            idempotent=True,
        )

    async def delete(self, asset_id: str, *, force: bool = False) -> None:
        await self._call("DELETE", f"/assets/{seg(asset_id)}", params={"force": "true"} if force else None)

    async def transcription(
        self,
        asset_id: str,
        *,
        include: Sequence[Literal["words", "sentences", "utterances"]] = ("sentences",),
    ) -> AssetTranscription:
        return await self._get(
            f"/assets/{seg(asset_id)}/transcription", AssetTranscription, {"include": list(include)}
        )

    async def indexings(self, asset_id: str, page: int = 1, page_limit: int = 10) -> Page[AssetIndexing]:
        """The indexed assets (videos) made from `asset_id`, newest first, each with its index."""
        params = {"page": page, "page_limit": page_limit}
        return await self._page(f"/assets/{seg(asset_id)}/indexed-assets", AssetIndexing, params)

    async def wait_ready(self, asset_id: str, *, max_wait: float = 600.0) -> Asset:
        """Poll the asset (per the client's `PollPolicy`) until `ready`; raise on `failed` or timeout."""
        with anyio.move_on_after(max_wait):
            asset = await poll(
                lambda: self.get(asset_id), lambda a: a.status in ("ready", "failed"), policy=self._poll
            )
            if asset.status == "failed":
                reason = asset.error.message if asset.error and asset.error.message else "no reason given"
                raise TwelveLabsError(f"asset {asset_id} failed to process: {reason}")
            return asset
        raise TwelveLabsError(f"asset {asset_id} was not ready after {max_wait:g} s; poll it again later")

    async def sandbox_thumbnail(self, media_id: str, seconds: float) -> bytes:
        """The JPEG of the scene at `seconds` of an asset, video or knowledge-store item.

        A sandbox extension: TwelveLabs has no such route (its thumbnails come as signed URLs in search
        results and citations), so against the cloud this is a 404.
        """
        response = await self._call("GET", f"/thumbnails/{seg(media_id)}", params={"time": f"{seconds:g}"})
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime != "image/jpeg":
            raise TwelveLabsError(
                f"GET /thumbnails/{media_id}: expected a JPEG, got {mime or 'no content type'}",
                status=response.status_code,
            )
        return response.content
