"""TwelveLabs v1.3 async HTTP client: the client, its typed models, its errors and the policies it takes.

The decoders (`tl_mcp.api.streaming`) and the HTTP core (`tl_mcp.api._http`) are importable from their
modules for tests and tools that need them; they are not part of this surface.
"""

from ._http import RetryPolicy, Timeouts
from .client import TwelveLabsClient
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

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ContentTooLargeError",
    "GoneError",
    "NotFoundError",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "RetryPolicy",
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
