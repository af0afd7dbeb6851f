"""Which jobs can move between replicas, and how a replica that never saw a job follows it upstream.

An upload's remaining work after its handles exist, and a video-embedding task, are only polling
TwelveLabs, so any replica can do it from the ids in the job id. Jockey answers and streamed analyses
live in one HTTP stream held by one process: another replica cannot pick them up, and says so.
"""

from __future__ import annotations

import secrets
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from tl_mcp.server.errors import upstream
from tl_mcp.server.jobs import Job, Partial, Worker
from tl_mcp.server.results import tool_result
from tl_mcp.server.state import AppState

UPLOAD, EMBED, JOCKEY, ANALYZE = "u", "e", "j", "a"
_CODES = {"upload": UPLOAD, "embed": EMBED, "jockey": JOCKEY, "analyze": ANALYZE}
_RESUMABLE = frozenset({"upload", "embed"})


def _structured(job: Job) -> dict[str, Any]:
    return job.partial(job).structured_content or {}


def _s(value: object) -> str:
    return value if isinstance(value, str) else ""


class ReplicaJobs:
    """The `JobPorter` of tl-mcp's job kinds; `bind` it to the server state once that exists."""

    def __init__(self) -> None:
        self._state: AppState | None = None

    def bind(self, state: AppState) -> None:
        self._state = state

    def may_port(self, job: Job) -> bool:
        return job.kind in _RESUMABLE

    def describe(self, job: Job) -> tuple[str, list[str]] | None:
        code = _CODES.get(job.kind)
        if code is None:
            return None
        data = _structured(job)
        if code == UPLOAD:
            asset, index, indexed = (
                _s(data.get("asset_id")),
                _s(data.get("index_id")),
                _s(data.get("indexed_asset_id")),
            )
            store, item = _s(data.get("knowledge_store_id")), _s(data.get("item_id"))
            # Until every handle exists, the rest of the work (uploading, registering) is this process's.
            if not asset or (index and not indexed) or (store and not item):
                return None
            return code, [asset, index, indexed, store, item]
        if code == EMBED:
            task = _s(data.get("task_id"))
            return (code, [task, _s(data.get("model_name"))]) if task else None
        # Not resumable elsewhere, but a signed id lets another replica explain what to do instead.
        nonce = secrets.token_hex(6)
        return code, [nonce, _s(data.get("session_id"))] if code == JOCKEY else [nonce]

    def resume(self, job_id: str, code: str, fields: list[str]) -> tuple[str, str, Worker, Partial]:
        if code == JOCKEY:
            session = fields[1] if len(fields) > 1 else ""
            retry = (
                f'continue_session(session_id="{session}", input=<the same question>)'
                if session
                else "create_response with the same question"
            )
            raise ToolError(
                f"Job {job_id[:40]}… is a Jockey answer that was streaming on another replica of this "
                "server. A Jockey stream lives in the process that opened it and cannot be picked up "
                f"elsewhere (or the replica restarted). Ask again: {retry}; a longer wait_s keeps the "
                "answer in one call."
            )
        if code == ANALYZE:
            raise ToolError(
                f"Job {job_id[:40]}… is a video analysis that was streaming on another replica of this "
                "server. An analysis stream lives in the process that opened it and cannot be picked up "
                "elsewhere. "
                "Run analyze_video again, with a longer wait_s to get the result in one call."
            )
        state = self._state
        if state is None:
            raise ToolError("The server is still starting; call wait_for_task again in a moment.")
        if code == UPLOAD and len(fields) == 5:
            return "upload", f"upload of asset {fields[0]}", *_upload(state, job_id, *fields)
        if code == EMBED and len(fields) == 2:
            return "embed", "video embedding", *_embed(state, job_id, *fields)
        raise ToolError(
            f"Job id {job_id[:40]}… names a kind of job this server version does not know. "
            "Are the replicas running different tl-mcp versions? Start the work again."
        )


def _upload(
    state: AppState, job_id: str, asset_id: str, index_id: str, indexed_id: str, store_id: str, item_id: str
) -> tuple[Worker, Partial]:
    from tl_mcp.server.tools.ingest import (
        UploadResult,
        finished_upload,
        follow_indexing,
        follow_item,
        upload_markdown,
    )

    def snapshot(job: Job, status: str) -> UploadResult:
        data = {k: v for k, v in job.state.items() if k in UploadResult.model_fields}
        return UploadResult(
            status="completed" if status == "completed" else "in_progress",
            job_id=job_id if status != "completed" else None,
            asset_id=asset_id,
            index_id=index_id or None,
            indexed_asset_id=indexed_id or None,
            knowledge_store_id=store_id or None,
            item_id=item_id or None,
            backend=state.backend,
            **data,
        )

    def partial(job: Job) -> CallToolResult:
        r = snapshot(job, "in_progress")
        return tool_result(r, upload_markdown(r))

    async def work(job: Job) -> CallToolResult:
        c = state.client
        with upstream(f"Following asset {asset_id}"):
            asset = await c.assets.get(asset_id)
            job.state.update(asset_status=asset.status, filename=asset.filename, size_bytes=asset.size)
            if index_id:
                await follow_indexing(state, job, index_id, indexed_id)
            if store_id:
                await follow_item(state, job, store_id, item_id)
        return finished_upload(snapshot(job, "completed"))

    return work, partial


def _embed(state: AppState, job_id: str, task_id: str, model_name: str) -> tuple[Worker, Partial]:
    from tl_mcp.server.tools.embed import (
        EmbeddingResult,
        embedding_markdown,
        follow_embedding_task,
        vectors_from_task,
    )

    def result(status: str, vectors: list[Any]) -> EmbeddingResult:
        return EmbeddingResult(
            status="completed" if status == "completed" else "in_progress",
            job_id=job_id if status != "completed" else None,
            task_id=task_id,
            input_type="video",
            model_name=model_name or "marengo3.0",
            embeddings=vectors,
            backend=state.backend,
        )

    def partial(job: Job) -> CallToolResult:
        r = result("in_progress", [])
        return tool_result(r, embedding_markdown(r))

    async def work(job: Job) -> CallToolResult:
        task = await follow_embedding_task(state.client, job, task_id)
        # The original call's include_vector is not carried across replicas: vectors come summarized.
        r = result("completed", vectors_from_task(task, False))
        return tool_result(r, embedding_markdown(r))

    return work, partial
