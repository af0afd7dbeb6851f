"""The ``analyze`` job and the analysis both the synchronous and the task routes run: resolve the video
(creating an asset for a URL or base64 source), wait until it is analysed, and build the answer."""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import time
from collections.abc import Generator
from typing import Any

from tl_mcp.sandbox.answerers import Question, Reply, answerer_for
from tl_mcp.sandbox.answerers.extractive import EXTRACTIVE
from tl_mcp.sandbox.answerers.text import chunk_text
from tl_mcp.sandbox.answers import LIMITS, Filled, answer_json, answer_text, cues, truncate
from tl_mcp.sandbox.engine import Engine
from tl_mcp.sandbox.errors import ApiError, found, invalid, missing, not_found
from tl_mcp.sandbox.media import Probe
from tl_mcp.sandbox.store import analyze_tasks, assets, indexed_assets
from tl_mcp.sandbox.store.assets import get_asset_row
from tl_mcp.sandbox.store.db import loads
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.structured_fill import SchemaError, check_schema
from tl_mcp.sandbox.work import segments
from tl_mcp.sandbox.work.asset import insert_asset


def parse_params(body: dict[str, Any], *, nested: bool) -> dict[str, Any]:
    """Check an analyze request; return the normalised parameters."""
    model = body.get("model_name", "pegasus1.5")
    if model not in MODELS:
        raise invalid(
            f"The `model_name` parameter must be one of {', '.join(MODELS)} (got {model!r}).", nested=nested
        )
    segmenting = body.get("analysis_mode") == "time_based_metadata"
    prompt = body.get("prompt")
    if prompt is None and isinstance(body.get("prompt_v2"), dict):
        prompt = body["prompt_v2"].get("input_text")
    if not segmenting and (prompt is None or prompt == ""):
        raise missing("prompt", nested=nested)
    if prompt is not None and not isinstance(prompt, str):
        raise invalid("The `prompt` parameter must be a string.", nested=nested)
    images = _images(body.get("image"), model, prompt, nested=nested)
    video = body.get("video")
    if images and video is not None:
        raise invalid("`video` and `image` exclude each other: analyze a video or images.", nested=nested)
    if video is None and body.get("video_id") is None and not images:
        raise missing("video", 'Example: {"video": {"type": "asset_id", "asset_id": "..."}}.', nested=nested)
    if video is not None:
        if not isinstance(video, dict):
            raise invalid(
                "The `video` parameter must be an object with one of url, asset_id, base64_string.",
                nested=nested,
            )
        given = [k for k in ("url", "asset_id", "base64_string") if video.get(k)]
        if len(given) != 1:
            raise invalid("`video` needs exactly one of url, asset_id or base64_string.", nested=nested)
    temperature = body.get("temperature", 0.2)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 1:
        raise invalid("The `temperature` parameter must be a number between 0 and 1.", nested=nested)
    max_tokens = body.get("max_tokens")
    # An async task's `"unlimited"` (and its ranges) is `segments.check_task`'s to judge.
    if (
        max_tokens is not None
        and not (nested and max_tokens == "unlimited")
        and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1)
    ):
        raise invalid("The `max_tokens` parameter must be a positive integer.", nested=nested)
    window = _window(body, nested=nested)
    fmt = body.get("response_format")
    schema = None
    # Segment definitions are an async task's format, checked by `segments.check_task`.
    if fmt is not None and not (segmenting and isinstance(fmt, dict)):
        if (
            not isinstance(fmt, dict)
            or fmt.get("type") != "json_schema"
            or not isinstance(fmt.get("json_schema"), dict)
        ):
            raise invalid(
                '`response_format` must be {"type": "json_schema", "json_schema": {...}}.', nested=nested
            )
        schema = fmt["json_schema"]
        banned = {"minLength", "maxLength", "additionalProperties", "uniqueItems", "maxItems"} & set(
            _keys(schema)
        )
        if banned:
            raise ApiError(
                422,
                "parameter_invalid",
                f"`response_format.json_schema` uses unsupported keywords {sorted(banned)}.",
                nested=nested,
            )
        try:
            check_schema(schema, "`response_format.json_schema`")
        except SchemaError as exc:
            raise invalid(str(exc), nested=nested) from exc
    return {
        "model_name": model,
        "prompt": prompt or "",
        "image": images,
        "video": video,
        "video_id": body.get("video_id"),
        "temperature": temperature,
        "max_tokens": max_tokens,
        "schema": schema,
        "window": window,
    }


