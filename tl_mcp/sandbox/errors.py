"""TwelveLabs-shaped errors. Most routes answer ``{code, message}`` (flat); embed-v2 and analyze tasks nest
it as ``{error: {code, message}}``. Raise :class:`ApiError` anywhere in a handler; the app renders it."""

from __future__ import annotations

from typing import TypeVar

from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        nested: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.nested = nested
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.nested:
            body = {"error": body}
        return JSONResponse(body, self.status, headers=self.headers)


def invalid(message: str, *, nested: bool = False) -> ApiError:
    return ApiError(400, "parameter_invalid", message, nested=nested)


def missing(name: str, hint: str = "", *, nested: bool = False) -> ApiError:
    text = f"The `{name}` parameter is required but was not provided."
    return ApiError(400, "parameter_not_provided", f"{text} {hint}".strip(), nested=nested)


def not_found(resource_id: str, collection: str, *, nested: bool = False) -> ApiError:
    return ApiError(
        404,
        "resource_not_exist",
        f"Resource with id `{resource_id}` does not exist in `{collection}`. "
        f"Check the id, or list {collection} to find it.",
        nested=nested,
    )


_Found = TypeVar("_Found")


def found(row: _Found | None, resource_id: str, collection: str, *, nested: bool = False) -> _Found:
    """`row` (a row or a record) when the lookup found it, else the API's 404 for `resource_id` in
    `collection`."""
    if row is None:
        raise not_found(resource_id, collection, nested=nested)
    return row
