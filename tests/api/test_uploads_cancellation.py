"""Uploads stream from disk in constant memory (direct and multipart); cancellation closes streams."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.api.conftest import API_KEY, BASE_URL, make_client
from tests.openapi_spec import request_validator
from tl_mcp.api import AnalyzeRequest, ResponseRequest, TextDelta, UploadError, VideoSource

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
STORAGE = "https://storage.example.test"


def sparse_file(path: Path, size: int) -> str:
    """A sparse file with random marks every 10 MB, so misplaced bytes change the hash."""
    with path.open("wb") as fh:
        fh.truncate(size)
        for offset in range(0, size, 10 * MB):
            fh.seek(offset)
            fh.write(os.urandom(4096)[: max(0, min(4096, size - offset))])
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * MB):
            digest.update(chunk)
    return digest.hexdigest()


class StreamingStore(httpx2.AsyncBaseTransport):
    """A fake API + object store that consumes request bodies chunk by chunk, hashing instead of buffering."""

    def __init__(self, *, chunk_size: int = 64 * MB, first_urls: int = 2, etag: bool = True) -> None:
        self.chunk_size = chunk_size
        self.first_urls = first_urls
        self.etag = etag
        self.total_size = 0
        self.parts: dict[int, tuple[int, hashlib._Hash]] = {}
        self.reported: list[dict[str, object]] = []
        self.direct_digest: str | None = None
        self.direct_fields: dict[str, str] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        self.largest_chunk = 0

    def urls(self, start: int, count: int, total: int) -> list[dict[str, object]]:
        return [
            {"chunk_index": i, "url": f"{STORAGE}/up/{i}?sig=abc", "expires_at": "2026-01-01T00:00:00Z"}
            for i in range(start, min(total, start + count - 1) + 1)
        ]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        self.calls.append((request.method, url.split("?")[0], request.headers.get("x-api-key")))
        if url.startswith(STORAGE):
            index = int(request.url.path.rsplit("/", 1)[1])
            digest, size = hashlib.sha256(), 0
            async for chunk in request.stream:  # type: ignore[union-attr]
                self.largest_chunk = max(self.largest_chunk, len(chunk))
                digest.update(chunk)
                size += len(chunk)
            assert size == int(request.headers["content-length"])
            self.parts[index] = (size, digest)
            return httpx2.Response(200, headers={"etag": f'"etag-{index}"'} if self.etag else {})
        path = url[len(BASE_URL) :].split("?")[0]
        if request.method == "POST" and path == "/assets/multipart-uploads":
            body = json.loads(await request.aread())
            assert not list(request_validator("post", "/assets/multipart-uploads").iter_errors(body))
            self.total_size = body["total_size"]
            total = -(-self.total_size // self.chunk_size)
            return httpx2.Response(
                201,
                json={
                    "upload_id": "up1",
                    "asset_id": "asset1",
                    "chunk_size": self.chunk_size,
                    "total_chunks": total,
                    "upload_urls": self.urls(1, self.first_urls, total),
                    "upload_headers": {"x-amz-acl": "private"},
                    "expires_at": "2026-01-01T00:00:00Z",
                },
            )
        if path == "/assets/multipart-uploads/up1/presigned-urls":
            body = json.loads(await request.aread())
            total = -(-self.total_size // self.chunk_size)
            return httpx2.Response(200, json={"upload_urls": self.urls(body["start"], body["count"], total)})
        if request.method == "POST" and path == "/assets/multipart-uploads/up1":
            body = json.loads(await request.aread())
            assert not list(
                request_validator("post", "/assets/multipart-uploads/{upload_id}").iter_errors(body)
            )
            self.reported.extend(body["completed_chunks"])
            return httpx2.Response(
                200, json={"asset_id": "asset1", "processed_chunks": 1, "total_completed": len(self.reported)}
            )
        if request.method == "GET" and path == "/assets/multipart-uploads/up1":
            done = len(self.reported)
            return httpx2.Response(
                200, json={"upload_id": "up1", "status": "completed", "chunks_completed": done}
            )
        if request.method == "GET" and path.startswith("/assets/"):
            return httpx2.Response(
                200, json={"_id": path.rsplit("/", 1)[1], "status": "processing", "method": "multipart"}
            )
        if request.method == "POST" and path == "/assets":
            return await self._direct(request)
        raise AssertionError(f"unexpected {request.method} {url}")

    async def _direct(self, request: httpx2.Request) -> httpx2.Response:
        """Parse the multipart body on the fly: small fields kept, the file part hashed, never held whole."""
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        trailer = b"\r\n--" + boundary + b"--\r\n"
        head = b""
        digest = hashlib.sha256()
        held = b""
        in_file = False
        total = 0
        async for chunk in request.stream:  # type: ignore[union-attr]
            total += len(chunk)
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            if not in_file:
                head += chunk
                marker = head.find(b'filename="')
                end = head.find(b"\r\n\r\n", marker) if marker >= 0 else -1
                if end < 0:
                    continue
                in_file = True
                chunk, head = head[end + 4 :], head[: end + 4]
            held += chunk
            if len(held) > len(trailer):
                digest.update(held[: -len(trailer)])
                held = held[-len(trailer) :]
        assert held == trailer and total == int(request.headers["content-length"])
        for block in head.split(b"--" + boundary)[1:-1]:
            headers, _, value = block.partition(b"\r\n\r\n")
            name = headers.split(b'name="')[1].split(b'"')[0].decode()
            self.direct_fields[name] = value.removesuffix(b"\r\n").decode()
        self.direct_digest = digest.hexdigest()
        return httpx2.Response(201, json={"_id": "asset-direct", "status": "processing", "method": "direct"})


async def test_large_multipart_upload_streams_in_constant_memory(tmp_path: Path) -> None:
    size = 200 * MB + 12345
    big = tmp_path / "big.mp4"
    expected = sparse_file(big, size)
    store = StreamingStore(chunk_size=32 * MB, first_urls=2)
    progress: list[tuple[int, int | None]] = []
    tracemalloc.start()
    try:
        async with make_client(store) as tl:
            asset = await tl.assets.upload(big, progress=lambda sent, total: progress.append((sent, total)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert asset.id == "asset1"
    assert peak < 24 * MB, f"peak traced memory {peak / MB:.1f} MB: the file was buffered"
    parts = sorted(store.parts)
    assert parts == list(range(1, 8))  # ceil(200 MB / 32 MB); parts 3.. needed fresh presigned URLs
    whole = hashlib.sha256()
    with big.open("rb") as fh:
        for index in parts:
            data = fh.read(32 * MB)
            assert store.parts[index][1].hexdigest() == hashlib.sha256(data).hexdigest()
            whole.update(data)
    assert whole.hexdigest() == expected
    assert [c["chunk_index"] for c in store.reported] == parts
    assert store.reported[0] == {
        "chunk_index": 1,
        "proof": '"etag-1"',
        "proof_type": "etag",
        "chunk_size": 32 * MB,
    }
    assert progress[-1] == (size, size) and all(b >= a for (a, _), (b, _) in itertools.pairwise(progress))
    assert store.largest_chunk <= MB
    # The API key goes to the API only, never to the storage host of the presigned URLs.
    assert all(key is None for _, url, key in store.calls if url.startswith(STORAGE))
    assert all(key == API_KEY for _, url, key in store.calls if url.startswith(BASE_URL))


async def test_direct_upload_streams_file_bytes_intact(tmp_path: Path) -> None:
    size = 150 * MB + 7
    big = tmp_path / "clip.mov"
    expected = sparse_file(big, size)
    store = StreamingStore()
    seen_total: list[int | None] = []

    async def progress(sent: int, total: int | None) -> None:
        seen_total.append(total)

    tracemalloc.start()
    try:
        async with make_client(store) as tl:
            asset = await tl.assets.upload(big, progress=progress, multipart_threshold=200 * MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert asset.id == "asset-direct" and store.direct_digest == expected
    assert store.direct_fields == {"method": "direct"}
    assert peak < 24 * MB and set(seen_total) == {size}


async def test_missing_etag_fails_the_upload_clearly(tmp_path: Path) -> None:
    f = tmp_path / "a.mp4"
    f.write_bytes(b"x" * 3000)
    async with make_client(StreamingStore(chunk_size=1024, etag=False)) as tl:
        with pytest.raises(UploadError, match="no ETag"):
            await tl.assets.upload(f, multipart_threshold=1000)


async def test_bad_paths_fail_before_the_network(tmp_path: Path) -> None:
    store = StreamingStore()
    async with make_client(store) as tl:
        with pytest.raises(FileNotFoundError, match="not a readable file"):
            await tl.assets.upload(tmp_path / "missing.mp4")
        (tmp_path / "empty.mp4").write_bytes(b"")
        with pytest.raises(ValueError, match="empty"):
            await tl.assets.upload(tmp_path / "empty.mp4")
    assert store.calls == []


class EndlessStream(httpx2.AsyncByteStream):
    """Sends one frame, then nothing, like Jockey thinking; records whether the client closed it."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.closed = anyio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed.set()


