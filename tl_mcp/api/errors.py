"""One exception hierarchy for everything the client can raise. Messages quote the server, whose answers
have had their secrets masked where they entered (``tl_mcp.api._http``)."""

from __future__ import annotations

import json
from typing import Any

# Response headers that carry a request/trace id, most specific first.
REQUEST_ID_HEADERS = ("x-request-id", "x-amzn-requestid", "request-id", "x-trace-id", "cf-ray")


class TwelveLabsError(Exception):
    """Base of every client error. `str()` reads `what (HTTP status, code) [request id]`."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        #: False when the request was not retried because it may have taken effect (a create, an upload).
        self.repeat_safe: bool | None = None
        #: The URL path of the request the API answered with this error (None before any answer).
        self.path: str | None = None
        super().__init__(message)

    def __str__(self) -> str:
        details = [f"HTTP {self.status}" if self.status is not None else None, self.code]
        text = self.message
        shown = ", ".join(d for d in details if d)
        if shown:
            text += f" ({shown})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class APIStatusError(TwelveLabsError):
    """The API answered with a non-2xx status."""


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class GoneError(APIStatusError):
    pass


class ContentTooLargeError(APIStatusError):
    pass


class UnprocessableError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class ServerError(APIStatusError):
    pass


class APIConnectionError(TwelveLabsError):
    """The request never got an HTTP answer (DNS, refused connection, reset)."""


class APITimeoutError(APIConnectionError):
    """Connect, write, read or stream-idle timeout."""


class StreamError(TwelveLabsError):
    """A stream ended early or reported failure; what arrived so far is kept."""

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        session_id: str | None = None,
        response_id: str | None = None,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.partial_text = partial_text
        self.session_id = session_id
        self.response_id = response_id


class UploadError(TwelveLabsError):
    """A multipart upload could not be completed (missing part URL, ETag, or unfinished session)."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: ContentTooLargeError,
    422: UnprocessableError,
    429: RateLimitError,
}

_MAX_BODY_IN_MESSAGE = 500


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """(code, message) from a flat `{code, message}` or nested `{error: {code, message}}` body."""
    if not body.strip():
        return None, None
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return None, text[:_MAX_BODY_IN_MESSAGE]
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict):
            data = inner
        code = data.get("code", data.get("error_code"))
        message = data.get("message")
        return (str(code) if code is not None else None, str(message) if message is not None else None)
    return None, str(data)[:_MAX_BODY_IN_MESSAGE]


def _default_message(status: int) -> str:
    if status == 429:
        return "Rate limited by TwelveLabs; wait and retry"
    if status == 401:
        return "The API key was rejected (invalid or expired); set a valid TWELVELABS_API_KEY"
    if status >= 500:
        return "TwelveLabs had a server error; retry later"
    return "TwelveLabs rejected the request"


def error_for_status(
    status: int,
    body: bytes,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    context: str | None = None,
) -> APIStatusError:
    code, message = parse_error_body(body)
    text = message or _default_message(status)
    if context:
        text = f"{context}: {text}"
    cls = _STATUS_CLASSES.get(status, ServerError if status >= 500 else APIStatusError)
    return cls(
        text,
        status=status,
        code=code or None,
        request_id=request_id,
        retry_after=retry_after,
    )
