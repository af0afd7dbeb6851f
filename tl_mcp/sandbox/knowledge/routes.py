"""The knowledge-store HTTP routes: parse each request, call :class:`KnowledgeService`, render its answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tl_mcp.sandbox.errors import ApiError
from tl_mcp.sandbox.knowledge import search
from tl_mcp.sandbox.knowledge.ingest import EngineHooks
from tl_mcp.sandbox.knowledge.models import JockeyOptions, JsonObj
from tl_mcp.sandbox.knowledge.render import collection_json, item_json, store_json
from tl_mcp.sandbox.knowledge.service import KnowledgeService
from tl_mcp.sandbox.web import engine_of, json_body, page_info, page_params, signed_url, sort_params

log = logging.getLogger(__name__)


def get_service(request: Request) -> KnowledgeService:
    """The service for this request, over the running sandbox's engine (``request.app.state.engine``)."""
    engine = engine_of(request)
    fired = getattr(request.state, "faults", ())
    options = JockeyOptions(
        keepalive_interval_s=engine.config.keepalive_interval_s,
        page_token_ttl_s=engine.config.search_page_ttl_s,
        think_delay_s=sum(rule.latency_s for rule in fired if rule.kind == "stall"),
        delta_delay_s=engine.config.stream_delay_s,
    )
    return KnowledgeService(engine.db, EngineHooks(engine, lambda path: signed_url(request, path)), options)


def _sort(request: Request, allowed: Sequence[str]) -> str:
    sort_by, option = sort_params(request, allowed)
    # id breaks ties: ids are time-ordered, so equal timestamps still sort by creation.
    return f"{sort_by} {option.upper()}, id {option.upper()}"


def _paged(data: list[JsonObj], total: int, page: int, limit: int) -> JSONResponse:
    # Unlike the v1.3 lists, an empty knowledge-store list has no pages at all.
    return JSONResponse({"data": data, "page_info": page_info(page, limit, total, empty_pages=0)})