class OneStream(httpx2.AsyncBaseTransport):
    def __init__(self, first: bytes, content_type: str) -> None:
        self.stream = EndlessStream(first)
        self.content_type = content_type

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": self.content_type}, stream=self.stream)


async def test_cancelling_a_response_stream_closes_it_at_once() -> None:
    frame = json.dumps(
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "hi"}
    )
    transport = OneStream(f"data: {frame}\n\n".encode(), "text/event-stream")
    got: list[str] = []
    async with make_client(transport) as tl:
        with anyio.move_on_after(5) as outer:
            async with anyio.create_task_group() as tg:

                async def consume() -> None:
                    request = ResponseRequest(knowledge_store_id="ks_1", input="q")  # type: ignore[arg-type]
                    async for update in tl.responses.stream(request):
                        if isinstance(update, TextDelta):
                            got.append(update.text)
                            tg.cancel_scope.cancel()

                tg.start_soon(consume)
        assert not outer.cancelled_caught
    assert got == ["hi"]
    with anyio.fail_after(1):
        await transport.stream.closed.wait()


async def test_cancelling_an_analyze_stream_closes_it_at_once() -> None:
    transport = OneStream(b'{"event_type":"stream_start","metadata":{}}\n', "application/x-ndjson")
    async with make_client(transport) as tl:
        with anyio.move_on_after(0.3) as scope:
            async for _ in tl.analyze.stream(
                AnalyzeRequest(video=VideoSource(asset_id="a1"), prompt="Describe")
            ):
                pass
    assert scope.cancelled_caught
    assert transport.stream.closed.is_set()
