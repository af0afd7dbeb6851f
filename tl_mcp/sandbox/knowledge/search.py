"""Search over one knowledge store (`POST /knowledge-stores/{ks}/search`, v1.3 §12.9).

A search ranks moments across the store's ready items with the sandbox's retrieval, shapes them as the
contract's hits (one clip per hit, or every clip of an item with ``group_by: item``), and pages through
that ranked list with page tokens that expire (an expired token answers 410, as the spec says).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.knowledge.models import Evidence, Hit, JsonObj
from tl_mcp.sandbox.knowledge.service import MODALITIES, KnowledgeService
from tl_mcp.sandbox.store import ks_items, ks_search_pages
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.ks_items import ItemRecord
from tl_mcp.sandbox.store.ks_search_pages import SearchPageRecord

MAX_PAGE_SIZE = 50
#: The system metadata a hit carries with ``include_metadata`` (v1.3 §12.9).
_HIT_SYSTEM_FIELDS = ("duration", "width", "height", "size")


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a store search: its hits (the API's JSON), the token of the next page, if any, and
    the search options that applied."""

    data: list[JsonObj]
    effective_search_options: JsonObj
    next_page_token: str | None = None

    def as_json(self) -> JsonObj:
        out: JsonObj = {"data": self.data}
        if self.next_page_token is not None:
            out["next_page_token"] = self.next_page_token
        out["effective_search_options"] = self.effective_search_options
        return out


@dataclass(frozen=True, slots=True)
class SearchRequest:
    text: str
    asset_types: frozenset[str]
    item_ids: list[str] | None
    modalities: list[str]
    group_by: str
    page_size: int
    include_metadata: bool
    #: The search options that apply, as `effective_search_options` reports them.
    effective: JsonObj


def parse_request(body: JsonObj) -> SearchRequest:
    """The first-page request in ``body`` (a body with ``page_token`` is a follow-up, see :func:`search`)."""
    query = body.get("query")
    if query is None:
        raise missing("query", 'Send `{"query": {"text": "..."}}`.')
    if not isinstance(query, dict) or not isinstance(query.get("text"), str) or not query["text"].strip():
        raise invalid("`query` must be an object with a non-empty `text` string.")
    text = query["text"]
    if len(text) > 2000:
        raise invalid("`query.text` is longer than 2000 characters.")
    asset_types, item_ids = _parse_filter(body.get("filter"))
    options = body.get("search_options")
    modalities: list[str] = ["visual"]
    if options is not None:
        if not isinstance(options, dict):
            raise invalid("`search_options` must be an object.")
        video = options.get("video")
        if video is not None:
            if "video" not in asset_types:
                raise invalid("`search_options.video` was sent but `filter.asset_type` excludes videos.")
            mods = video.get("modalities") if isinstance(video, dict) else None
            if not isinstance(mods, list) or not mods or any(m not in MODALITIES for m in mods):
                raise invalid(
                    "`search_options.video.modalities` must be a non-empty array of `visual`, `audio`."
                )
            modalities = list(dict.fromkeys(mods))
    group_by = body.get("group_by", "none")
    if group_by not in ("none", "item"):
        raise invalid("`group_by` must be `none` or `item`.")
    page_size = body.get("page_size", 10)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise invalid(f"`page_size` must be an integer between 1 and {MAX_PAGE_SIZE}.")
    include_metadata = body.get("include_metadata", False)
    if not isinstance(include_metadata, bool):
        raise invalid("`include_metadata` must be a boolean.")
    effective: JsonObj = {"video": {"modalities": modalities}} if "video" in asset_types else {}
    return SearchRequest(
        text, frozenset(asset_types), item_ids, modalities, group_by, page_size, include_metadata, effective
    )


def _parse_filter(raw: Any) -> tuple[set[str], list[str] | None]:
    asset_types = {"video", "image"}
    item_ids: list[str] | None = None
    if raw is None:
        return asset_types, item_ids
    if not isinstance(raw, dict):
        raise invalid("`filter` must be an object.")
    unknown = set(raw) - {"asset_type", "item_id"}
    if unknown:
        raise invalid(f"`filter` has unknown fields: {', '.join(sorted(unknown))}.")

    def values(name: str, allowed: Sequence[str] | None) -> list[str]:
        cond = raw[name]
        if not isinstance(cond, dict) or len(cond) != 1 or next(iter(cond)) not in ("eq", "in"):
            raise invalid(f'`filter.{name}` must be `{{"eq": value}}` or `{{"in": [values]}}`.')
        op, val = next(iter(cond.items()))
        vals = [val] if op == "eq" else val
        if not isinstance(vals, list) or not vals or not all(isinstance(v, str) for v in vals):
            raise invalid(f"`filter.{name}.{op}` must be a string (eq) or a non-empty array of strings (in).")
        if allowed is not None and any(v not in allowed for v in vals):
            raise invalid(f"`filter.{name}` values must be among {', '.join(allowed)}.")
        return vals

    if "asset_type" in raw:
        asset_types = set(values("asset_type", ("video", "image")))
    if "item_id" in raw:
        item_ids = values("item_id", None)
    return asset_types, item_ids


