"""The `/responses` request: validation of the three documented body shapes into one `TurnRequest`."""

from __future__ import annotations

from dataclasses import dataclass, field

from tl_mcp.sandbox.errors import invalid, missing
from tl_mcp.sandbox.jockey.compose import MODEL_NAME, selection_indexes
from tl_mcp.sandbox.jockey.structured import check_fillable
from tl_mcp.sandbox.knowledge.models import JsonObj
from tl_mcp.sandbox.structured_fill import SchemaError, check_schema

MAX_INSTRUCTIONS = 2000
MAX_CONTENT = 10_000
MAX_METADATA_PAIRS = 16
_SELECTION_PREFIX = {"item": "ksi_", "collection": "ksic_"}


@dataclass(slots=True)
class TurnRequest:
    knowledge_store_id: str
    question: str
    stream: bool
    session_id: str | None = None
    instructions: str | None = None
    intermediate: bool = False
    schema: JsonObj | None = None
    schema_name: str | None = None
    selections: list[JsonObj] = field(default_factory=list)


def parse_request(body: JsonObj) -> TurnRequest:
    """Validate a `/responses` body; accepts shapes A (model + metadata), B (selections) and C (tools)."""
    model = body.get("model")
    if model is not None and model != MODEL_NAME:
        raise invalid(f"`model` must be `{MODEL_NAME}` (or left out); got `{str(model)[:40]}`.")

    store_id = body.get("knowledge_store_id")
    if store_id is not None and (not isinstance(store_id, str) or not store_id):
        raise invalid("`knowledge_store_id` must be a non-empty string (`ks_…`).")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("`tools` must be an array.")
        stores = [t for t in tools if isinstance(t, dict) and t.get("type") == "knowledge_store"]
        others = [t for t in tools if not (isinstance(t, dict) and t.get("type") == "knowledge_store")]
        if others:
            raise invalid(
                '`tools` accepts only `{"type": "knowledge_store", "knowledge_store_id": …}` entries.'
            )
        if len(stores) > 1:
            raise invalid(
                "`tools` must hold exactly one `knowledge_store` entry: a response reasons over one store."
            )
        if stores:
            tool_store = stores[0].get("knowledge_store_id")
            if not isinstance(tool_store, str) or not tool_store:
                raise invalid("`tools[0].knowledge_store_id` must be a non-empty string.")
            if store_id is not None and store_id != tool_store:
                raise invalid("`knowledge_store_id` and `tools[0].knowledge_store_id` name different stores.")
            store_id = tool_store
    if store_id is None:
        raise missing("knowledge_store_id", "Pass the `ks_…` id of the knowledge store to reason over.")

    raw_input = body.get("input")
    if raw_input is None:
        raise missing("input", 'Send `[{"type": "message", "role": "user", "content": "…"}]`.')
    if not isinstance(raw_input, list) or not raw_input:
        raise invalid(
            '`input` must be a non-empty array of `{"type": "message", "role": "user", "content": "…"}`.'
        )
    texts: list[str] = []
    for i, item in enumerate(raw_input):
        if not isinstance(item, dict):
            raise invalid(f"`input[{i}]` must be an object.")
        for name in ("type", "role", "content"):
            if name not in item:
                raise missing(f"input[{i}].{name}", "Each message needs `type`, `role` and `content`.")
        if item["type"] != "message":
            raise invalid(f"`input[{i}].type` must be `message`.")
        if item["role"] != "user":
            raise invalid(f"`input[{i}].role` must be `user`; use `instructions` for system guidance.")
        content = item["content"]
        if not isinstance(content, str):
            raise invalid(
                f"`input[{i}].content` must be a plain string (content-part arrays are not supported)."
            )
        if not 1 <= len(content) <= MAX_CONTENT:
            raise invalid(
                f"`input[{i}].content` must be 1 to {MAX_CONTENT} characters long; got {len(content)}."
            )
        texts.append(content)

    session_id = body.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise invalid("`session_id` must be the `sess_…` string of an earlier response.")
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid("`instructions` must be a string.")
        if len(instructions) > MAX_INSTRUCTIONS:
            raise invalid(
                f"`instructions` is {len(instructions)} characters long; the limit is {MAX_INSTRUCTIONS}. "
                "Shorten it."
            )
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or any(v != "intermediate_outputs" for v in include)
    ):
        raise invalid('`include` must be an array whose only allowed value is `"intermediate_outputs"`.')
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("`stream` must be a boolean.")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise invalid("`metadata` must be an object of string values.")
        if len(metadata) > MAX_METADATA_PAIRS:
            raise invalid(f"`metadata` allows at most {MAX_METADATA_PAIRS} pairs.")

    schema: JsonObj | None = None
    schema_name: str | None = None
    text = body.get("text")
    if text is not None:
        fmt = text.get("format") if isinstance(text, dict) else None
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_schema"):
            raise invalid(
                '`text.format` must be `{"type": "text"}` or `{"type": "json_schema", "name", "schema"}`.'
            )
        if fmt["type"] == "json_schema":
            if not isinstance(fmt.get("name"), str) or not fmt["name"]:
                raise missing("text.format.name")
            if "schema" not in fmt:
                raise missing("text.format.schema")
            try:
                schema = check_schema(fmt["schema"], "`text.format.schema`")
                check_fillable(schema)
            except SchemaError as exc:
                raise invalid(str(exc)) from exc
            schema_name = fmt["name"]

    selections = body.get("selections") or []
    if not isinstance(selections, list):
        raise invalid("`selections` must be an array of `{kind, id}` objects.")
    for i, sel in enumerate(selections):
        if (
            not isinstance(sel, dict)
            or sel.get("kind") not in _SELECTION_PREFIX
            or not isinstance(sel.get("id"), str)
        ):
            raise invalid(f'`selections[{i}]` must be `{{"kind": "item"|"collection", "id": "…"}}`.')
        if not sel["id"].startswith(_SELECTION_PREFIX[sel["kind"]]):
            raise invalid(
                f"`selections[{i}].id` must start with `{_SELECTION_PREFIX[sel['kind']]}` "
                f"for kind `{sel['kind']}`."
            )
    question = "\n".join(texts)
    for n in selection_indexes(question):
        if n >= len(selections):
            raise invalid(f"`{{{{sel:{n}}}}}` refers to selection {n}, but only {len(selections)} were sent.")

    return TurnRequest(
        knowledge_store_id=store_id,
        question=question,
        stream=stream,
        session_id=session_id,
        instructions=instructions,
        intermediate=include is not None and "intermediate_outputs" in include,
        schema=schema,
        schema_name=schema_name,
        selections=[{"kind": s["kind"], "id": s["id"]} for s in selections],
    )
