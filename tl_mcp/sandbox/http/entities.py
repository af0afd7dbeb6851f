"""Entity collections, entities and their reference assets (`/entity-collections/...`), and the entities
of one asset (`GET /assets/{asset_id}/entities`).

An entity here is the analysed pictures of its reference assets: searching for `<@entity_id>`
(:mod:`tl_mcp.sandbox.entity_refs`) compares them with indexed frames. That is visual similarity, not the
cloud's recognition of a person or object, and search results say so."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tl_mcp.sandbox.errors import ApiError, invalid, missing
from tl_mcp.sandbox.metadata import check_metadata
from tl_mcp.sandbox.store import assets
from tl_mcp.sandbox.store import entities as store
from tl_mcp.sandbox.store.assets import get_asset_row
from tl_mcp.sandbox.web import (
    body_str,
    engine_of,
    json_body,
    no_content,
    ok,
    page_info,
    page_params,
    paged,
    sort_params,
)

#: Reference assets per request: enough for a roster's worth of photos, small enough to check one by one.
MAX_ASSETS = 100
MAX_BULK = 100
NAME_LEN = 200
DESCRIPTION_LEN = 2000
#: Kinds of asset that carry a picture to compare with video frames.
PICTURE_KINDS = ("image", "video")


def _order(request: Request) -> str:
    sort_by, option = sort_params(request, store.SORTS)
    # id breaks ties: ids are time-ordered, so equal timestamps still sort by creation.
    return f"{sort_by} {option.upper()}, id {option.upper()}"


def _asset_ids(request: Request, body: dict[str, Any], *, where: str = "") -> list[str]:
    """`asset_ids` of a body: a non-empty list of existing image or video assets (checked before any write,
    so a bad id changes nothing)."""
    value = body.get("asset_ids")
    if value is None:
        raise missing(
            f"{where}asset_ids", "Give the ids of one or more image or video assets (POST /assets)."
        )
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise invalid(f"The `{where}asset_ids` parameter must be an array of asset ids (strings).")
    if not value:
        raise invalid(f"The `{where}asset_ids` parameter must name at least one asset.")
    if len(value) > MAX_ASSETS:
        raise invalid(f"The `{where}asset_ids` parameter may name at most {MAX_ASSETS} assets.")
    db = engine_of(request).db
    for asset_id in value:
        row = assets.get(db, asset_id)
        if row is None:
            raise invalid(
                f"Asset `{asset_id}` in `{where}asset_ids` does not exist; upload the reference image first "
                "(POST /assets) and use the `_id` it returns."
            )
        if row["status"] == "failed":
            raise invalid(
                f"Asset `{asset_id}` failed processing and cannot identify an entity; upload it again."
            )
        if row["kind"] is not None and row["kind"] not in PICTURE_KINDS:
            raise invalid(
                f"Asset `{asset_id}` is {row['kind']}: an entity's assets must be images or videos that "
                "show it."
            )
    return list(dict.fromkeys(value))


def _metadata(body: dict[str, Any], *, where: str = "") -> dict[str, Any] | None:
    if body.get("metadata") is None:
        return None
    meta = check_metadata(body["metadata"], f"{where}metadata")
    for key, value in meta.items():
        if isinstance(value, list):
            raise invalid(
                f"`{where}metadata.{key}` is an array; entity metadata values are strings, numbers or "
                "booleans (send an array as a string)."
            )
    return meta


def _entity_fields(request: Request, body: dict[str, Any], *, where: str = "") -> dict[str, Any]:
    name = body.get("name")
    if name is None:
        raise missing(f"{where}name", "Name the entity, e.g. the person's name.")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_LEN:
        raise invalid(
            f"The `{where}name` parameter must be a non-empty string of at most {NAME_LEN} characters."
        )
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > DESCRIPTION_LEN):
        raise invalid(
            f"The `{where}description` parameter must be a string of at most {DESCRIPTION_LEN} characters."
        )
    return {
        "name": name,
        "description": description,
        "metadata": _metadata(body, where=where) or {},
        "assets": _asset_ids(request, body, where=where),
    }


# ----- collections ------------------------------------------------------------------------------------------
async def create_collection(request: Request) -> Response:
    body = await json_body(request)
    name = body_str(body, "name", required=True, max_len=NAME_LEN)
    description = body_str(body, "description", max_len=DESCRIPTION_LEN)
    row = store.create_collection(engine_of(request).db, name, description)
    return ok(store.collection_json(row), 201)


async def list_collections(request: Request) -> Response:
    page, limit = page_params(request)
    rows, total = store.list_collections(
        engine_of(request).db,
        name=request.query_params.get("name"),
        order=_order(request),
        limit=limit,
        offset=(page - 1) * limit,
    )
    return ok({"data": [store.collection_json(r) for r in rows], "page_info": page_info(page, limit, total)})


async def get_collection(request: Request) -> Response:
    return ok(store.collection_json(store.collection_row(engine_of(request).db, request.path_params["cid"])))


async def update_collection(request: Request) -> Response:
    db = engine_of(request).db
    collection_id = request.path_params["cid"]
    store.collection_row(db, collection_id)
    body = await json_body(request)
    changes: dict[str, Any] = _renamed(body)
    if not changes:
        raise invalid("Nothing to update: send `name` and/or `description`.")
    return ok(store.collection_json(store.update_collection(db, collection_id, changes)))


def _renamed(body: dict[str, Any]) -> dict[str, Any]:
    """The `name` and `description` a PATCH body changes (the ones it sends)."""
    changes: dict[str, Any] = {}
    name = body_str(body, "name", max_len=NAME_LEN)
    if name is not None:
        if not name.strip():
            raise invalid("The `name` parameter must not be empty.")
        changes["name"] = name
    description = body_str(body, "description", max_len=DESCRIPTION_LEN)
    if description is not None:
        changes["description"] = description
    return changes


async def delete_collection(request: Request) -> Response:
    db = engine_of(request).db
    collection_id = request.path_params["cid"]
    store.collection_row(db, collection_id)
    store.delete_collection(db, collection_id)
    return no_content()


# ----- entities ---------------------------------------------------------------------------------------------
async def create_entity(request: Request) -> Response:
    db = engine_of(request).db
    collection_id = request.path_params["cid"]
    store.collection_row(db, collection_id)
    fields = _entity_fields(request, await json_body(request))
    with db.tx() as conn:
        entity_id = store.insert_entity(conn, collection_id, **fields)
    return ok(store.entity_json(db, store.entity_row(db, collection_id, entity_id)), 201)


async def create_entities_bulk(request: Request) -> Response:
    db = engine_of(request).db
    collection_id = request.path_params["cid"]
    store.collection_row(db, collection_id)
    body = await json_body(request)
    items = body.get("entities")
    if items is None:
        raise missing("entities", "Send an array of {name, asset_ids, description?, metadata?}.")
    if not isinstance(items, list) or not items:
        raise invalid("The `entities` parameter must be a non-empty array.")
    if len(items) > MAX_BULK:
        raise invalid(f"The `entities` parameter may hold at most {MAX_BULK} entities per request.")
    created: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict):
                raise invalid("each entity must be a JSON object")
            fields = _entity_fields(request, item)
        except ApiError as exc:
            # One bad entity fails alone, as the contract's `errors` array reports it.
            errors.append(
                {
                    "entity_index": i,
                    "entity_name": name if isinstance(name, str) else "",
                    "error_reason": exc.message,
                }
            )
            continue
        with db.tx() as conn:
            entity_id = store.insert_entity(conn, collection_id, **fields)
        created.append({"_id": entity_id, "name": fields["name"], "status": store.status(db, entity_id)})
    return ok(
        {"success_count": len(created), "failed_count": len(errors), "entities": created, "errors": errors},
        201,
    )


async def list_entities(request: Request) -> Response:
    db = engine_of(request).db
    collection_id = request.path_params["cid"]
    store.collection_row(db, collection_id)
    page, limit = page_params(request)
    wanted = request.query_params.get("status")
    if wanted is not None and wanted not in ("processing", "ready"):
        raise invalid(f"The `status` parameter must be processing or ready (got {wanted!r}).")
    rows = store.list_entities(
        db,
        collection_id,
        name=request.query_params.get("name"),
        statuses=[wanted] if wanted else [],
        order=_order(request),
    )
    body = paged(rows, page, limit)
    body["data"] = [store.entity_json(db, r) for r in body["data"]]
    return ok(body)


async def get_entity(request: Request) -> Response:
    db = engine_of(request).db
    row = store.entity_row(db, request.path_params["cid"], request.path_params["eid"])
    return ok(store.entity_json(db, row))


async def update_entity(request: Request) -> Response:
    db = engine_of(request).db
    collection_id, entity_id = request.path_params["cid"], request.path_params["eid"]
    store.entity_row(db, collection_id, entity_id)
    body = await json_body(request)
    if "asset_ids" in body:
        raise invalid(
            "PATCH does not change an entity's assets; use POST or DELETE "
            f"/entity-collections/{collection_id}/entities/{entity_id}/assets."
        )
    changes = _renamed(body)
    metadata = _metadata(body)
    if metadata is not None:
        changes["metadata"] = metadata
    if not changes:
        raise invalid("Nothing to update: send `name`, `description` and/or `metadata`.")
    store.update_entity(db, entity_id, changes)
    return ok(store.entity_json(db, store.entity_row(db, collection_id, entity_id)))


async def add_assets(request: Request) -> Response:
    db = engine_of(request).db
    collection_id, entity_id = request.path_params["cid"], request.path_params["eid"]
    store.entity_row(db, collection_id, entity_id)
    store.add_assets(db, entity_id, _asset_ids(request, await json_body(request)))
    return ok(store.entity_json(db, store.entity_row(db, collection_id, entity_id)))


async def remove_assets(request: Request) -> Response:
    db = engine_of(request).db
    collection_id, entity_id = request.path_params["cid"], request.path_params["eid"]
    store.entity_row(db, collection_id, entity_id)
    body = await json_body(request)
    value = body.get("asset_ids")
    if value is None:
        raise missing("asset_ids", "Name the assets to unlink from the entity.")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise invalid("The `asset_ids` parameter must be a non-empty array of asset ids.")
    linked = store.asset_ids(db, entity_id)
    strangers = [a for a in value if a not in linked]
    if strangers:
        raise invalid(
            f"Asset(s) {', '.join(f'`{a}`' for a in strangers[:5])} are not linked to entity `{entity_id}` "
            f"(its assets: {', '.join(linked) or 'none'}); nothing was removed."
        )
    if not set(linked) - set(value):
        raise invalid(
            f"An entity must keep at least one asset: removing {len(value)} would leave entity `{entity_id}` "
            "with none. Add another asset first, or delete the entity."
        )
    store.remove_assets(db, entity_id, value)
    return ok(store.entity_json(db, store.entity_row(db, collection_id, entity_id)))


async def delete_entity(request: Request) -> Response:
    db = engine_of(request).db
    store.entity_row(db, request.path_params["cid"], request.path_params["eid"])
    store.delete_entity(db, request.path_params["eid"])
    return no_content()


async def asset_entities(request: Request) -> Response:
    db = engine_of(request).db
    asset_id = request.path_params["asset_id"]
    get_asset_row(db, asset_id)
    page, limit = page_params(request)
    body = paged(store.entities_of_asset(db, asset_id), page, limit)
    body["data"] = [store.entity_json(db, r) for r in body["data"]]
    return ok(body)


_COL = "/entity-collections/{cid}"
_ENT = _COL + "/entities/{eid}"

routes: list[BaseRoute] = [
    Route("/entity-collections", create_collection, methods=["POST"]),
    Route("/entity-collections", list_collections, methods=["GET"]),
    Route(_COL, get_collection, methods=["GET"]),
    Route(_COL, update_collection, methods=["PATCH"]),
    Route(_COL, delete_collection, methods=["DELETE"]),
    Route(_COL + "/entities", create_entity, methods=["POST"]),
    Route(_COL + "/entities", list_entities, methods=["GET"]),
    Route(_COL + "/entities/bulk", create_entities_bulk, methods=["POST"]),
    Route(_ENT, get_entity, methods=["GET"]),
    Route(_ENT, update_entity, methods=["PATCH"]),
    Route(_ENT, delete_entity, methods=["DELETE"]),
    Route(_ENT + "/assets", add_assets, methods=["POST"]),
    Route(_ENT + "/assets", remove_assets, methods=["DELETE"]),
    Route("/assets/{asset_id}/entities", asset_entities, methods=["GET"]),
]
