"""The sandbox keeps answering while it works on media. Probing an upload reads every packet of it,
joining a multipart upload copies it, and fingerprinting audio or decoding a big picture takes seconds:
none of that may hold the event loop every other request waits on.

Measured on a real sandbox process over loopback: while the heavy request runs, a cheap one
(GET /indexes) is sent again and again, and each must come back within LATENCY_BOUND_S."""

from __future__ import annotations

import base64
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.hostile_media import huge_png, silent_adts
from tests.sandbox.conftest import MARENGO, upload, wait_for
from tests.sandbox.test_hostile_media import KEY, SandboxProcess

#: How long any other request may wait while heavy media work runs.
LATENCY_BOUND_S = 0.5
#: Seconds of silence in the long upload: ~375,000 AAC packets (4 MB), which the probe reads one by one.
LONG_S = 4000.0
#: Seconds of audio to fingerprint: decoding, resampling and transforming it takes about a second.
FINGERPRINT_S = 120.0
#: Twice the pixels of 8K UHD (the sandbox is started with this as its limit).
PICTURE = (10_860, 6_110)


def silent_wav(path: Path, seconds: float, rate: int = 44_100) -> Path:
    """A 16-bit mono PCM WAV of ``seconds`` of silence, written directly (no encoder: fast at any size)."""
    data = int(seconds * rate) * 2
    with path.open("wb") as out:
        out.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE")
        out.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16))
        out.write(b"data" + struct.pack("<I", data))
        zeros = bytes(2**20)
        for start in range(0, data, len(zeros)):
            out.write(zeros[: min(len(zeros), data - start)])
    return path


@dataclass
class Setup:
    sb: SandboxProcess
    long_aac: Path
    short_wav: Path
    big_png: Path
    index_id: str
    audio_asset_id: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("responsive")
    long_aac = silent_adts(root / "long.aac", LONG_S)
    short_wav = silent_wav(root / "short.wav", FINGERPRINT_S)
    # Kilobytes on disk, ~200 MB of RGB to decode and embed: a second's work per picture.
    big_png = huge_png(root / "big.png", *PICTURE)
    sb = SandboxProcess(root / "sandbox", TL_MCP_SANDBOX_MAX_PIXELS=str(PICTURE[0] * PICTURE[1]))
    try:
        with sb.client() as c:
            r = c.post("/indexes", json={"index_name": "responsive", "models": MARENGO})
            assert r.status_code == 201, r.text
            index_id = r.json()["_id"]
            r = upload(c, short_wav)
            assert r.status_code == 201, r.text
            audio_asset_id = r.json()["_id"]
            wait_for(lambda: c.get(f"/assets/{audio_asset_id}").json()["status"], lambda s: s == "ready")
            yield Setup(sb, long_aac, short_wav, big_png, index_id, audio_asset_id)
    finally:
        sb.close()


