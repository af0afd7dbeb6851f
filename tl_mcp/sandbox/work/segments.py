"""Time-based metadata (`analysis_mode: time_based_metadata`) offline: the checks of a task's segment
definitions, and segments built from the evidence the sandbox holds for a video.

A segment is a scene (the sandbox's scene cuts) in which the definition's description matches text that
was said, subtitled or shown; an overview description ("chapters", "topics"…) takes every scene. Each
field is filled from the texts of its segment by the extractive answerer (`answers.answer_json`), and a
`time_array` lists the timed texts inside the segment as its events. What a model would see in the
pictures (people, objects, actions) is not known offline: the task's warning says so.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from tl_mcp.sandbox.answers import LIMITS, Window, answer_json, evidence, in_window, is_overview, parts
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.errors import ApiError, invalid

FIELD_TYPES = ("string", "boolean", "number", "integer", "array", "timestamp", "time_array")
EVENT_TYPES = ("string", "boolean", "number", "integer", "array")
SCALARS = ("string", "number", "boolean", "integer")
TIME_FORMATS = ("seconds", "hh:mm:ss", "hh:mm:ss.fff")
RESERVED = frozenset({"start_time", "end_time", "metadata"})
#: Per-mode `max_tokens` (min, max) of async tasks (SDK 1.3.6).
TOKEN_RANGES = {"general": (512, 98_304), "time_based_metadata": (2_048, 98_304)}
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Events listed per time_array field and segment: the sandbox quotes texts, so more adds nothing new.
MAX_EVENTS = 20
#: The longest window one task (or batch item) analyzes.
MAX_WINDOW_S = 7200.0
WARNING = (
    "Offline sandbox: segments are the video's scenes in which the description matches what is said, "
    "subtitled or written on screen, and every field is quoted from those texts. " + LIMITS
)


def _bad(message: str) -> ApiError:
    return invalid(message, nested=True)


def check_custom_id(value: Any, where: str = "custom_id") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not CUSTOM_ID.match(value):
        raise _bad(f"`{where}` takes 1-64 letters, digits, hyphens or underscores (got {value!r}).")
    return value


def check_task(body: dict[str, Any], model: str, *, batch: bool = False) -> dict[str, Any]:
    """The task-only parameters of a `POST /analyze/tasks` body (or a batch item): analysis mode,
    segment definitions, segment durations, `max_tokens` (an int in the mode's range, or "unlimited")."""
    mode = body.get("analysis_mode", "general")
    if mode not in ("general", "time_based_metadata"):
        raise _bad("`analysis_mode` must be general or time_based_metadata.")
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in (None, "json_schema", "segment_definitions"):
        raise _bad("`response_format.type` must be json_schema or segment_definitions.")
    if (mode == "time_based_metadata") != (kind == "segment_definitions"):
        raise _bad(
            "`analysis_mode: time_based_metadata` goes with `response_format.type: segment_definitions`, "
            "and each needs the other."
        )
    definitions: list[dict[str, Any]] = []
    if mode == "time_based_metadata":
        assert isinstance(fmt, dict)
        if body.get("prompt") is not None or body.get("prompt_v2") is not None:
            raise _bad("`prompt` is not supported with `analysis_mode: time_based_metadata`.")
        definitions = _definitions(fmt.get("segment_definitions"), model)
        time_format = fmt.get("segment_time_format", "seconds")
        if time_format not in TIME_FORMATS:
            raise _bad(f"`response_format.segment_time_format` must be one of {', '.join(TIME_FORMATS)}.")
    else:
        time_format = "seconds"
    ranged = any(d.get("time_ranges") for d in definitions)
    durations: dict[str, float | None] = {}
    for name in ("min_segment_duration", "max_segment_duration"):
        value = body.get(name)
        if value is not None:
            if mode != "time_based_metadata":
                raise _bad(f"`{name}` requires `analysis_mode: time_based_metadata`.")
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 2:
                raise _bad(f"`{name}` must be a number of seconds, at least 2.")
            if ranged:
                raise _bad(f"`{name}` and `segment_definitions[].time_ranges` exclude each other.")
        durations[name] = None if value is None else float(value)
    low, high = durations["min_segment_duration"], durations["max_segment_duration"]
    if low is not None and high is not None and high < low:
        raise _bad("`max_segment_duration` must be at least `min_segment_duration`.")
    if ranged and (body.get("start_time") is not None or body.get("end_time") is not None):
        raise _bad("`segment_definitions[].time_ranges` and `start_time`/`end_time` exclude each other.")
    max_tokens = body.get("max_tokens")
    if max_tokens == "unlimited":
        if batch or mode != "time_based_metadata" or model != "pegasus1.6":
            raise _bad(
                '`max_tokens: "unlimited"` requires `analysis_mode: time_based_metadata` and '
                "`model_name: pegasus1.6`."
            )
        if ranged:
            raise _bad(
                '`max_tokens: "unlimited"` and `segment_definitions[].time_ranges` exclude each other.'
            )
    elif max_tokens is not None:
        low_t, high_t = TOKEN_RANGES[mode]
        if (
            not isinstance(max_tokens, int)
            or isinstance(max_tokens, bool)
            or not low_t <= max_tokens <= high_t
        ):
            raise _bad(
                f"`max_tokens` for {mode} analysis must be an integer from {low_t:,} to {high_t:,}"
                + ("" if batch else ' or "unlimited"')
                + f" (got {max_tokens!r})."
            )
    return {
        "analysis_mode": mode,
        "definitions": definitions,
        "segment_time_format": time_format,
        "min_segment_duration": low,
        "max_segment_duration": high,
        "custom_id": check_custom_id(body.get("custom_id")),
    }


def _definitions(value: Any, model: str) -> list[dict[str, Any]]:
    where = "response_format.segment_definitions"
    if not isinstance(value, list) or not value:
        raise _bad(f"`{where}` must be a non-empty list of {{id, description, fields?}}.")
    seen: set[str] = set()
    for n, d in enumerate(value):
        at = f"{where}[{n}]"
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not d["id"]:
            raise _bad(f"`{at}.id` is required (a non-empty string).")
        if d["id"] in seen:
            raise _bad(f"`{at}.id` {d['id']!r} is used twice; segment definition ids are unique.")
        seen.add(d["id"])
        if not isinstance(d.get("description"), str) or not d["description"].strip():
            raise _bad(f"`{at}.description` is required: describe what such a segment looks like.")
        for k, f in enumerate(d.get("fields") or []):
            _field(f, f"{at}.fields[{k}]", model)
        _ranges(d.get("time_ranges"), f"{at}.time_ranges")
    return value


def _field(f: Any, at: str, model: str) -> None:
    if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
        raise _bad(f"`{at}.name` is required.")
    if f["name"] in RESERVED:
        raise _bad(f"`{at}.name` {f['name']!r} is reserved (start_time, end_time and metadata are).")
    kind = f.get("type")
    allowed = FIELD_TYPES if model == "pegasus1.6" else FIELD_TYPES[:-1]
    if kind not in allowed:
        raise _bad(f"`{at}.type` must be one of {', '.join(allowed)} for {model} (got {kind!r}).")
    if not isinstance(f.get("description"), str) or not f["description"].strip():
        raise _bad(f"`{at}.description` is required.")
    if (kind == "timestamp") != ("format" in f):
        raise _bad(
            f"`{at}.format` is required for a timestamp field and must be omitted otherwise "
            f"(one of {', '.join(TIME_FORMATS)})."
        )
    if kind == "timestamp" and f["format"] not in TIME_FORMATS:
        raise _bad(f"`{at}.format` must be one of {', '.join(TIME_FORMATS)}.")
    enum = f.get("enum")
    if enum is not None and (
        kind == "timestamp"
        or not isinstance(enum, list)
        or len(enum) > 100
        or not all(isinstance(e, str) for e in enum)
    ):
        raise _bad(f"`{at}.enum` takes at most 100 strings, and not on a timestamp field.")
    items = f.get("items")
    if kind == "array":
        if not isinstance(items, dict) or items.get("type") not in SCALARS or "fields" in items:
            raise _bad(f"`{at}.items` must be {{type: {'|'.join(SCALARS)}}} for an array field.")
    elif kind == "time_array":
        if not isinstance(items, dict) or items.get("type") != "object" or not items.get("fields"):
            raise _bad(f"`{at}.items` must be {{type: object, fields: [...]}} for a time_array field.")
        names: set[str] = set()
        for k, e in enumerate(items["fields"]):
            _event_field(e, f"{at}.items.fields[{k}]", names)
    elif items is not None:
        raise _bad(f"`{at}.items` is only for array and time_array fields.")


def _event_field(e: Any, at: str, names: set[str]) -> None:
    if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
        raise _bad(f"`{at}.name` is required.")
    if e["name"] in RESERVED or e["name"] in names:
        raise _bad(f"`{at}.name` {e['name']!r} is reserved or used twice.")
    names.add(e["name"])
    kind = e.get("type")
    if kind not in EVENT_TYPES:
        raise _bad(
            f"`{at}.type` must be one of {', '.join(EVENT_TYPES)} (no timestamp or time_array in events)."
        )
    if not isinstance(e.get("description"), str) or not e["description"].strip():
        raise _bad(f"`{at}.description` is required.")
    if "format" in e:
        raise _bad(f"`{at}.format` is not accepted on event fields.")
    if e.get("enum") is not None and kind != "string":
        raise _bad(f"`{at}.enum` is only for string event fields.")
    if (kind == "array") != (e.get("items") is not None):
        raise _bad(f"`{at}.items` is required for an array event field and allowed only there.")
    if kind == "array" and (not isinstance(e["items"], dict) or e["items"].get("type") not in SCALARS):
        raise _bad(f"`{at}.items.type` must be one of {', '.join(SCALARS)}.")


def _ranges(value: Any, at: str) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise _bad(f"`{at}` must be a list of {{start_time, end_time}}.")
    spans: list[tuple[float, float]] = []
    for r in value:
        s, e = (r.get("start_time"), r.get("end_time")) if isinstance(r, dict) else (None, None)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (s, e)):
            raise _bad(f"`{at}` entries need numeric start_time and end_time.")
        assert isinstance(s, int | float) and isinstance(e, int | float)
        if s < 0 or e - s < 2:
            raise _bad(f"`{at}`: each range starts at 0 or later and spans at least 2 s (got {s:g}-{e:g}).")
        spans.append((float(s), float(e)))
    spans.sort()
    for (_, e1), (s2, _) in itertools.pairwise(spans):
        if s2 < e1:
            raise _bad(f"`{at}` ranges overlap; touching boundaries are fine.")