def _images(value: Any, model: str, prompt: str | None, *, nested: bool) -> list[dict[str, Any]]:
    """The `image` prompt (SDK 1.3.6): 1-20 named images, pegasus1.6 only, cited all or not at all."""
    if value is None:
        return []
    if model != IMAGE_MODEL:
        raise invalid(f"`image` requires `model_name: {IMAGE_MODEL}` (got {model!r}).", nested=nested)
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_IMAGES:
        raise invalid(f"`image` must be a list of 1 to {MAX_IMAGES} images.", nested=nested)
    names: list[str] = []
    for n, image in enumerate(value):
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            raise invalid(f"`image[{n}].name` is required.", nested=nested)
        if not re.fullmatch(r"[A-Za-z0-9_]+", image["name"]) or image["name"] in names:
            raise invalid(
                f"`image[{n}].name` {image['name']!r} must be unique and use only letters, digits, "
                "underscores.",
                nested=nested,
            )
        names.append(image["name"])
        given = [k for k in ("url", "asset_id", "base64_string") if image.get(k)]
        if len(given) != 1:
            raise invalid(f"`image[{n}]` needs exactly one of url, asset_id or base64_string.", nested=nested)
        if image.get("url") and not str(image["url"]).startswith("https://"):
            raise invalid(f"`image[{n}].url` must be an https URL.", nested=nested)
    cited = set(re.findall(r"<@([A-Za-z0-9_]+)>", prompt or ""))
    if cited and cited != set(names):
        raise invalid(
            "The prompt must reference every image as <@name> or none of them; "
            f"it cites {sorted(cited)} of {names}.",
            nested=nested,
        )
    return list(value)


#: Shortest analysis window (SDK 1.3.6; it was 4 s before).
MIN_WINDOW_S = 1.0


def _window(body: dict[str, Any], *, nested: bool) -> tuple[float, float | None]:
    """`start_time`/`end_time` as (start, end or None = the end of the video)."""
    bounds: dict[str, float | None] = {}
    for name in ("start_time", "end_time"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf")
        ):
            raise invalid(f"The `{name}` parameter must be a number of seconds, 0 or more.", nested=nested)
        bounds[name] = None if value is None else float(value)
    start, end = bounds["start_time"] or 0.0, bounds["end_time"]
    if end is not None and end - start < MIN_WINDOW_S:
        raise invalid(
            f"`end_time` ({end:g}) must be at least {MIN_WINDOW_S:g} s after `start_time` ({start:g}).",
            nested=nested,
        )
    return start, end


def _keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*node.keys(), *(k for v in node.values() for k in _keys(v))]
    if isinstance(node, list):
        return [k for v in node for k in _keys(v)]
    return []


