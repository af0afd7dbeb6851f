"""TwelveLabs v1.3 async HTTP client: one client class, its typed models and its errors."""

from ._http import RetryPolicy, Timeouts
from ._multipart import ByteProgress
from .client import DEFAULT_BASE_URL, DEFAULT_MULTIPART_THRESHOLD, TwelveLabsClient
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ContentTooLargeError,
    GoneError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
    TwelveLabsError,
    UnprocessableError,
    UploadError,
)
from .models import *  # noqa: F403 — the models package defines the public model names in __all__
from .models import __all__ as _model_names
from .polling import PollPolicy, poll
from .streaming import NDJSONDecoder, ResponseAssembler, SSEDecoder, SSEEvent

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MULTIPART_THRESHOLD",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ByteProgress",
    "ConflictError",
    "ContentTooLargeError",
    "GoneError",
    "NDJSONDecoder",
    "NotFoundError",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "ResponseAssembler",
    "RetryPolicy",
    "SSEDecoder",
    "SSEEvent",
    "ServerError",
    "StreamError",
    "Timeouts",
    "TwelveLabsClient",
    "TwelveLabsError",
    "UnprocessableError",
    "UploadError",
    "poll",
    *_model_names,
]
