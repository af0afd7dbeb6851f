"""Request core: timeouts, the one retry policy, error mapping, and stream opening."""

from __future__ import annotations

import email.utils
import json as jsonlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2

from tl_mcp.redaction import SECRETS, LineMasker, Redactor

from ._multipart import ByteProgress, MultipartForm
from .errors import (
    REQUEST_ID_HEADERS,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    TwelveLabsError,
    error_for_status,
)

logger = logging.getLogger("tl_mcp.api")

QueryParams = Mapping[str, str | int | float | bool | Sequence[str] | None]

# Cap on how much of an error body we read from a stream before giving up on it.
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `stream_idle` bounds the silence between two chunks of an SSE/NDJSON stream.

    Jockey can think for minutes between events on servers that do not send keepalives, hence 300 s.
    """

    connect: float = 10.0
    read: float = 60.0
    write: float = 60.0
    pool: float = 10.0
    stream_idle: float = 300.0

    def httpx(self) -> httpx2.Timeout:
        return httpx2.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)

    def httpx_stream(self) -> httpx2.Timeout:
        # The transport's read timeout is a backstop; the idle guard in streaming.py fires first.
        return httpx2.Timeout(
            connect=self.connect, read=self.stream_idle + 5.0, write=self.write, pool=self.pool
        )


def _default_random() -> float:
    return random.random()


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a request that is safe to repeat.

    Retries connection failures (the request never reached the server), 429 and 502/503/504, with capped
    exponential backoff and jitter, honouring `Retry-After` (seconds or HTTP date) and `retry-after-ms`.
    Quota errors (`plan_limit_exceeded`, `usage_limit_exceeded`) are final. `total_timeout` bounds the whole
    sequence of attempts and waits. `sleep`, `clock` and `random` are injectable for tests.
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 10.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    total_timeout: float = 120.0
    retry_statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    final_codes: frozenset[str] = frozenset({"plan_limit_exceeded", "usage_limit_exceeded"})
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    random: Callable[[], float] = field(default=_default_random, repr=False)

    @classmethod
    def disabled(cls) -> RetryPolicy:
        return cls(max_attempts=1)

    def backoff(self, attempt: int) -> float:
        """Delay after failed attempt number `attempt` (1-based) when the server gave no hint."""
        base = min(self.max_delay, self.initial_delay * (2 ** (attempt - 1)))
        return float(base * (1.0 - self.jitter * self.random()))

    def should_retry_status(self, status: int, code: str | None) -> bool:
        return status in self.retry_statuses and (code is None or code not in self.final_codes)


def parse_retry_after(headers: httpx2.Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `Retry-After: <seconds>` or `Retry-After: <HTTP-date>`."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def request_id_of(headers: httpx2.Headers) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


@dataclass
class Body:
    """What a request sends. A form is rebuilt per attempt, so every body here is replayable."""

    json: Any = None
    form: MultipartForm | None = None
    stream_factory: Callable[[], httpx2.AsyncByteStream] | None = None
    content_length: int | None = None
    progress: ByteProgress | None = None

    def headers_and_stream(self) -> tuple[dict[str, str], httpx2.AsyncByteStream | bytes | None]:
        if self.form is not None:
            return (
                {"content-type": self.form.content_type, "content-length": str(self.form.content_length())},
                self.form.stream(self.progress),
            )
        if self.stream_factory is not None:
            headers = {} if self.content_length is None else {"content-length": str(self.content_length)}
            return headers, self.stream_factory()
        if self.json is not None:
            return {"content-type": "application/json"}, jsonlib.dumps(self.json).encode()
        return {}, None


class _MaskedStream(httpx2.AsyncByteStream):
    """The decoded body of a streamed response with every secret masked, a line at a time."""

    def __init__(self, response: httpx2.Response, redactor: Redactor) -> None:
        self._response, self._redactor = response, redactor

    async def __aiter__(self) -> AsyncIterator[bytes]:
        masker = LineMasker(self._redactor)
        try:
            async for chunk in self._response.aiter_bytes():
                if masked := masker.feed(chunk):
                    yield masked
        except httpx2.TransportError as exc:
            # The message can quote what the server sent; the original stays out of the chain.
            raise type(exc)(self._redactor.mask(str(exc))) from None
        if tail := masker.flush():
            yield tail

    async def aclose(self) -> None:
        await self._response.aclose()


class HTTPCore:
    """Owns the `httpx2.AsyncClient`; every request of the client goes through `request` or `stream`.

    Every response is masked here, where it enters: the API key in any spelling (see tl_mcp.redaction)
    is replaced in the status line, the headers, the body and any transport error before anything
    parses, logs or returns it, so an upstream that echoes the key cannot get it further.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: httpx2.AsyncBaseTransport | None,
        timeouts: Timeouts,
        retry: RetryPolicy,
        user_agent: str,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._redactor = Redactor([api_key])
        SECRETS.add(api_key)
        self.timeouts = timeouts
        self.retry = retry
        self._transport = transport
        self._user_agent = user_agent
        # Made by the first request: its TLS context costs tens of milliseconds that a server's start-up
        # (up to its first `tools/list`) does not need.
        self._httpx: httpx2.AsyncClient | None = None
        self._closed = False

    @property
    def _client(self) -> httpx2.AsyncClient:
        if self._httpx is None:
            if self._closed:
                raise RuntimeError("the API client is closed: open a new one")
            self._httpx = httpx2.AsyncClient(
                base_url=self.base_url,
                transport=self._transport,
                timeout=self.timeouts.httpx(),
                headers={"user-agent": self._user_agent},
                follow_redirects=False,
            )
        return self._httpx

    async def aclose(self) -> None:
        self._closed = True
        if self._httpx is not None:
            await self._httpx.aclose()

    def _build(
        self,
        method: str,
        url: str,
        *,
        params: QueryParams | None,
        body: Body | None,
        headers: Mapping[str, str] | None,
        authenticated: bool,
        timeout: httpx2.Timeout | None,
    ) -> httpx2.Request:
        all_headers: dict[str, str] = {}
        if authenticated:
            all_headers["x-api-key"] = self._api_key
        content: httpx2.AsyncByteStream | bytes | None = None
        if body is not None:
            body_headers, content = body.headers_and_stream()
            all_headers.update(body_headers)
        all_headers.update(headers or {})
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        request = self._client.build_request(
            method,
            url,
            params=clean or None,
            headers=all_headers,
            content=content if isinstance(content, bytes) else None,
            timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
        )
        if isinstance(content, httpx2.AsyncByteStream):
            # Rebuilt so the lazy body is the request's only stream (build_request pre-reads an empty one).
            request = httpx2.Request(
                method, request.url, headers=request.headers, stream=content, extensions=request.extensions
            )
        return request

    def _masked(self, response: httpx2.Response, *, streamed: bool) -> httpx2.Response:
        """``response`` as the rest of the client sees it: secrets masked, the body already decoded."""
        text = self._redactor.mask
        headers = [
            (text(name), text(value))
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length")
        ]
        extensions = dict(response.extensions)
        reason = extensions.get("reason_phrase")
        if isinstance(reason, bytes):
            extensions["reason_phrase"] = self._redactor.mask_bytes(reason)
        if streamed:
            return httpx2.Response(
                response.status_code,
                headers=headers,
                stream=_MaskedStream(response, self._redactor),
                request=response.request,
                extensions=extensions,
            )
        return httpx2.Response(
            response.status_code,
            headers=headers,
            content=self._redactor.mask_bytes(response.content),
            request=response.request,
            extensions=extensions,
        )

    def _transport_error(self, exc: httpx2.TransportError, what: str) -> APIConnectionError:
        detail = self._redactor.mask(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx2.TimeoutException):
            return APITimeoutError(f"{what} timed out ({type(exc).__name__}: {detail})")
        if isinstance(exc, httpx2.ConnectError):
            return APIConnectionError(
                f"{what} failed: could not reach TwelveLabs ({type(exc).__name__}: {detail})"
            )
        return APIConnectionError(
            f"{what} failed: the connection broke before the answer was complete "
            f"({type(exc).__name__}: {detail})"
        )

    def _status_error(self, response: httpx2.Response, body: bytes, what: str) -> APIStatusError:
        error = error_for_status(
            response.status_code,
            body,
            request_id=request_id_of(response.headers),
            retry_after=parse_retry_after(response.headers),
            context=what,
        )
        error.path = response.request.url.path
        return error

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: QueryParams | None = None,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
        timeout: httpx2.Timeout | None = None,  # noqa: ASYNC109 — per-request httpx timeouts
    ) -> httpx2.Response:
        """Send, retrying per the policy when the request is safe to repeat; raise on non-2xx."""
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "DELETE", "OPTIONS", "PUT")
        what = f"{method.upper()} {_display(url)}"
        policy = self.retry
        attempts = policy.max_attempts if idempotent else 1
        started = policy.clock()
        attempt = 0
        while True:
            attempt += 1
            request = self._build(
                method,
                url,
                params=params,
                body=body,
                headers=headers,
                authenticated=authenticated,
                timeout=timeout,
            )
            error: TwelveLabsError
            wait: float | None = None
            try:
                response = self._masked(await self._client.send(request), streamed=False)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                error = self._transport_error(exc, what)
            except httpx2.TransportError as exc:
                # The request may have reached the server: only a request that is safe to repeat is, and
                # not after a timeout, which would only make the caller wait that long again.
                error = self._transport_error(exc, what)
                if not idempotent:
                    raise _not_repeated(error) from exc
                if isinstance(exc, httpx2.TimeoutException):
                    raise error from exc
            else:
                if response.is_success:
                    logger.debug("%s -> %s", what, response.status_code)
                    return response
                status_error = self._status_error(response, response.content, what)
                if not policy.should_retry_status(response.status_code, status_error.code):
                    raise status_error
                if not idempotent:
                    # A 429 was refused before any work; anything else may have half-happened.
                    raise status_error if response.status_code == 429 else _not_repeated(status_error)
                error = status_error
                wait = status_error.retry_after
                if wait is not None and wait > policy.max_retry_after:
                    raise status_error
            if attempt >= attempts:
                raise error
            delay = wait if wait is not None else policy.backoff(attempt)
            if policy.clock() - started + delay > policy.total_timeout:
                raise error
            logger.warning(
                "%s: %s; retrying in %.2fs (attempt %d of %d)", what, error, delay, attempt + 1, attempts
            )
            await policy.sleep(delay)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx2.Response]:
        """Open a streamed response (never retried); the response is closed on exit, cancellation included."""
        what = f"{method.upper()} {_display(url)}"
        request = self._build(
            method,
            url,
            params=None,
            body=body,
            headers=headers,
            authenticated=True,
            timeout=self.timeouts.httpx_stream(),
        )
        try:
            response = self._masked(await self._client.send(request, stream=True), streamed=True)
        except httpx2.TransportError as exc:
            raise self._transport_error(exc, what) from exc
        try:
            if not response.is_success:
                raise self._status_error(response, await _read_capped(response), what)
            yield response
        finally:
            await response.aclose()


def _not_repeated(error: TwelveLabsError) -> TwelveLabsError:
    """Mark a failure of a request that was not repeated because repeating it could act twice."""
    error.repeat_safe = False
    return error


async def _read_capped(response: httpx2.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _MAX_ERROR_BODY:
                break
    except httpx2.TransportError:
        pass  # the status line already says what went wrong
    return b"".join(chunks)[:_MAX_ERROR_BODY]


def _display(url: str) -> str:
    # Presigned part URLs carry signatures in their query: show only scheme, host and path.
    return url.split("?", 1)[0]