def _resolve_asset(engine: Engine, params: dict[str, Any], *, nested: bool) -> str:
    """The asset id holding the video, creating one for a URL or base64 source (reused on repeat)."""
    video = params["video"]
    if video is None:
        video_id = str(params["video_id"])
        return found(indexed_assets.asset_id_of(engine.db, video_id), video_id, "videos", nested=nested)
    if video.get("asset_id"):
        asset_id = str(video["asset_id"])
        if not assets.exists(engine.db, asset_id):
            raise not_found(asset_id, "assets", nested=nested)
        return asset_id
    if video.get("url"):
        url = str(video["url"])
        if not url.startswith(("http://", "https://")):
            raise invalid("`video.url` must be an http(s) URL.", nested=nested)
        source = url
    else:
        try:
            data = base64.b64decode(str(video["base64_string"]), validate=True)
        except ValueError as exc:
            raise invalid("`video.base64_string` is not valid base64.", nested=nested) from exc
        if len(data) > 30 * 1024 * 1024:
            raise invalid("`video.base64_string` may carry at most 30 MB.", nested=nested)
        source = "base64:" + hashlib.sha256(data).hexdigest()
    existing = assets.by_source(engine.db, source)
    if existing is not None:
        return existing
    asset_id = new_id()
    if video.get("url"):
        insert_asset(
            engine,
            asset_id,
            method="url",
            filename=url.rsplit("/", 1)[-1][:100] or "video",
            path=None,
            info=None,
            source_url=source,
        )
    else:
        path = engine.asset_dir(asset_id) / "source"
        path.write_bytes(data)
        try:
            info = engine.probe(path)
        except Exception as exc:
            engine.remove_asset_files(asset_id)
            raise invalid(f"`video.base64_string` is not a readable video ({exc}).", nested=nested) from exc
        insert_asset(
            engine, asset_id, method="direct", filename="video", path=path, info=info, source_url=source
        )
    return asset_id


def _ready_asset(engine: Engine, asset_id: str, *, nested: bool, wait: float) -> sqlite3.Row:
    deadline = time.monotonic() + wait
    while True:
        row = get_asset_row(engine.db, asset_id, nested=nested)
        if row["status"] == "failed":
            raise invalid(f"The video could not be processed: {row['error']}", nested=nested)
        if row["status"] == "ready":
            return row
        if time.monotonic() > deadline:
            raise invalid(
                f"Asset `{asset_id}` is still processing; try again when it is ready.", nested=nested
            )
        time.sleep(0.1)


class ItemFailed(Exception):
    """A task that cannot run for a reason of its own, with the task-condition code it fails with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Generation:
    """One analysis as it is produced: iterate its `deltas()` (blocking; a streaming caller runs each step
    in a worker thread) for the text the caller may see, then `result()` is the analysis, the same one the
    non-streamed route returns, so the deltas join to exactly its `data`.

    `max_tokens` cuts the text as it streams: nothing past the cut is sent, and the answerer (a model) is
    stopped there instead of writing what nobody reads.
    """

    def __init__(
        self,
        reply: Reply,
        params: dict[str, Any],
        *,
        limit: int | None,
        paced: bool,
        structured: bool = False,
        filled: Filled | None = None,
        warning: str | None = None,
    ) -> None:
        self.id = new_id()
        #: The answer is the sandbox's own text (extractive): streamed at TL_MCP_SANDBOX_STREAM_DELAY_S, as a
        #: model's would be; a model's tokens go out as it produces them.
        self.paced = paced
        self._reply = reply
        self._params = params
        self._limit = limit
        # JSON (a schema's answer, time-based metadata) is never cut, and counted in whitespace words.
        self._structured = structured
        self._filled = filled
        self._warning = warning
        self._parts: list[str] = []
        self._spaces = 0
        self._finish = "stop"

    def deltas(self) -> Generator[str, None, None]:
        """The text as released; closing it stops the answerer."""
        deltas = iter(self._reply)
        try:
            for delta in deltas:
                if self._limit is not None:
                    # `truncate` cuts at the max_tokens-th space of the whole text: the delta holding that
                    # space is cut at its share of the limit, so streamed and joined text cut alike.
                    delta, self._finish, _ = truncate(delta, self._limit - self._spaces)
                    self._spaces += delta.count(" ")
                if delta:
                    self._parts.append(delta)
                    yield delta
                if self._finish == "length":
                    return
        finally:
            close = getattr(deltas, "close", None)
            if close is not None:
                close()

    def joined(self) -> dict[str, Any]:
        """Blocking: produce the whole answer and return the result (non-streamed requests, tasks)."""
        for _ in self.deltas():
            pass
        return self.result()

    def result(self) -> dict[str, Any]:
        """The analysis once the deltas are exhausted (or the stream stopped at the cut)."""
        text = "".join(self._parts)
        made = self._reply.made
        # Tokens as `truncate` counts them (space-separated words), or whitespace words for JSON.
        out_tokens = len(text.split()) if self._structured else len(text.split(" "))
        # A model's constrained output has no list of what it could not fill; the extractive one has.
        unfilled = (
            self._filled.unfilled if self._filled is not None and made.answerer == "extractive" else None
        )
        result: dict[str, Any] = {
            "id": self.id,
            "data": text,
            "finish_reason": self._finish,
            "usage": {"output_tokens": out_tokens, "input_tokens": len(self._params["prompt"].split())},
            # Sandbox-only: which answerer (and model) wrote this, and why if it fell back.
            "generated_by": made.with_placeholders(unfilled or []).as_json(),
        }
        if unfilled is not None:
            # Sandbox-only: the schema fields no evidence in the video fitted (left out, null or empty).
            result["unfilled"] = unfilled
        if self._finish == "length":
            result["error"] = {"message": "The answer was cut at max_tokens."}
        if self._warning is not None:
            result["error"] = {"message": self._warning}
        return result


def run_analysis(
    engine: Engine,
    params: dict[str, Any],
    *,
    nested: bool,
    wait: float,
    task: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Blocking: the whole analysis, for a non-streamed request or an async task."""
    return start_analysis(engine, params, nested=nested, wait=wait, task=task).joined()


