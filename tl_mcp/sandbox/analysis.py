"""Extractive "analysis": answers built only from evidence the sandbox found in a video (subtitles, speech,
on-screen text) with timestamps. There is no generative video model offline, and the answer says so."""

from __future__ import annotations

import json
from typing import Any

from tl_mcp.sandbox.analyzers.base import TimedText
from tl_mcp.sandbox.engine import AssetIndex, Engine
from tl_mcp.sandbox.index_search import rank_text

LIMITS = (
    "Not available offline: descriptions of people, objects, actions, scenes, sounds or anything not written "
    "or spoken in the video. Connect to TwelveLabs for generative analysis."
)
LABEL = {"subtitle": "subtitle", "speech": "speech", "ocr": "on-screen text"}


def clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def evidence(engine: Engine, index: AssetIndex, prompt: str, limit: int = 5) -> list[TimedText]:
    """The timed texts most relevant to ``prompt``; all texts in time order when nothing matches."""
    moments = rank_text(engine, [index], prompt, ("subtitle", "speech", "ocr"), limit=limit)
    picked: list[TimedText] = []
    for m in moments:
        for t in index.texts:
            if t.text == m.text and t not in picked:
                picked.append(t)
                break
    return picked


def answer_text(engine: Engine, index: AssetIndex, filename: str, duration: float | None, prompt: str) -> str:
    relevant = evidence(engine, index, prompt)
    transcript = [t for t in index.texts if t.source in ("subtitle", "speech")]
    screen = [t for t in index.texts if t.source == "ocr"]
    lines = [
        f'Extractive answer from the offline sandbox for "{filename}"'
        + (f" ({duration:.1f} s)" if duration else "")
        + ", built only from text found in the video."
    ]
    if relevant:
        lines.append("")
        lines.append(f"Most relevant moments for the prompt {prompt!r}:")
        lines.extend(f"- [{clock(t.start)}-{clock(t.end)}] ({LABEL[t.source]}) {t.text}" for t in relevant)
    elif not index.texts:
        lines.append("")
        lines.append(
            "No subtitles, speech or on-screen text were found in this video, so there is nothing to quote."
        )
    if transcript:
        lines.append("")
        lines.append("Transcript:")
        lines.extend(f"- [{clock(t.start)}-{clock(t.end)}] {t.text}" for t in transcript)
    if screen:
        lines.append("")
        lines.append("On-screen text:")
        lines.extend(f"- [{clock(t.start)}-{clock(t.end)}] {t.text}" for t in screen)
    lines.append("")
    lines.append(LIMITS)
    return "\n".join(lines)


def answer_json(
    engine: Engine, index: AssetIndex, prompt: str, schema: dict[str, Any], duration: float | None
) -> str:
    """Fill ``schema`` from the evidence: strings get the best quote, string arrays the quotes, objects with
    start/end/text-like fields the timed moments. Numbers get the duration where asked, else 0."""
    relevant = evidence(engine, index, prompt) or list(index.texts)
    value = _fill(schema, relevant, duration, name="")
    return json.dumps(value)


def _fill(schema: dict[str, Any], ev: list[TimedText], duration: float | None, name: str) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        return {k: _fill(v, ev, duration, k) for k, v in props.items()}
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        if items.get("type") == "object" or "properties" in items:
            return [_moment_obj(items, t, duration) for t in ev]
        return [_fill(items, [t], duration, name) for t in ev]
    if kind == "string":
        if ev:
            return ev[0].text
        return "not found in the video's text (offline sandbox)"
    if kind in ("number", "integer"):
        lowered = name.lower()
        if ev and "start" in lowered:
            value: float = ev[0].start
        elif ev and "end" in lowered:
            value = ev[0].end
        elif "duration" in lowered and duration:
            value = duration
        elif "count" in lowered or "number" in lowered:
            value = len(ev)
        else:
            value = 0
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return bool(ev)
    return None


def _moment_obj(schema: dict[str, Any], t: TimedText, duration: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        lowered = key.lower()
        sub_kind = sub.get("type")
        if "start" in lowered and sub_kind in ("number", "integer"):
            out[key] = int(t.start) if sub_kind == "integer" else t.start
        elif "end" in lowered and sub_kind in ("number", "integer"):
            out[key] = int(t.end) if sub_kind == "integer" else t.end
        elif sub_kind == "string" and ("source" in lowered or "modality" in lowered):
            out[key] = LABEL[t.source]
        else:
            out[key] = _fill(sub, [t], duration, key)
    return out


def truncate(text: str, max_tokens: int | None) -> tuple[str, str, int]:
    """(text, finish_reason, output_tokens); a token here is a whitespace-separated word."""
    words = text.split(" ")
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length", max_tokens
    return text, "stop", len(words)
