"""Request parsing and response helpers shared by every route module — ``http/``, ``knowledge/routes`` and
``jockey/routes``: bodies within their limits, forms, queries, metadata checks, pagination, URL signing.

It sits beside those packages, not in ``http/``, and imports no route, so route modules of different
families share it without depending on one another."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from typing import Any, Literal, overload

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message

from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, invalid, missing

MAX_PAGE_LIMIT = 50


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def api_base(request: Request) -> str:
    """The base URL clients use (…/v1.3), for links we hand out (thumbnails, upload URLs)."""
    configured = engine_of(request).config.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/v1.3"


def sign(request: Request, path: str) -> str:
    secret: bytes = request.app.state.url_secret
    return hmac.new(secret, path.encode(), hashlib.sha256).hexdigest()[:32]


def signed_url(request: Request, path: str) -> str:
    """An unauthenticated URL for ``path`` (relative to /v1.3), valid because it carries our signature."""
    return f"{api_base(request)}{path}?sig={sign(request, path)}"


def thumbnail_url(request: Request, asset_id: str, name: str | None) -> str | None:
    return signed_url(request, f"/media/{asset_id}/thumbs/{name}") if name else None


def check_signature(request: Request, path: str) -> None:
    given = request.query_params.get("sig", "")
    if not hmac.compare_digest(given, sign(request, path)):
        raise ApiError(
            403, "forbidden", "This URL's signature is missing or invalid; ask the API for a fresh URL."
        )


async def checked_url(request: Request, url: str, *, name: str, nested: bool = False) -> str:
    """``url`` if the sandbox may fetch it (see tl_mcp.sandbox.urls), else a 400 saying why."""
    from tl_mcp.sandbox.urls import UrlRefused, acheck_url

    try:
        config = engine_of(request).config
        await acheck_url(url, allow_private=config.allow_private_urls, resolver=config.resolver)
    except UrlRefused as exc:
        raise invalid(f"`{name}`: {exc.message}", nested=nested) from exc
    return url


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status)


def no_content() -> Response:
    """Success without a body. The OpenAPI snapshot declares 200 (older specs said 204; every client
    accepts any 2xx), so the sandbox answers as the snapshot does."""
    return Response(status_code=200)


def _capped(request: Request, limit: int, refusal: ApiError) -> Request:
    """``request`` reading its body through a counter that raises ``refusal`` once more than ``limit``
    bytes arrived. The declared ``Content-Length`` is refused before anything is read; a chunked body is
    cut off as it streams, so neither memory nor spooled files grow past the limit. The refusal closes
    the connection: otherwise the server would go on reading (and discarding) the rest of the body."""
    refusal.headers["connection"] = "close"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise refusal
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise refusal
        return message

    return Request(request.scope, receive)


async def json_body(request: Request, *, nested: bool = False) -> dict[str, Any]:
    limit = engine_of(request).config.max_json_bytes
    too_large = ApiError(
        413,
        "request_too_large",
        f"The request body is larger than {limit} bytes, the limit for JSON bodies; send less (media "
        "as an asset or URL rather than inline base64).",
        nested=nested,
    )
    raw = await _capped(request, limit, too_large).body()
    if not raw.strip():
        raise invalid(
            "The request body is empty; send a JSON object with Content-Type: application/json.",
            nested=nested,
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"The request body is not valid JSON ({exc}).", nested=nested) from exc
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", nested=nested)
    return body


#: Room for the multipart boundaries and text fields around a file of the largest allowed size.
FORM_OVERHEAD_BYTES = 1024 * 1024


async def form_body(request: Request, *, max_bytes: int) -> FormData:
    """The form, refused with ``video_filesize_too_large`` as soon as the body passes ``max_bytes`` (plus
    the form's own overhead), whether declared up front or streamed chunked."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise invalid(
            f"This endpoint takes multipart/form-data (got {ctype or 'no content type'}); send the fields "
            "as a form."
        )
    too_large = ApiError(
        400,
        "video_filesize_too_large",
        f"The request is larger than {max_bytes} bytes, the limit here. Use a multipart upload "
        "(POST /assets/multipart-uploads) or a URL for larger files.",
    )
    capped = _capped(request, max_bytes + FORM_OVERHEAD_BYTES, too_large)
    try:
        return await capped.form(max_files=20, max_fields=200)
    except ApiError:
        raise
    except Exception as exc:
        raise invalid(f"The multipart form could not be parsed ({exc}).") from exc


