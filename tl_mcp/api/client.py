"""`TwelveLabsClient`: the one async client for the TwelveLabs v1.3 API, one attribute per resource."""

from __future__ import annotations

from types import TracebackType

import httpx2

from ._http import HTTPCore, RetryPolicy, Timeouts
from .polling import PollPolicy
from .resources.analyze import Analyze
from .resources.assets import Assets
from .resources.embed import Embed
from .resources.entities import Entities, EntityCollections
from .resources.indexed_assets import IndexedAssets
from .resources.indexes import Indexes
from .resources.knowledge import Knowledge
from .resources.responses import Responses
from .resources.search import Search
from .resources.tasks import Tasks
from .resources.uploads import Uploads
from .resources.videos import Videos

DEFAULT_BASE_URL = "https://api.twelvelabs.io/v1.3"
DEFAULT_USER_AGENT = "tl-mcp/0.1 (+httpx2)"


class TwelveLabsClient:
    """Async client for TwelveLabs v1.3. Use as `async with TwelveLabsClient(key) as tl: ...`.

    Calls go through its resources: `tl.indexes.list()`, `tl.assets.upload(path)`,
    `tl.responses.stream(request)`. They share one `HTTPCore`: one connection pool, one retry policy.
    Read requests (and the POSTs that are safe to repeat: search, embed) are retried per `RetryPolicy`;
    creating things is never repeated automatically. The API key is never shown in reprs, logs or errors.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        user_agent: str | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("an API key is required (set TWELVELABS_API_KEY)")
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeout or Timeouts()
        self.retry = retry or RetryPolicy()
        #: How waits on upstream work (asset processing, indexing, tasks) space their checks.
        self.poll = poll or PollPolicy()
        self._http = http = HTTPCore(
            base_url=self.base_url,
            api_key=api_key,
            transport=transport,
            timeouts=self.timeouts,
            retry=self.retry,
            user_agent=user_agent or DEFAULT_USER_AGENT,
        )
        #: Multipart upload sessions; `assets.upload` uses them for large files.
        self.uploads = Uploads(http)
        self.assets = Assets(http, self.uploads, self.poll)
        self.indexes = Indexes(http)
        self.indexed_assets = IndexedAssets(http)
        self.videos = Videos(http)
        self.tasks = Tasks(http)
        self.search = Search(http)
        self.embed = Embed(http, self.assets)
        self.analyze = Analyze(http, self.timeouts)
        #: `.stores`, `.items`, `.collections` and `.search` over one store.
        self.knowledge = Knowledge(http)
        self.responses = Responses(http, self.timeouts)
        #: People, objects or brands registered by reference assets; `entities` also lists an asset's.
        self.entity_collections = EntityCollections(http)
        self.entities = Entities(http)

    def __repr__(self) -> str:
        return f"TwelveLabsClient(base_url={self.base_url!r}, api_key='***')"

    async def __aenter__(self) -> TwelveLabsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