def fmt_time(seconds: float, time_format: str) -> float | str:
    if time_format == "seconds":
        return round(seconds, 3)
    whole = max(0.0, seconds)
    if time_format == "hh:mm:ss":
        # Half a second rounds up, as "nearest second" reads (round() would go to the even one).
        s = int(whole + 0.5)
        return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    ms = round(whole * 1000)
    return f"{ms // 3_600_000:02d}:{ms % 3_600_000 // 60_000:02d}:{ms % 60_000 // 1000:02d}.{ms % 1000:03d}"


def segment(
    engine: Engine, index: AssetIndex, task: dict[str, Any], window: Window, duration: float | None
) -> str:
    """The task's `result.data`: a JSON object keyed by definition id, each a list of
    `{start_time, end_time, metadata}` in time order."""
    out: dict[str, list[dict[str, Any]]] = {}
    time_format = task["segment_time_format"]
    for d in task["definitions"]:
        windows: list[Window] = [
            (float(r["start_time"]), float(r["end_time"])) for r in d.get("time_ranges") or []
        ]
        spans: list[tuple[float, float]] = []
        for w in windows or [window]:
            spans += _spans(engine, index, d["description"], w, duration, task)
        out[d["id"]] = [
            {
                "start_time": fmt_time(s, time_format),
                "end_time": fmt_time(e, time_format),
                "metadata": {
                    f["name"]: _value(engine, index, f, (s, e), duration, time_format)
                    for f in d.get("fields") or []
                },
            }
            for s, e in spans
        ]
    return json.dumps(out)