def start_analysis(
    engine: Engine,
    params: dict[str, Any],
    *,
    nested: bool,
    wait: float,
    task: dict[str, Any] | None = None,
) -> Generation:
    """Blocking: resolve the video (or images), wait for its analysis and start the answer. Everything
    that refuses the request raises here, before a stream would open; iterating the result only answers.

    `task` holds an async task's own parameters (`segments.check_task`): time-based metadata, and the
    per-task limit on the window (a task over it raises `ItemFailed`).
    """
    if params["image"]:
        text = _image_answer(engine, params, nested=nested, wait=wait)
        reply = Reply(iter(chunk_text(text)), EXTRACTIVE)
        return Generation(reply, params, limit=params["max_tokens"] if task is None else None, paced=True)
    asset_id = _resolve_asset(engine, params, nested=nested)
    row = _ready_asset(engine, asset_id, nested=nested, wait=wait)
    info = Probe.from_dict(loads(row["probe"]))
    if info.kind == "image":
        raise invalid("`video` points at an image; analyze takes video or audio.", nested=nested)
    index = engine.asset_index(asset_id)
    if index is None:
        raise invalid(f"Asset `{asset_id}` has not been analysed.", nested=nested)
    window = params["window"]
    if info.duration is not None and window[0] >= info.duration:
        raise invalid(
            f"`start_time` ({window[0]:g}) is not before the end of the video ({info.duration:g} s).",
            nested=nested,
        )
    if task is not None:
        too_long = segments.check_window(window, info.duration)
        if too_long:
            raise ItemFailed("video_duration_too_long", too_long)
        if task["analysis_mode"] == "time_based_metadata":
            data = segments.segment(engine, index, task, window, info.duration)
            # What only a model would see is missing: the cloud's "results may be incomplete" warning.
            reply = Reply(iter([data]), EXTRACTIVE)
            return Generation(
                reply, params, limit=None, paced=True, structured=True, warning=segments.WARNING
            )
    prompt, schema = params["prompt"], params["schema"]
    filled: Filled | None = None
    if schema is not None:
        filled = answer_json(engine, index, prompt, schema, info.duration, window)
        extractive = filled.text
    else:
        extractive = answer_text(engine, index, row["filename"], info.duration, prompt, window)
    answerer = answerer_for(engine.config)
    reply = answerer.answer(
        Question(
            question=prompt,
            cues=cues(engine, index, prompt, info.duration, window),
            extractive=lambda: extractive,
            schema=schema,
            max_tokens=min(params["max_tokens"] or 512, 1024),
        )
    )
    paced = answerer.made.answerer == "extractive"
    if schema is not None:
        # A structured answer is validated whole before any of it is released (a model's JSON is checked
        # against the schema and the evidence first), so it may arrive in one piece, after the model ends.
        return Generation(reply, params, limit=None, paced=paced, structured=True, filled=filled)
    return Generation(reply, params, limit=params["max_tokens"], paced=paced)