Handler = Callable[[Request, KnowledgeService], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return await handler(request, get_service(request))
        except ApiError as exc:
            return exc.response()

    run.__name__ = handler.__name__
    return run


def _empty() -> Response:
    return Response(status_code=200)


async def _list_stores(request: Request, svc: KnowledgeService) -> Response:
    page, limit = page_params(request)
    stores, total = svc.list_stores(
        page=page, limit=limit, order=_sort(request, ("created_at", "updated_at", "name"))
    )
    return _paged([store_json(s, n) for s, n in stores], total, page, limit)


def _store_response(svc: KnowledgeService, store_id: str, status: int = 200) -> JSONResponse:
    return JSONResponse(store_json(svc.store_row(store_id), svc.item_count(store_id)), status)


async def _create_store(request: Request, svc: KnowledgeService) -> Response:
    store = svc.create_store(await json_body(request))
    return JSONResponse(store_json(store, 0), 201)


async def _get_store(request: Request, svc: KnowledgeService) -> Response:
    return _store_response(svc, request.path_params["ks"])


async def _patch_store(request: Request, svc: KnowledgeService) -> Response:
    store = svc.update_store(request.path_params["ks"], await json_body(request))
    return JSONResponse(store_json(store, svc.item_count(store.id)))


async def _delete_store(request: Request, svc: KnowledgeService) -> Response:
    svc.delete_store(request.path_params["ks"])
    return _empty()


async def _search_store(request: Request, svc: KnowledgeService) -> Response:
    page = await search.search(svc, request.path_params["ks"], await json_body(request))
    return JSONResponse(page.as_json())


async def _create_item(request: Request, svc: KnowledgeService) -> Response:
    return JSONResponse(
        item_json(await svc.add_item(request.path_params["ks"], await json_body(request))), 202
    )


async def _list_items(request: Request, svc: KnowledgeService) -> Response:
    page, limit = page_params(request)
    items, total = svc.list_items(
        request.path_params["ks"],
        page=page,
        limit=limit,
        order=_sort(request, ("created_at", "updated_at")),
        statuses=request.query_params.getlist("status"),
    )
    return _paged([item_json(i) for i in items], total, page, limit)


async def _get_item(request: Request, svc: KnowledgeService) -> Response:
    return JSONResponse(item_json(svc.item_row(request.path_params["ks"], request.path_params["item"])))


async def _delete_item(request: Request, svc: KnowledgeService) -> Response:
    svc.delete_item(request.path_params["ks"], request.path_params["item"])
    return _empty()


async def _create_collection(request: Request, svc: KnowledgeService) -> Response:
    collection = svc.create_collection(request.path_params["ks"], await json_body(request))
    return JSONResponse(collection_json(collection), 201)


async def _list_collections(request: Request, svc: KnowledgeService) -> Response:
    page, limit = page_params(request)
    collections, total = svc.list_collections(
        request.path_params["ks"],
        page=page,
        limit=limit,
        order=_sort(request, ("created_at", "updated_at", "name")),
    )
    return _paged([collection_json(c) for c in collections], total, page, limit)


async def _get_collection(request: Request, svc: KnowledgeService) -> Response:
    return JSONResponse(
        collection_json(svc.collection_row(request.path_params["ks"], request.path_params["cid"]))
    )


async def _patch_collection(request: Request, svc: KnowledgeService) -> Response:
    body = await json_body(request)
    collection = svc.update_collection(request.path_params["ks"], request.path_params["cid"], body)
    return JSONResponse(collection_json(collection))


async def _delete_collection(request: Request, svc: KnowledgeService) -> Response:
    svc.delete_collection(request.path_params["ks"], request.path_params["cid"])
    return _empty()


async def _collection_items(request: Request, svc: KnowledgeService) -> Response:
    page, limit = page_params(request)
    items, total = svc.collection_items(
        request.path_params["ks"], request.path_params["cid"], page=page, limit=limit
    )
    return _paged([item_json(i) for i in items], total, page, limit)


async def _add_members(request: Request, svc: KnowledgeService) -> Response:
    body = await json_body(request)
    collection = svc.add_members(request.path_params["ks"], request.path_params["cid"], body)
    return JSONResponse(collection_json(collection))


async def _remove_members(request: Request, svc: KnowledgeService) -> Response:
    svc.remove_members(request.path_params["ks"], request.path_params["cid"], await json_body(request))
    return _empty()


_KS = "/knowledge-stores/{ks}"
_COL = _KS + "/item-collections/{cid}"

#: Routes relative to the API root (the core app mounts them under /v1.3).
routes: list[Route] = [
    Route("/knowledge-stores", _endpoint(_list_stores), methods=["GET"]),
    Route("/knowledge-stores", _endpoint(_create_store), methods=["POST"]),
    Route(_KS, _endpoint(_get_store), methods=["GET"]),
    Route(_KS, _endpoint(_patch_store), methods=["PATCH"]),
    Route(_KS, _endpoint(_delete_store), methods=["DELETE"]),
    Route(_KS + "/search", _endpoint(_search_store), methods=["POST"]),
    Route(_KS + "/items", _endpoint(_create_item), methods=["POST"]),
    Route(_KS + "/items", _endpoint(_list_items), methods=["GET"]),
    Route(_KS + "/items/{item}", _endpoint(_get_item), methods=["GET"]),
    Route(_KS + "/items/{item}", _endpoint(_delete_item), methods=["DELETE"]),
    Route(_KS + "/item-collections", _endpoint(_create_collection), methods=["POST"]),
    Route(_KS + "/item-collections", _endpoint(_list_collections), methods=["GET"]),
    Route(_COL, _endpoint(_get_collection), methods=["GET"]),
    Route(_COL, _endpoint(_patch_collection), methods=["PATCH"]),
    Route(_COL, _endpoint(_delete_collection), methods=["DELETE"]),
    Route(_COL + "/items", _endpoint(_collection_items), methods=["GET"]),
    Route(_COL + "/items/add", _endpoint(_add_members), methods=["POST"]),
    Route(_COL + "/items/remove", _endpoint(_remove_members), methods=["POST"]),
]