def _spans(
    engine: Engine,
    index: AssetIndex,
    description: str,
    window: Window,
    duration: float | None,
    task: dict[str, Any],
) -> list[tuple[float, float]]:
    scenes = [(p.start, p.end) for p in parts(index, window, duration)]
    if not is_overview(description):
        hits = evidence(engine, index, description, window, limit=len(index.texts) or 1)
        scenes = [(s, e) for s, e in scenes if any(t.end > s and t.start < e for t in hits)]
    return _sized(scenes, task["min_segment_duration"], task["max_segment_duration"])


def _sized(
    spans: list[tuple[float, float]], low: float | None, high: float | None
) -> list[tuple[float, float]]:
    """Neighbouring spans shorter than `low` are merged; spans longer than `high` are cut evenly."""
    merged: list[tuple[float, float]] = []
    for s, e in spans:
        if merged and low is not None and merged[-1][1] - merged[-1][0] < low and s <= merged[-1][1] + 1e-6:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    if high is None:
        return merged
    cut: list[tuple[float, float]] = []
    for s, e in merged:
        pieces = max(1, -int(-(e - s) // high))
        step = (e - s) / pieces
        cut += [(s + k * step, s + (k + 1) * step) for k in range(pieces)]
    return cut


def _schema(f: dict[str, Any]) -> dict[str, Any]:
    # The description is what the answerer matches a specific field's text against.
    schema: dict[str, Any] = {"type": f["type"], "description": f["description"]}
    if f.get("enum"):
        schema["enum"] = f["enum"]
    if f["type"] == "array":
        schema["items"] = {"type": f["items"]["type"]}
    return schema


def _value(
    engine: Engine,
    index: AssetIndex,
    f: dict[str, Any],
    span: tuple[float, float],
    duration: float | None,
    time_format: str,
) -> Any:
    if f["type"] == "timestamp":
        best = evidence(engine, index, f["description"], span, limit=1)
        return fmt_time(best[0].start if best else span[0], f["format"])
    if f["type"] == "time_array":
        events = in_window(index.texts, span)[:MAX_EVENTS]
        return [
            {
                "start_time": fmt_time(max(t.start, span[0]), time_format),
                "end_time": fmt_time(min(t.end, span[1]), time_format),
                **{
                    e["name"]: _filled(engine, index, e, (t.start, t.end), duration)
                    for e in f["items"]["fields"]
                },
            }
            for t in events
        ]
    return _filled(engine, index, f, span, duration)


def _filled(
    engine: Engine, index: AssetIndex, f: dict[str, Any], span: tuple[float, float], duration: float | None
) -> Any:
    # Required: a field nothing fits gets a neutral value of its type, as every segment has every field.
    wrapped = {"type": "object", "properties": {f["name"]: _schema(f)}, "required": [f["name"]]}
    return json.loads(answer_json(engine, index, f["description"], wrapped, duration, span).text)[f["name"]]


def check_window(task_window: Window, duration: float | None) -> str | None:
    """Why a window is too long for one task (over 2 h), or None."""
    start, end = task_window
    stop = end if end is not None else duration
    if stop is not None and stop - start > MAX_WINDOW_S:
        return (
            f"The analysis window is {(stop - start) / 3600:.1f} h; one task analyzes at most 2 h. "
            "Set start_time/end_time to a window of 2 h or less."
        )
    return None
