"""POST /search (multipart form) and GET /search/{page-token}."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox import entity_refs
from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.filters import NUMERIC_FIELDS, parse_search_filter
from tl_mcp.sandbox.media import MediaError, load_image_rgb
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.retrieval import (
    MatchMode,
    Moment,
    held_once,
    load_indexes,
    rank_image,
    rank_text,
    sources_for,
)
from tl_mcp.sandbox.store import indexed_assets, search_pages
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.indexes import get_index_row
from tl_mcp.sandbox.web import (
    checked_url,
    engine_of,
    form_body,
    form_bool,
    form_int,
    form_list,
    form_str,
    ok,
    query_bool,
    signed_url,
)

SEARCH_OPTIONS = ("visual", "audio", "transcription")
TRANSCRIPTION_OPTIONS = ("lexical", "semantic")


async def _query_images(request: Request, form: Any) -> list[bytes]:
    engine = engine_of(request)
    images: list[bytes] = []
    urls = [u for u in form.getlist("query_media_url") if isinstance(u, str) and u]
    files = [f for f in form.getlist("query_media_file") if not isinstance(f, str)]
    if len(urls) + len(files) > 10:
        raise invalid("At most 10 query images are allowed.")
    if urls:
        import httpx2

        from tl_mcp.sandbox import urls as fetching

        allow_private = engine.config.allow_private_urls
        async with fetching.async_client(
            allow_private=allow_private, timeout=30.0, resolver=engine.config.resolver
        ) as client:
            for url in urls:
                if not url.startswith(("http://", "https://")):
                    raise invalid("`query_media_url` must be an http(s) URL.")
                await checked_url(request, url, name="query_media_url")
                try:
                    resp = await client.get(url)
                except fetching.UrlRefused as exc:
                    raise invalid(f"`query_media_url`: {exc.message}") from exc
                except httpx2.HTTPError as exc:
                    raise invalid(f"`query_media_url` could not be fetched ({type(exc).__name__}).") from exc
                if resp.status_code >= 400:
                    raise invalid(f"`query_media_url` returned HTTP {resp.status_code}.")
                images.append(resp.content[: engine.config.max_image_bytes + 1])
    else:
        for f in files:
            images.append(await f.read(engine.config.max_image_bytes + 1))
    for data in images:
        if len(data) > engine.config.max_image_bytes:
            raise invalid(f"Query images may be at most {engine.config.max_image_bytes} bytes.")
    return images


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def search(request: Request) -> Response:
    engine = engine_of(request)
    form = await form_body(request, max_bytes=engine.config.max_image_bytes * 10)
    try:
        index_id = form_str(form, "index_id", required=True)
        assert index_id is not None
        options = form_list(form, "search_options")
        if not options:
            raise missing("search_options", "Use one or more of visual, audio, transcription.")
        bad = [o for o in options if o not in SEARCH_OPTIONS]
        if bad:
            raise ApiError(
                400,
                "search_option_not_supported",
                f"Unsupported search_options {bad}; use visual, audio, transcription.",
            )
        modes = form_list(form, "transcription_options")
        wrong = [m for m in modes if m not in TRANSCRIPTION_OPTIONS]
        if wrong:
            raise invalid(
                f"Unsupported transcription_options {wrong}; use lexical (exact words), semantic (meaning) "
                "or both (the default)."
            )
        query_text = form_str(form, "query_text")
        media_type = form_str(form, "query_media_type")
        if media_type is not None and media_type != "image":
            raise invalid(f"The `query_media_type` parameter must be image (got {media_type!r}).")
        images = (
            await _query_images(request, form)
            if media_type == "image" or form.get("query_media_file") or form.get("query_media_url")
            else []
        )
        if query_text is None and not images:
            raise missing(
                "query_text", "Send query_text, or query_media_type=image with query_media_file/url."
            )
        group_by = form_str(form, "group_by") or "clip"
        if group_by not in ("clip", "video"):
            raise invalid(f"The `group_by` parameter must be clip or video (got {group_by!r}).")
        operator = form_str(form, "operator") or "or"
        if operator not in ("or", "and"):
            raise invalid(f"The `operator` parameter must be or or and (got {operator!r}).")
        page_limit = form_int(form, "page_limit", 10, 1, 50)
        filt = parse_search_filter(form_str(form, "filter"))
        include_meta = form_bool(form, "include_user_metadata", False)
        get_index_row(engine.db, index_id)
        entity_query = entity_refs.resolve(engine, query_text)
        if entity_query is not None and "visual" not in options:
            raise ApiError(
                400,
                "search_option_combination_not_supported",
                "Entity search (`<@entity_id>` in `query_text`) needs the `visual` search option.",
            )
    finally:
        pass

    def embed_images() -> list[FloatArray]:
        try:
            return [engine.analyzers.image.embed_image(load_image_rgb(d, engine.limits)) for d in images]
        except MediaError as exc:
            raise invalid(f"A query image could not be decoded: {exc.message}") from exc

    # Up to 10 pictures of up to max_pixels each: seconds of decoding, kept off the event loop.
    vectors = await anyio.to_thread.run_sync(embed_images)
    await form.close()

    rows = indexed_assets.ready_in_index(engine.db, index_id)
    if filt is not None:
        rows = [r for r in rows if filt.matches(_system_fields(r), r.user_metadata)]
    video_of = {r.asset_id: r.id for r in rows}
    meta_of = {r.asset_id: r.user_metadata for r in rows}
    indexes = load_indexes(engine, [r.asset_id for r in rows])
    notes: list[str] = []
    moments: list[Moment] = []
    if entity_query is not None:
        rest = entity_query.rest
        said = rank_text(engine, indexes, rest, sources_for(options), operator) if rest else []
        moments = entity_refs.rank(indexes, entity_query, said)
        notes.append(entity_query.note)
    elif query_text is not None:
        mode = _transcription_mode(modes)
        if "transcription" in options and mode != "fused":
            # transcription_options govern the transcription modality only; the others keep both halves.
            moments = rank_text(
                engine, indexes, query_text, sources_for(["transcription"]), operator, mode=mode
            )
            others = [o for o in options if o != "transcription"]
            if others:
                fused = rank_text(engine, indexes, query_text, sources_for(others), operator)
                moments = _merge(moments, fused)
            if mode == "semantic" and not engine.analyzers.text.semantic:
                notes.append(
                    "semantic transcription search needs a semantic text embedder (ml extra); it is off, so "
                    "transcription_options=semantic matches nothing"
                )
        else:
            moments.extend(rank_text(engine, indexes, query_text, sources_for(options), operator))
        if "visual" in options and engine.analyzers.ocr is None:
            notes.append(
                "visual text search reads on-screen text only when OCR is installed (ml extra); it is off"
            )
        if "visual" in options:
            notes.append(
                "visual search matches on-screen text and frames; scene semantics are not available offline"
            )
    if vectors:
        if "visual" not in options:
            raise ApiError(
                400,
                "search_option_combination_not_supported",
                "Image queries need the `visual` search option.",
            )
        image_moments = rank_image(indexes, vectors)
        if query_text is not None and operator == "and":
            keys = {(m.asset_id, m.segment) for m in moments}
            image_moments = [m for m in image_moments if (m.asset_id, m.segment) in keys]
        moments = _merge(moments, image_moments)
    # Joined last, once per segment is settled: ranks, pages, totals and groups all count the joined clips.
    moments = held_once(moments)
    clips = [_clip(request, m, video_of[m.asset_id], meta_of[m.asset_id]) for m in moments]
    for rank, clip in enumerate(clips, 1):
        clip["rank"] = rank
    total_duration = sum(r.probe.get("duration") or 0 for r in rows)
    search_metadata: dict[str, Any] = {
        "engine": "tl-mcp sandbox (offline)",
        "analyzers": engine.analyzers.describe(),
        "notes": notes + list(engine.analyzers.notes),
    }
    if entity_query is not None:
        search_metadata["entity_search"] = entity_query.describe()
    header = {
        "search_pool": {"total_count": len(rows), "total_duration": total_duration, "index_id": index_id},
        "search_metadata": search_metadata,
    }
    if group_by == "video":
        groups: dict[str, list[dict[str, Any]]] = {}
        for clip in clips:
            groups.setdefault(clip["video_id"], []).append(clip)
        items: list[dict[str, Any]] = []
        for video_id, vclips in groups.items():
            item: dict[str, Any] = {"id": video_id, "clips": vclips}
            if "user_metadata" in vclips[0]:
                item["user_metadata"] = vclips[0]["user_metadata"]
            items.append(item)
        results: list[dict[str, Any]] = items
    else:
        results = clips
    return ok(
        _store_and_page(
            engine,
            results,
            page_limit,
            header,
            grouped=group_by == "video",
            total_inner=len(clips),
            include_meta=include_meta,
        )
    )


def _transcription_mode(modes: list[str]) -> MatchMode:
    chosen = set(modes)
    if chosen == {"lexical"}:
        return "lexical"
    if chosen == {"semantic"}:
        return "semantic"
    return "fused"  # both, or not given (the default is both)


def _merge(a: list[Moment], b: list[Moment]) -> list[Moment]:
    best: dict[tuple[str, int], Moment] = {}
    for m in [*a, *b]:
        key = (m.asset_id, m.segment)
        if key not in best or m.score > best[key].score:
            best[key] = m
    return sorted(best.values(), key=lambda m: (-m.score, m.asset_id, m.start))


def _clip(request: Request, m: Moment, video_id: str, meta: dict[str, Any] | None) -> dict[str, Any]:
    clip: dict[str, Any] = {
        "start": m.start,
        "end": m.end,
        "video_id": video_id,
        "score": m.score,
        "confidence": m.confidence,
        "modality": m.modality,
    }
    if m.thumbnail_path:
        clip["thumbnail_url"] = signed_url(request, m.thumbnail_path)
    if m.modality in ("subtitle", "speech"):
        clip["transcription"] = m.text
    elif m.text:
        clip["text"] = m.text
    if meta:
        clip["user_metadata"] = meta
    return clip


def _store_and_page(
    engine: Any,
    results: list[dict[str, Any]],
    limit: int,
    header: dict[str, Any],
    *,
    grouped: bool,
    total_inner: int,
    include_meta: bool,
) -> dict[str, Any]:
    search_id = new_id()
    now = time.time()
    expires = now + engine.config.search_page_ttl_s
    state = {
        "results": results,
        "limit": limit,
        "header": header,
        "grouped": grouped,
        "total_inner": total_inner,
        "include_meta": include_meta,
    }
    search_pages.insert(engine.db, search_id, created_at=now, expires_at=expires, state=state)
    return _page(search_id, state, 1, expires, include_meta)


def _page(
    search_id: str, state: dict[str, Any], page: int, expires: float, include_meta: bool
) -> dict[str, Any]:
    results, limit = state["results"], state["limit"]
    data = results[(page - 1) * limit : page * limit]
    if not include_meta:
        data = [_without_metadata(r) for r in data]
    info: dict[str, Any] = {
        "limit_per_page": limit,
        "total_results": len(results),
        "page_expires_at": _iso(expires),
    }
    if state["grouped"]:
        info["total_inner_matches"] = state["total_inner"]
    if page * limit < len(results):
        info["next_page_token"] = f"{search_id}-{page + 1}"
    if page > 1:
        info["prev_page_token"] = f"{search_id}-{page - 1}"
    return {"data": data, "page_info": info, **state["header"]}


async def search_page(request: Request) -> Response:
    engine = engine_of(request)
    token = request.path_params["token"]
    search_id, _, page_raw = token.rpartition("-")
    if not search_id or not page_raw.isdigit() or int(page_raw) < 1:
        raise invalid(f"`{token}` is not a search page token; use page_info.next_page_token from a search.")
    saved = search_pages.get(engine.db, search_id)
    if saved is None or saved.expires_at < time.time():
        raise ApiError(
            400,
            "search_page_token_expired",
            "This search page token has expired or is unknown; run the search again.",
        )
    state = saved.state
    # Each page decides for itself (the route takes the flag); without it, as the search asked.
    include_meta = query_bool(request, "include_user_metadata", state.get("include_meta", False))
    return ok(_page(search_id, state, int(page_raw), saved.expires_at, include_meta))


def _without_metadata(result: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in result.items() if k != "user_metadata"}
    if "clips" in out:
        out["clips"] = [_without_metadata(c) for c in out["clips"]]
    return out


def _system_fields(row: indexed_assets.Searchable) -> dict[str, Any]:
    return {
        "id": row.id,
        "filename": row.filename,
        **{name: row.probe.get(name) for name in NUMERIC_FIELDS},
    }


routes: list[BaseRoute] = [
    Route("/search", search, methods=["POST"]),
    Route("/search/{token}", search_page, methods=["GET"]),
]