def latencies_while(sb: SandboxProcess, heavy: Callable[[httpx2.Client], None]) -> list[float]:
    """Run ``heavy`` on a thread and GET /indexes in a loop until it returns; the seconds each GET took."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with httpx2.Client(base_url=sb.base, headers={"x-api-key": KEY}, timeout=120.0) as c:
                heavy(c)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="heavy-request")
    seconds: list[float] = []
    with sb.client() as c:
        assert c.get("/indexes").status_code == 200  # connected before the heavy request starts
        worker.start()
        while worker.is_alive():
            started = time.perf_counter()
            r = c.get("/indexes")
            seconds.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
            time.sleep(0.02)
    worker.join()
    if failure:
        raise failure[0]
    return seconds


def _multipart(setup: Setup, c: httpx2.Client) -> None:
    size = setup.long_aac.stat().st_size
    r = c.post(
        "/assets/multipart-uploads", json={"filename": "long.aac", "type": "audio", "total_size": size}
    )
    assert r.status_code == 201, r.text
    session = r.json()
    chunk, urls = session["chunk_size"], session["upload_urls"]
    while len(urls) < session["total_chunks"]:
        more = c.post(
            f"/assets/multipart-uploads/{session['upload_id']}/presigned-urls",
            json={"start": len(urls) + 1, "count": 50},
        )
        urls += more.json()["upload_urls"]
    done = []
    with setup.long_aac.open("rb") as f:
        for part in urls:
            f.seek((part["chunk_index"] - 1) * chunk)
            data = f.read(chunk)
            put = c.put(part["url"], content=data)
            assert put.status_code == 200, put.text
            done.append(
                {
                    "chunk_index": part["chunk_index"],
                    "proof": put.headers["etag"],
                    "proof_type": "etag",
                    "chunk_size": len(data),
                }
            )
    # The last report joins the parts and probes the whole file.
    r = c.post(f"/assets/multipart-uploads/{session['upload_id']}", json={"completed_chunks": done})
    assert r.status_code == 200, r.text
    asset = c.get(f"/assets/{session['asset_id']}").json()
    assert asset["duration"] == pytest.approx(LONG_S), asset
    assert c.delete(f"/assets/{session['asset_id']}").status_code == 200


def _direct(setup: Setup, c: httpx2.Client) -> None:
    r = upload(c, setup.long_aac)
    assert r.status_code == 201, r.text
    assert r.json()["duration"] == pytest.approx(LONG_S)
    assert c.delete(f"/assets/{r.json()['_id']}").status_code == 200


def _index_task(setup: Setup, c: httpx2.Client) -> None:
    with setup.long_aac.open("rb") as f:
        r = c.post("/tasks", data={"index_id": setup.index_id}, files={"video_file": ("long.aac", f)})
    assert r.status_code == 200, r.text


def _embed_task(setup: Setup, c: httpx2.Client) -> None:
    with setup.long_aac.open("rb") as f:
        r = c.post("/embed/tasks", data={"model_name": "marengo3.0"}, files={"video_file": ("long.aac", f)})
    assert r.status_code == 200, r.text


def _embed_audio_file(setup: Setup, c: httpx2.Client) -> None:
    with setup.short_wav.open("rb") as f:
        r = c.post("/embed", data={"model_name": "marengo3.0"}, files={"audio_file": ("short.wav", f)})
    assert r.status_code == 200, r.text
    assert r.json()["audio_embedding"]["segments"]


def _embed_v2_audio_asset(setup: Setup, c: httpx2.Client) -> None:
    r = c.post(
        "/embed-v2",
        json={
            "input_type": "audio",
            "model_name": "marengo3.0",
            "audio": {"media_source": {"asset_id": setup.audio_asset_id}},
        },
    )
    assert r.status_code == 200, r.text


def _embed_image_file(setup: Setup, c: httpx2.Client) -> None:
    with setup.big_png.open("rb") as f:
        r = c.post("/embed", data={"model_name": "marengo3.0"}, files={"image_file": ("big.png", f)})
    assert r.status_code == 200, r.text
    assert r.json()["image_embedding"]["segments"]


def _embed_v2_image(setup: Setup, c: httpx2.Client) -> None:
    picture = base64.b64encode(setup.big_png.read_bytes()).decode()
    r = c.post(
        "/embed-v2",
        json={
            "input_type": "image",
            "model_name": "marengo3.0",
            "image": {"media_source": {"base64_string": picture}},
        },
    )
    assert r.status_code == 200, r.text


def _search_by_images(setup: Setup, c: httpx2.Client) -> None:
    data = setup.big_png.read_bytes()
    r = c.post(
        "/search",
        data={"index_id": setup.index_id, "query_media_type": "image", "search_options": "visual"},
        files=[("query_media_file", (f"q{i}.png", data)) for i in range(3)],
    )
    assert r.status_code == 200, r.text


HEAVY: dict[str, Callable[[Setup, httpx2.Client], None]] = {
    "multipart upload joined and probed": _multipart,
    "direct upload probed": _direct,
    "index task upload probed": _index_task,
    "embed task upload probed": _embed_task,
    "audio file fingerprinted": _embed_audio_file,
    "audio asset fingerprinted (v2)": _embed_v2_audio_asset,
    "image file decoded and embedded": _embed_image_file,
    "base64 image decoded and embedded (v2)": _embed_v2_image,
    "three query images decoded": _search_by_images,
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("work", list(HEAVY))
def test_other_requests_are_answered_while_heavy_media_work_runs(setup: Setup, work: str) -> None:
    seconds = latencies_while(setup.sb, lambda c: HEAVY[work](setup, c))
    assert max(seconds) < LATENCY_BOUND_S, (
        f"a GET /indexes waited {max(seconds):.2f} s while the {work} ({len(seconds)} answers)"
    )
    # Enough answers came back while the heavy request ran to show they overlapped with its work.
    assert len(seconds) >= 5, seconds


def _race_the_last_report(setup: Setup, c: httpx2.Client) -> None:
    size = setup.long_aac.stat().st_size
    r = c.post(
        "/assets/multipart-uploads", json={"filename": "race.aac", "type": "audio", "total_size": size}
    )
    assert r.status_code == 201, r.text
    session = r.json()
    [part] = session["upload_urls"]
    put = c.put(part["url"], content=setup.long_aac.read_bytes())
    assert put.status_code == 200, put.text
    chunk = {"chunk_index": 1, "proof": put.headers["etag"], "proof_type": "etag", "chunk_size": size}
    report = f"/assets/multipart-uploads/{session['upload_id']}"
    answers: list[httpx2.Response] = []

    def send() -> None:
        with setup.sb.client() as own:
            answers.append(own.post(report, json={"completed_chunks": [chunk]}))

    racers = [threading.Thread(target=send) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert sum("url" in a.json() for a in answers) == 1, [a.json() for a in answers]
    asset_id = session["asset_id"]
    asset = wait_for(lambda: c.get(f"/assets/{asset_id}").json(), lambda b: b["status"] != "processing")
    assert asset["status"] == "ready" and asset["duration"] == pytest.approx(LONG_S), asset
    assert c.get(report).json()["status"] == "completed"
    assert c.delete(f"/assets/{asset_id}").status_code == 200


@pytest.mark.timeout(120)
def test_racing_reports_of_the_last_chunk_join_the_parts_once(setup: Setup) -> None:
    """A client retrying its report while the sandbox still joins and probes the parts on a worker thread
    (or two reports sent at once) gets an answer, and the parts are joined and registered once."""
    with setup.sb.client() as c:
        for _ in range(3):
            _race_the_last_report(setup, c)
