"""Shared pieces of every wire model: lenient parsing, `_id` aliases, pagination envelopes."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

T = TypeVar("T")

# Values allowed in user/KS metadata since SDK 1.3.5: scalars or arrays of strings.
MetadataValue = str | int | float | bool | list[str]


def _whole(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: A count or size the spec types as `number`: a whole value is kept as an int, so it reads `2`, not `2.0`.
Number = Annotated[int | float, BeforeValidator(_whole)]


class WireModel(BaseModel):
    """Base for response objects: unknown fields are kept (the API grows fast); alias or name both work."""

    # Deferred: a model's validator is built on its first use, not for every model at import (start-up).
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class RequestModel(BaseModel):
    """Base for request bodies we build: typos in our own code must fail loudly, not reach the wire."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class PageInfo(WireModel):
    page: int | None = None
    limit_per_page: int | None = None
    total_page: int | None = None
    total_results: int | None = None


class Page(WireModel, Generic[T]):
    """A page-number list: `{data: [...], page_info: {...}}`."""

    data: list[T] = Field(default_factory=list)
    page_info: PageInfo = Field(default_factory=PageInfo)

    @property
    def has_more(self) -> bool:
        """True when another page may exist (the SDK convention: stop on empty data or past total_page)."""
        if not self.data:
            return False
        info = self.page_info
        if info.page is not None and info.total_page is not None:
            return info.page < info.total_page
        return True


class GeneratedBy(WireModel):
    """Sandbox only: how an answer, analysis, summary or structured output was made (which answerer and
    model, and why if it fell back). The cloud does not send it."""

    answerer: str
    model: str | None = None
    note: str | None = None

    def line(self) -> str:
        """One short line that tells an agent what the text is worth."""
        if self.answerer == "extractive":
            made = "the sandbox extractively: quotes of what the video says or shows, no language model"
        elif self.answerer == "local":
            made = f"the sandbox's local model {self.model}, checked against the retrieved moments"
        else:
            made = f"{self.model} through the sandbox's model endpoint, checked against the retrieved moments"
        return f"Made by {made}" + (f" ({self.note})." if self.note else ".")
