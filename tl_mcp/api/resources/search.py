"""Index search (`/search`): text or image queries over an index, and the token-paged pages after."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

from .._multipart import FilePart, FileSource, MultipartForm, open_source
from ..models.search import SearchPage
from ._base import Resource, seg


class Search(Resource):
    async def query(
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
        """The first page of results; follow `page_info.next_page_token` with `next_page`."""
        if query_text is None and query_media_path is None and query_media_url is None:
            raise ValueError("search needs query_text, query_media_path or query_media_url")
        if not search_options:
            raise ValueError("search_options must name at least one of visual, audio, transcription")
        form = MultipartForm()
        form.add("index_id", index_id)
        form.add_all("search_options", [*search_options])
        form.add("query_text", query_text)
        if query_media_path is not None or query_media_url is not None:
            form.add("query_media_type", query_media_type)
        form.add("query_media_url", query_media_url)
        form.add("operator", operator)
        form.add("group_by", group_by)
        form.add("page_limit", page_limit)
        if filter is not None:
            form.add("filter", json.dumps(dict(filter)))
        form.add_all("transcription_options", [*transcription_options] if transcription_options else None)
        form.add("include_user_metadata", include_user_metadata)
        with open_source(query_media_path) as file:
            if file is not None:
                form.files.append(FilePart("query_media_file", file))
            # A search reads the index and changes nothing: safe to repeat.
            response = await self._call("POST", "/search", form=form, idempotent=True)
        return self._parse(response, SearchPage)

    async def next_page(self, page_token: str, *, include_user_metadata: bool | None = None) -> SearchPage:
        params = (
            {"include_user_metadata": include_user_metadata} if include_user_metadata is not None else None
        )
        return await self._get(f"/search/{seg(page_token)}", SearchPage, params)

    async def iter(self, index_id: str, *, max_pages: int = 100, **kwargs: Any) -> AsyncIterator[SearchPage]:
        """The first page from `query(...)`, then every following page via its `next_page_token`."""
        page = await self.query(index_id, **kwargs)
        for _ in range(max_pages):
            yield page
            token = page.page_info.next_page_token
            if not token:
                return
            page = await self.next_page(token)
