"""Indexing tasks (`/tasks`): upload and index in one call, the pre-assets way."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._multipart import ByteProgress, FilePart, FileSource, MultipartForm, open_source
from ..models._base import MetadataValue, Page
from ..models.indexes import Task, TaskRef
from ._base import Resource, one_source, seg


class Tasks(Resource):
    async def create(
        self,
        index_id: str,
        *,
        path: FileSource | None = None,
        url: str | None = None,
        progress: ByteProgress | None = None,
        enable_video_stream: bool | None = None,
        user_metadata: Mapping[str, MetadataValue] | None = None,
    ) -> TaskRef:
        one_source(path=path, url=url)
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
        return self._parse(response, TaskRef)

    async def list(
        self,
        page: int = 1,
        page_limit: int = 10,
        *,
        index_id: str | None = None,
        status: Sequence[str] | None = None,
        filename: str | None = None,
    ) -> Page[Task]:
        """Indexing tasks, newest first."""
        params: dict[str, Any] = {"page": page, "page_limit": page_limit}
        params.update({k: v for k, v in (("index_id", index_id), ("filename", filename)) if v is not None})
        if status:
            params["status"] = [*status]
        return await self._page("/tasks", Task, params)

    async def get(self, task_id: str) -> Task:
        return await self._get(f"/tasks/{seg(task_id)}", Task)