def _image_answer(engine: Engine, params: dict[str, Any], *, nested: bool, wait: float) -> str:
    """What the sandbox knows of each image: the on-screen text of an uploaded image asset, else nothing."""
    images = params["image"]
    lines = [
        f"Extractive answer from the offline sandbox for {len(images)} image(s), built only from text "
        "found in them. The sandbox cannot see pictures: it reads the on-screen text of uploaded image "
        "assets and nothing of images given by URL or base64.",
        "",
    ]
    for image in images:
        name = image["name"]
        if not image.get("asset_id"):
            lines.append(f"- <@{name}>: not read offline (given by URL or base64).")
            continue
        asset_id = str(image["asset_id"])
        if not assets.exists(engine.db, asset_id):
            raise not_found(asset_id, "assets", nested=nested)
        row = _ready_asset(engine, asset_id, nested=nested, wait=wait)
        if Probe.from_dict(loads(row["probe"])).kind != "image":
            raise invalid(f"`image` asset `{asset_id}` ({name}) is not an image.", nested=nested)
        index = engine.asset_index(asset_id)
        texts = [t.text for t in index.texts] if index is not None else []
        shown = "; ".join(f'"{t}"' for t in texts) if texts else "no text found"
        lines.append(f"- <@{name}> (asset {asset_id}): on-screen text: {shown}.")
    lines += ["", LIMITS]
    return "\n".join(lines)


def run(engine: Engine, task_id: str, payload: dict[str, Any]) -> None:
    stored = analyze_tasks.get(engine.db, task_id)
    if stored is None or stored.status not in analyze_tasks.RUNNING:
        return
    analyze_tasks.set_processing(engine.db, task_id)
    request = stored.request
    try:
        params = parse_params(request, nested=True)
        task = segments.check_task(request, params["model_name"], batch="batch_id" in request)
        if not params["image"]:
            asset_id = payload.get("asset_id") or _resolve_asset(engine, params, nested=True)
            # The task keeps to this asset: a failed one is never reused for its source, so resolving the
            # source again would make a new asset, and wait on it, for ever.
            params = {**params, "video": {"asset_id": asset_id}}
            if get_asset_row(engine.db, asset_id, nested=True)["status"] not in ("ready", "failed"):
                # Its asset job is queued behind this one on the same worker (a URL or base64 video seen
                # for the first time): waiting here would wait for ever, so this task goes after it.
                engine.jobs.enqueue("analyze", task_id, {"asset_id": asset_id})
                return
        result = run_analysis(engine, params, nested=True, wait=3600.0, task=task)
    except ItemFailed as exc:
        analyze_tasks.set_failed(engine.db, task_id, {"message": exc.message, "code": exc.code})
        return
    except ApiError as exc:
        if "batch_id" in request:
            # One item that cannot be read fails alone; the rest of its batch goes on.
            analyze_tasks.set_failed(
                engine.db, task_id, {"message": exc.message, "code": "asset_unavailable"}
            )
            return
        raise RuntimeError(exc.message) from exc
    analyze_tasks.set_ready(engine.db, task_id, result)


def failed(engine: Engine, ref: str, message: str) -> None:
    analyze_tasks.set_failed(engine.db, ref, {"message": message})


#: SDK 1.3.6: pegasus1.2 is gone from analysis; pegasus1.6 alone reads images and `time_array` fields.
MODELS = ("pegasus1.5", "pegasus1.6")
IMAGE_MODEL = "pegasus1.6"
MAX_IMAGES = 20
