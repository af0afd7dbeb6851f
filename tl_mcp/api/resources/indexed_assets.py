"""Indexed assets (`/indexes/{id}/indexed-assets`): an asset put into an index, and its indexing status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..models._base import MetadataValue, Page
from ..models.embed import VideoEmbeddingOption
from ..models.indexes import CreatedId, IndexAssetRequest, IndexedAsset
from ._base import Resource, seg


def _path(index_id: str, indexed_asset_id: str | None = None) -> str:
    path = f"/indexes/{seg(index_id)}/indexed-assets"
    return path if indexed_asset_id is None else f"{path}/{seg(indexed_asset_id)}"


class IndexedAssets(Resource):
    async def create(
        self,
        index_id: str,
        asset_id: str,
        *,
        enable_video_stream: bool | None = None,
        user_metadata: Mapping[str, MetadataValue] | None = None,
    ) -> str:
        """Start indexing `asset_id` into `index_id`; the new indexed asset's id."""
        request = IndexAssetRequest(
            asset_id=asset_id,
            enable_video_stream=enable_video_stream,
            user_metadata=dict(user_metadata) if user_metadata is not None else None,
        )
        response = await self._call("POST", _path(index_id), json_body=request.to_wire())
        return self._parse(response, CreatedId).id

    async def get(
        self,
        index_id: str,
        indexed_asset_id: str,
        *,
        transcription: bool = False,
        embedding_option: Sequence[VideoEmbeddingOption] | None = None,
    ) -> IndexedAsset:
        """One indexed asset; with `embedding_option`, also the embeddings its indexing stored, per segment
        (in `.embedding`; an index needs a Marengo model for them)."""
        params: dict[str, Any] = {}
        if transcription:
            params["transcription"] = "true"
        if embedding_option:
            params["embedding_option"] = list(dict.fromkeys(embedding_option))
        return await self._get(_path(index_id, indexed_asset_id), IndexedAsset, params or None)

    async def list(
        self,
        index_id: str,
        page: int = 1,
        page_limit: int = 10,
        *,
        status: Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> Page[IndexedAsset]:
        """`filters`: from `models.list_filter_params`."""
        params: dict[str, Any] = {"page": page, "page_limit": page_limit, **(filters or {})}
        if status:
            params["status"] = [*status]
        return await self._page(_path(index_id), IndexedAsset, params)

    async def update_metadata(
        self, index_id: str, indexed_asset_id: str, user_metadata: Mapping[str, MetadataValue | None]
    ) -> None:
        """PATCH: keys left out are kept, a `None` value deletes its key."""
        body = {"user_metadata": dict(user_metadata)}
        # The same edit applied twice leaves the same metadata: safe to repeat.
        await self._call("PATCH", _path(index_id, indexed_asset_id), json_body=body, idempotent=True)

    async def delete(self, index_id: str, indexed_asset_id: str) -> None:
        await self._call("DELETE", _path(index_id, indexed_asset_id))
