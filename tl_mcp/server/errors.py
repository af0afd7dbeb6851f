"""Turn upstream failures into `ToolError`s that say what failed, why, and what to do next.

The SDK hides the message of any exception that is not a `ToolError`, so every failure the model could act
on goes through here. Messages are built from status, code and the upstream message only: never a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from tl_mcp.api.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
    TwelveLabsError,
    UnprocessableError,
)
from tl_mcp.redaction import mask_urls

_HINTS: list[tuple[type[TwelveLabsError], str]] = [
    (
        AuthenticationError,
        "Check the TWELVELABS_API_KEY the server was started with (the key itself is not shown).",
    ),
    (PermissionDeniedError, "The API key lacks access to this resource or feature; check the plan or key."),
    (
        NotFoundError,
        "Check the id; list_indexes, list_videos, list_assets or list_knowledge_stores show the ids that "
        "exist.",
    ),
    (ConflictError, "Something with that name or state already exists; pick another name or reuse it."),
    (RateLimitError, "The API is rate limiting; wait a little and retry."),
    (BadRequestError, "Fix the arguments named in the message and call again."),
    (UnprocessableError, "The input was understood but cannot be processed; check format, size and state."),
    (ServerError, "The TwelveLabs API had an internal error; retry shortly."),
    (APITimeoutError, "The request timed out; retry, or use a job handle (wait_for_task) for long work."),
    (
        APIConnectionError,
        "The connection to the API failed; retry, and if it keeps failing check the network (or that the "
        "sandbox is running).",
    ),
]


#: The tools that list what a request path names, most specific first. A nested path names its parent's
#: lister too: the API's 404 does not say whether the index or the video in it is the one missing.
_LISTED_BY: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/entity-collections/[^/]+/entities\b"), "list_entity_collections and list_entities show"),
    (re.compile(r"/entity-collections\b"), "list_entity_collections shows"),
    (
        re.compile(r"/knowledge-stores/[^/]+/item-collections\b"),
        "list_knowledge_stores and list_item_collections show",
    ),
    (
        re.compile(r"/knowledge-stores/[^/]+/items\b"),
        "list_knowledge_stores and list_knowledge_store_items show",
    ),
    (re.compile(r"/knowledge-stores\b"), "list_knowledge_stores shows"),
    (re.compile(r"/indexes/[^/]+/(indexed-assets|videos)\b"), "list_indexes and list_videos show"),
    (re.compile(r"/indexes\b"), "list_indexes shows"),
    (re.compile(r"/assets\b"), "list_assets shows"),
)


def _not_found_hint(exc: TwelveLabsError) -> str | None:
    """For a 404, the tools that list what the request named, so the next call finds the real id."""
    if not isinstance(exc, NotFoundError) or not exc.path:
        return None
    listed = next((tools for pattern, tools in _LISTED_BY if pattern.search(exc.path)), None)
    return f"Check the id; {listed} the ids that exist." if listed else None


def explain(action: str, exc: TwelveLabsError, *, hint: str | None = None) -> str:
    """`hint`: what to do next, from a caller that knows better than the generic line for the error's kind
    (a delete refused with 409 is not a name taken)."""
    why = [f"HTTP {exc.status}" if exc.status else None, exc.code]
    reason = ", ".join(w for w in why if w)
    # An upstream may quote the request's media URL back; its credentials stay out of the error.
    message = mask_urls(exc.message.strip()) if exc.message else type(exc).__name__
    text = f"{action} failed: {message}" + (f" ({reason})" if reason else "")
    if isinstance(exc, RateLimitError) and exc.retry_after:
        text += f". Retry after {exc.retry_after:.0f} s"
    fallback = _not_found_hint(exc) or next(
        (h for cls, h in _HINTS if isinstance(exc, cls)),
        "The API's answer could not be used; retry, and if it keeps happening the service may be degraded.",
    )
    hint = hint or fallback
    if isinstance(exc, StreamError):
        hint = (
            "The answer was cut off before it was complete (what arrived is kept below, if anything did); "
            "call again for the complete answer."
        )
    elif exc.repeat_safe is False:
        hint = (
            "It was not retried automatically, because repeating it could do it twice. Check whether it "
            "took effect (list_indexes, list_knowledge_stores or list_knowledge_store_items show what "
            "exists); if it did not, it is safe to call again."
        )
    return f"{text}. {hint}".strip()


@contextmanager
def upstream(action: str) -> Iterator[None]:
    """API errors inside the block become a `ToolError` saying what failed and what to do next."""
    try:
        yield
    except TwelveLabsError as exc:
        raise ToolError(explain(action, exc)) from None


def invalid_arguments(what: str, exc: ValidationError, accepted: Iterable[str]) -> str:
    """Argument errors as the caller can act on them: each argument, what is wrong, what it got.

    pydantic's own text names an internal model and ends every error with a documentation URL, which
    says nothing to an agent; the input is echoed (shortened) because it is the caller's own.
    """
    names = list(accepted)
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            problems.append(f"{where} is not an argument of {what}")
            continue
        got = "" if err["type"] == "missing" else f" (got {_short(err.get('input'))})"
        problems.append(f"{where}: {err['msg']}{got}")
    takes = f" It takes: {', '.join(names)}." if names else ""
    return f"Invalid arguments for {what}: {'; '.join(problems)}.{takes} Fix them and call again."


def _short(value: object) -> str:
    text = mask_urls(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."
