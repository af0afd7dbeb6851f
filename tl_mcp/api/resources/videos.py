"""Videos (`/indexes/{id}/videos`): an index's indexed media as the v1.2-era video view."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..models._base import Page
from ..models.indexes import Video
from ._base import Resource, iterate_pages, seg


class Videos(Resource):
    async def list(self, index_id: str, page: int = 1, page_limit: int = 10) -> Page[Video]:
        return await self._page(
            f"/indexes/{seg(index_id)}/videos", Video, {"page": page, "page_limit": page_limit}
        )

    def iter(self, index_id: str, *, page_limit: int = 50) -> AsyncIterator[Video]:
        return iterate_pages(lambda n: self.list(index_id, n, page_limit))

    async def get(self, index_id: str, video_id: str, *, transcription: bool = False) -> Video:
        path = f"/indexes/{seg(index_id)}/videos/{seg(video_id)}"
        return await self._get(path, Video, {"transcription": "true"} if transcription else None)

    async def delete(self, index_id: str, video_id: str) -> None:
        await self._call("DELETE", f"/indexes/{seg(index_id)}/videos/{seg(video_id)}")
