"""The sandbox's embedding options, over real HTTP: v2 video tasks honour scopes, options and offsets, and
an indexed asset's `embedding_option` answers each modality with its own vectors."""

from __future__ import annotations

import numpy as np

from tests.sandbox.conftest import Library, Media, wait_for


def _task(library: Library, video: dict[str, object]) -> dict[str, object]:
    c = library.client
    body = {"input_type": "video", "model_name": "marengo3.0", "video": video}
    r = c.post("/embed-v2/tasks", json=body)
    assert r.status_code == 202, r.text
    task_id = r.json()["_id"]
    done: dict[str, object] = wait_for(
        lambda: c.get(f"/embed-v2/tasks/{task_id}").json(), lambda b: b["status"] != "processing"
    )
    assert done["status"] == "ready", done
    return done


def test_v2_scopes_options_and_offsets_are_honoured(library: Library) -> None:
    task = _task(
        library,
        {
            "media_source": {"asset_id": library.asset_id},
            "start_sec": 3,
            "end_sec": 13,
            "segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 5}},
            "embedding_option": ["audio"],
            "embedding_scope": ["asset"],
        },
    )
    data = task["data"]
    assert isinstance(data, list)
    assert [(d["embedding_option"], d["embedding_scope"], d["start_sec"], d["end_sec"]) for d in data] == [
        ("audio", "asset", 3.0, 13.0)
    ]
    assert len(data[0]["embedding"]) == 128  # the sound fingerprint, not a frame vector
    meta = task["metadata"]
    assert isinstance(meta, dict) and meta["embedding_options"] == ["audio"] and meta["clip_length"] == 5


def test_fused_only_returns_the_fused_vectors_with_a_note(library: Library) -> None:
    task = _task(
        library,
        {
            "media_source": {"asset_id": library.asset_id},
            "embedding_option": ["visual", "audio"],
            "embedding_scope": ["clip"],
            "embedding_type": ["fused_embedding"],
            "segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 6}},
        },
    )
    data = task["data"]
    assert isinstance(data, list) and data
    assert {d["embedding_option"] for d in data} == {"fused"}
    for d in data:
        assert abs(np.linalg.norm(d["embedding"]) - 1) < 1e-3
    meta = task["metadata"]
    assert isinstance(meta, dict) and any("concatenate" in n for n in meta["sandbox_notes"])


def test_bad_v2_task_options_are_refused_and_create_nothing(library: Library) -> None:
    c = library.client
    before = c.get("/embed-v2/tasks").json()["page_info"]["total_results"]
    source = {"asset_id": library.asset_id}
    for video, says in [
        ({"start_sec": 500}, "past the end"),
        ({"start_sec": 2, "end_sec": 400}, "past the end"),
        ({"start_sec": 6, "end_sec": 2}, "greater than"),
        ({"segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 12}}}, "between 2 and 10"),
        ({"embedding_option": ["smell"]}, "embedding_option"),
        ({"embedding_scope": ["video"]}, "embedding_scope"),
        ({"embedding_option": ["visual"], "embedding_type": ["fused_embedding"]}, "at least two"),
        ({"time_based_metadata": [{"start": 0, "end": 1, "text": "x"}]}, "marengo3.5"),
    ]:
        body = {"input_type": "video", "model_name": "marengo3.0", "video": {"media_source": source, **video}}
        r = c.post("/embed-v2/tasks", json=body)
        assert r.status_code == 400, (video, r.text)
        assert says in r.json()["error"]["message"], (video, r.text)
    assert c.get("/embed-v2/tasks").json()["page_info"]["total_results"] == before


def test_v1_offsets_past_the_end_are_refused_at_upload(library: Library, media: Media) -> None:
    with media.video.path.open("rb") as f:
        r = library.client.post(
            "/embed/tasks",
            data={"model_name": "marengo3.0", "video_start_offset_sec": "100", "video_end_offset_sec": "120"},
            files={"video_file": ("clip.mp4", f, "video/mp4")},
        )
    assert r.status_code == 400 and "past the end" in r.json()["message"], r.text


def test_indexed_asset_embedding_options_each_answer_with_their_own_vectors(library: Library) -> None:
    c = library.client
    url = f"/indexes/{library.index_id}/indexed-assets/{library.video_id}"
    got = c.get(url, params={"embedding_option": ["visual", "audio", "transcription"]}).json()
    segments = got["embedding"]["video_embedding"]["segments"]
    by_option: dict[str, list[list[float]]] = {}
    for s in segments:
        by_option.setdefault(s["embedding_option"], []).append(s["float"])
    assert set(by_option) == {"visual", "audio", "transcription"}
    assert len(by_option["audio"][0]) == 128
    # Transcription is the words of the segment: the text embedder's vector of the subtitle said there.
    assert len(by_option["transcription"][0]) != len(by_option["visual"][0])
    assert by_option["audio"][0] != by_option["transcription"][0]
    bad = c.get(url, params={"embedding_option": ["smell"]})
    assert bad.status_code == 400 and "embedding_option" in bad.json()["message"]


def test_marengo_35_text_is_truncated_only_when_asked(library: Library) -> None:
    c = library.client
    long_text = " ".join(["apples"] * 2100)
    body = {"input_type": "multi_input", "model_name": "marengo3.5", "multi_input": {"input_text": long_text}}
    refused = c.post("/embed-v2", json=body)
    assert refused.status_code == 400 and "auto_truncate" in refused.json()["error"]["message"]
    cut = c.post("/embed-v2", json={**body, "auto_truncate": True})
    assert cut.status_code == 200, cut.text
    usage = cut.json()["usage"]
    assert usage["input_tokens"] == {"text": 2000} and usage["truncated"] is True
    assert usage["truncation_reason"] == "model_context_window"
    # The vector is the first 2,000 tokens' own: the same as embedding them alone.
    first = {**body, "multi_input": {"input_text": " ".join(["apples"] * 2000)}}
    alone = c.post("/embed-v2", json=first).json()
    assert alone["usage"]["truncated"] is False
    assert alone["data"][0]["embedding"] == cut.json()["data"][0]["embedding"]
    media = c.post("/embed-v2", json={**body, "multi_input": {"input_text": "x", "media_sources": [{}]}})
    assert media.status_code == 400 and "text only" in media.json()["error"]["message"]
