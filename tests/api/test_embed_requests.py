"""The embedding options of the client: video task options (checked against the OpenAPI snapshot by
`FakeAPI`), the rules that refuse a bad combination before anything is sent, and an indexed video's stored
embeddings. Where the SDK 1.3.6 delta differs from the snapshot (marengo3.5 and its nested segmentation,
`time_based_metadata`), the delta wins: those requests are checked against the snapshot with the model
name the snapshot knows, plus the delta's shape by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import FakeAPI, Seen, json_response, make_client
from tests.api.test_endpoints import spec_answer
from tests.openapi_spec import request_validator
from tl_mcp.api.models import TimeBasedMetadataEntry

pytestmark = pytest.mark.anyio


async def test_video_task_options_reach_the_wire_as_the_contract_names_them() -> None:
    api = FakeAPI(spec_answer)
    async with make_client(api) as tl:
        await tl.embed.create_video_task(
            asset_id="a1",
            start_sec=2.0,
            end_sec=14.0,
            clip_length=4,
            scopes=["clip", "asset", "clip"],
            options=["visual", "audio"],
            fused=True,
        )
    (seen,) = api.seen
    assert seen.path == "/embed-v2/tasks"
    assert seen.json() == {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {
            "media_source": {"asset_id": "a1"},
            "start_sec": 2.0,
            "end_sec": 14.0,
            "segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 4.0}},
            "embedding_option": ["visual", "audio"],
            "embedding_scope": ["clip", "asset"],
            "embedding_type": ["separate_embedding", "fused_embedding"],
        },
    }


async def test_marengo_35_nests_segmentation_and_takes_time_based_metadata() -> None:
    api = FakeAPI(spec_answer, check_spec=False)
    note = TimeBasedMetadataEntry(start=1.0, end=1.0, text="goal")
    async with make_client(api) as tl:
        await tl.embed.create_video_task(
            url="https://example.com/v.mp4",
            model_name="marengo3.5",
            clip_length=5,
            fused=True,
            time_based_metadata=[note],
        )
    body: dict[str, Any] = api.seen[0].json()
    video = body["video"]
    # Delta §7.4: 3.5 takes {temporal: {strategy, fixed}} and time_based_metadata entries {start, end, text}.
    assert video["segmentation"] == {"temporal": {"strategy": "fixed", "fixed": {"duration_sec": 5.0}}}
    assert video["time_based_metadata"] == [{"start": 1.0, "end": 1.0, "text": "goal"}]
    assert video["embedding_type"] == ["separate_embedding", "fused_embedding"]
    # Everything else is the snapshot's shape (which lists marengo3.0 only).
    errors = list(
        request_validator("POST", "/embed-v2/tasks").iter_errors({**body, "model_name": "marengo3.0"})
    )
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"clip_length": 1.5}, "clip_length must be between 2 and 10"),
        ({"clip_length": 10.5}, "clip_length must be between 2 and 10"),
        ({"start_sec": -1.0}, "start_sec must be 0 or more"),
        ({"start_sec": 9.0, "end_sec": 3.0}, "end_sec (3) must be greater than start_sec (9)"),
        ({"options": ["visual"], "fused": True}, "fused needs at least two options"),
        ({"options": []}, "options, when given"),
        ({"scopes": []}, "scopes, when given"),
        ({"model_name": "marengo3.5", "options": ["transcription"]}, "transcription option needs marengo3.0"),
        (
            {"fused": True, "time_based_metadata": [TimeBasedMetadataEntry(start=0, end=1, text="x")]},
            "time_based_metadata needs marengo3.5",
        ),
    ],
)
async def test_bad_video_options_raise_before_anything_is_sent(
    tmp_path: Path, options: dict[str, Any], says: str
) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not uploaded")
    api = FakeAPI(spec_answer)
    async with make_client(api) as tl:
        with pytest.raises(ValueError) as refused:
            await tl.embed.create_video_task(path=video, **options)
    assert says in str(refused.value)
    assert api.seen == []  # nothing uploaded, no task


async def test_an_indexed_videos_stored_embeddings_are_asked_for_and_parsed() -> None:
    stored = {
        "_id": "ia1",
        "status": "ready",
        "embedding": {
            "model_name": "marengo3.0",
            "video_embedding": {
                "segments": [
                    {
                        "float": [0.6, 0.8],
                        "start_offset_sec": 0.0,
                        "end_offset_sec": 6.0,
                        "embedding_option": "audio",
                        "embedding_scope": "clip",
                    }
                ]
            },
        },
    }

    def answer(seen: Seen) -> Any:
        return json_response(200, stored)

    api = FakeAPI(answer)
    async with make_client(api) as tl:
        video = await tl.indexed_assets.get("i1", "ia1", embedding_option=["visual", "audio", "visual"])
    (seen,) = api.seen
    assert seen.template == "/indexes/{index-id}/indexed-assets/{indexed-asset-id}"
    assert seen.params.get_list("embedding_option") == ["visual", "audio"]
    assert video.embedding is not None and video.embedding.model_name == "marengo3.0"
    (segment,) = video.embedding.segments
    assert segment.float_ == [0.6, 0.8] and segment.embedding_option == "audio"


async def test_marengo_35_text_goes_to_embed_v2_with_auto_truncate() -> None:
    answer = {
        "data": [{"embedding": [0.6, 0.8], "embedding_option": None, "embedding_scope": None}],
        "metadata": {"input_type": "multi_input"},
        "usage": {"input_tokens": {"text": 2000}, "truncated": True},
    }

    def handler(seen: Seen) -> Any:
        return json_response(200, answer)

    # The snapshot knows neither marengo3.5 nor auto_truncate (SDK 1.3.6 delta §7.2): the delta wins.
    api = FakeAPI(handler, check_spec=False)
    async with make_client(api) as tl:
        emb = await tl.embed.text("a long text", model_name="marengo3.5", auto_truncate=True)
        with pytest.raises(ValueError, match=r"auto_truncate needs marengo3\.5"):
            await tl.embed.text("a long text", auto_truncate=True)
    (seen,) = api.seen
    assert (seen.method, seen.path) == ("POST", "/embed-v2")
    assert seen.json() == {
        "input_type": "multi_input",
        "model_name": "marengo3.5",
        "multi_input": {"input_text": "a long text"},
        "auto_truncate": True,
    }
    as_snapshot = {**seen.json(), "model_name": "marengo3.0"}
    as_snapshot.pop("auto_truncate")
    errors = list(request_validator("POST", "/embed-v2").iter_errors(as_snapshot))
    # The rest is the snapshot's multi_input shape, but for the one rule the delta lifted: media_sources
    # is optional since 1.3.4 (text-only multi_input).
    assert [e.message for e in errors] == ["'media_sources' is a required property"]
    assert emb.vectors == [[0.6, 0.8]]
    assert emb.usage is not None and emb.usage.truncated is True and emb.usage.input_tokens == {"text": 2000}