@overload
def body_str(body: dict[str, Any], name: str, *, required: Literal[True], max_len: int = ...) -> str: ...
@overload
def body_str(
    body: dict[str, Any], name: str, *, required: bool = False, max_len: int = ...
) -> str | None: ...
def body_str(body: dict[str, Any], name: str, *, required: bool = False, max_len: int = 10_000) -> str | None:
    """A string field of a JSON body: absent is `parameter_not_provided` when required, blank is invalid."""
    value = body.get(name)
    if value is None:
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(f"The `{name}` parameter must be a string.")
    if required and not value.strip():
        raise invalid(f"The `{name}` parameter must not be empty.")
    if len(value) > max_len:
        raise invalid(f"The `{name}` parameter is longer than {max_len} characters.")
    return value


def form_str(form: FormData, name: str, *, required: bool = False) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(f"The `{name}` parameter must be a text field, not a file.")
    return value


def form_file(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        raise invalid(f"The `{name}` parameter must be a file upload, not a text field.")
    return value


def form_list(form: FormData, name: str) -> list[str]:
    """A repeated form field; also accepts one comma-separated or JSON-array value."""
    out: list[str] = []
    for value in form.getlist(name) + form.getlist(f"{name}[]"):
        if not isinstance(value, str):
            raise invalid(f"The `{name}` parameter must be text, not a file.")
        value = value.strip()
        if value.startswith("["):
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                raise invalid(f"The `{name}` parameter is not a valid JSON array.") from exc
            out.extend(str(v) for v in parsed)
        else:
            out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def form_bool(form: FormData, name: str, default: bool) -> bool:
    return _parse_bool(name, form_str(form, name), default, yes=("true", "1", "yes"), no=("false", "0", "no"))


def form_int(form: FormData, name: str, default: int, lo: int, hi: int) -> int:
    return _parse_int(name, form_str(form, name), default, lo, hi)


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    return _parse_int(name, request.query_params.get(name) or None, default, lo, hi)


def query_list(request: Request, name: str) -> list[str]:
    out: list[str] = []
    for value in request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]"):
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    return _parse_bool(
        name, request.query_params.get(name) or None, default, yes=("true", "1"), no=("false", "0")
    )


def _parse_int(name: str, raw: str | None, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise invalid(f"The `{name}` parameter must be an integer (got {raw!r}).") from exc
    if not lo <= value <= hi:
        raise invalid(f"The `{name}` parameter must be between {lo} and {hi} (got {value}).")
    return value


def _parse_bool(
    name: str, raw: str | None, default: bool, *, yes: tuple[str, ...], no: tuple[str, ...]
) -> bool:
    """`yes`/`no` differ: form fields also take yes/no, query strings only the words the API documents."""
    if raw is None:
        return default
    if raw.lower() in yes:
        return True
    if raw.lower() in no:
        return False
    raise invalid(f"The `{name}` parameter must be true or false (got {raw!r}).")


def page_params(request: Request) -> tuple[int, int]:
    return query_int(request, "page", 1, 1, 1_000_000), query_int(
        request, "page_limit", 10, 1, MAX_PAGE_LIMIT
    )


def sort_params(request: Request, allowed: Sequence[str] = ("created_at", "updated_at")) -> tuple[str, str]:
    sort_by = request.query_params.get("sort_by") or "created_at"
    sort_option = (request.query_params.get("sort_option") or "desc").lower()
    if sort_by not in allowed:
        raise invalid(f"The `sort_by` parameter must be one of {', '.join(allowed)} (got {sort_by!r}).")
    if sort_option not in ("asc", "desc"):
        raise invalid(f"The `sort_option` parameter must be asc or desc (got {sort_option!r}).")
    return sort_by, sort_option


def page_info(page: int, limit: int, total: int, *, empty_pages: int = 1) -> dict[str, Any]:
    """TwelveLabs' ``page_info``. ``empty_pages``: the ``total_page`` of an empty list, which is 1 for the
    v1.3 resource lists and 0 for the knowledge-store lists (each as the real API answers)."""
    return {
        "page": page,
        "limit_per_page": limit,
        "total_page": math.ceil(total / limit) if total else empty_pages,
        "total_results": total,
    }


def paged(items: Sequence[Any], page: int, limit: int) -> dict[str, Any]:
    """A page of ``items``; a page past the end is an empty page, never an error (SDK pagers rely on it)."""
    return {
        "data": list(items[(page - 1) * limit : page * limit]),
        "page_info": page_info(page, limit, len(items)),
    }