async def search(svc: KnowledgeService, store_id: str, body: JsonObj) -> SearchPage:
    """The first page of the search in ``body``, or the page its ``page_token`` names."""
    svc.store_row(store_id)
    token = body.get("page_token")
    if token is not None:
        if not isinstance(token, str) or not token:
            raise invalid("`page_token` must be the `next_page_token` string of a previous search.")
        return _next_page(svc, store_id, token)
    request = parse_request(body)
    found = await svc.moments(
        store_id, request.text, item_ids=request.item_ids, modalities=request.modalities
    )
    items: dict[str, ItemRecord | None] = {}
    for moment, _ in found:
        if moment.item_id not in items:
            items[moment.item_id] = ks_items.get(svc.db, moment.item_id)
    found = [(m, h) for m, h in found if _asset_type(items[m.item_id]) in request.asset_types]
    hits = _hits(found, items, request.group_by, request.include_metadata)
    return _first_page(svc, store_id, hits, request.page_size, request.effective)


def _asset_type(item: ItemRecord | None) -> str:
    return item.asset_type if item else "video"


def _match(moment: Evidence, hit: Hit) -> JsonObj:
    out: JsonObj = {
        "start_sec": round(moment.start, 3),
        "end_sec": round(moment.end, 3),
        "modalities": list(hit.modalities),
    }
    if moment.source in ("speech", "subtitle"):
        out["transcription"] = moment.text
    return out


def _hit_metadata(item: ItemRecord | None) -> JsonObj:
    system = (item.system_metadata if item else None) or {}
    return {
        "system": {k: system[k] for k in _HIT_SYSTEM_FIELDS if k in system},
        "user": item.metadata if item else {},
    }


def _hits(
    found: list[tuple[Evidence, Hit]],
    items: dict[str, ItemRecord | None],
    group_by: str,
    include_metadata: bool,
) -> list[JsonObj]:
    if group_by == "item":
        grouped: dict[str, list[tuple[Evidence, Hit]]] = {}
        for moment, hit in found:
            grouped.setdefault(moment.item_id, []).append((moment, hit))
        entries = [(item_id, [_match(m, h) for m, h in pairs]) for item_id, pairs in grouped.items()]
    else:
        entries = [(m.item_id, [_match(m, h)]) for m, h in found]
    hits: list[JsonObj] = []
    for rank, (item_id, matches) in enumerate(entries, start=1):
        item = items.get(item_id)
        asset_type = _asset_type(item)
        hit_json: JsonObj = {"asset_type": asset_type, "rank": rank, "item_id": item_id}
        if include_metadata:
            hit_json["metadata"] = _hit_metadata(item)
        if asset_type == "video":
            hit_json["matches"] = matches
        hits.append(hit_json)
    return hits


def _first_page(
    svc: KnowledgeService, store_id: str, hits: list[JsonObj], page_size: int, effective: JsonObj
) -> SearchPage:
    token = None
    if len(hits) > page_size:
        token = new_id("kspt")
        expires_at = time.time() + svc.options.page_token_ttl_s
        ks_search_pages.insert(
            svc.db, SearchPageRecord(token, store_id, hits, page_size, page_size, effective, expires_at)
        )
    return SearchPage(hits[:page_size], effective, token)


def _next_page(svc: KnowledgeService, store_id: str, token: str) -> SearchPage:
    saved = ks_search_pages.get(svc.db, token)
    if saved is None or saved.store_id != store_id:
        raise invalid(
            f"`page_token` `{token[:60]}` is not a page token of a search on this knowledge store. "
            "Use the `next_page_token` of the previous response, or search again."
        )
    if saved.expires_at < time.time():
        raise ApiError(
            410,
            "search_page_token_expired",
            "The page token has expired. Send the search again without `page_token` for fresh results.",
        )
    offset, size = saved.offset, saved.page_size
    follow = None
    if offset + size < len(saved.hits):
        follow = new_id("kspt")
        ks_search_pages.insert(
            svc.db,
            SearchPageRecord(
                follow, store_id, saved.hits, size, offset + size, saved.effective, saved.expires_at
            ),
        )
    return SearchPage(saved.hits[offset : offset + size], saved.effective, follow)
