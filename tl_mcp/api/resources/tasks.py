"""Indexing tasks (`/tasks`): upload and index in one call, the pre-assets way."""

from __future__ import annotations

import json
from collections.abc import Mapping

from .._multipart import ByteProgress, FilePart, FileSource, MultipartForm, open_source
from ..models._base import MetadataValue
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

    async def get(self, task_id: str) -> Task:
        return await self._get(f"/tasks/{seg(task_id)}", Task)
