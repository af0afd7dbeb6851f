"""Thumbnails: fetching them as image content (size-capped, time-bounded, never fatal), and the durable
`twelvelabs://thumbnails/…` resource URIs that name a moment's picture without naming a server's address."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from urllib.parse import quote

import anyio
import httpx2
from mcp.types import ImageContent

from tl_mcp.redaction import SECRETS

log = logging.getLogger(__name__)

MAX_BYTES = 512 * 1024
TIMEOUT_S = 5.0
_ALLOWED = ("image/jpeg", "image/png", "image/webp", "image/gif")
#: The resource template; `media_id` is a video, asset or knowledge-store item id.
THUMBNAIL_TEMPLATE = "twelvelabs://thumbnails/{media_id}/{seconds}"
DURABLE_THUMBNAIL = "The picture, for resources/read; outlives the server."


def thumbnail_uri(media_id: str, seconds: float | None) -> str:
    """The resource URI of the picture at `seconds` of `media_id` (the start when the span is unknown)."""
    at = f"{max(0.0, seconds or 0.0):.3f}".rstrip("0").rstrip(".")
    return f"twelvelabs://thumbnails/{quote(media_id, safe='')}/{at}"


async def fetch_one(client: httpx2.AsyncClient, url: str) -> ImageContent | None:
    try:
        with anyio.fail_after(TIMEOUT_S):
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    return None
                mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if mime not in _ALLOWED:
                    return None
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > MAX_BYTES:
                        return None
        if SECRETS.found_in(bytes(data)):
            # Masking would break the picture, and an image that carries a secret has no place in a result.
            log.warning("thumbnail %s skipped: it contains a secret", url.split("?")[0])
            return None
        return ImageContent(type="image", data=base64.b64encode(bytes(data)).decode(), mime_type=mime)
    except (httpx2.HTTPError, TimeoutError, OSError) as exc:
        # A missing picture must never cost the caller its search results.
        log.info("thumbnail %s skipped: %s", url.split("?")[0], type(exc).__name__)
        return None


async def fetch_thumbnails(urls: Sequence[str]) -> list[ImageContent | None]:
    """One entry per URL (None where the fetch failed), fetched concurrently."""
    results: list[ImageContent | None] = [None] * len(urls)
    if not urls:
        return results
    async with httpx2.AsyncClient(timeout=TIMEOUT_S, follow_redirects=True) as client:

        async def one(i: int, url: str) -> None:
            results[i] = await fetch_one(client, url)

        async with anyio.create_task_group() as tg:
            for i, url in enumerate(urls):
                tg.start_soon(one, i, url)
    return results
