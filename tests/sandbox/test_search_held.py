"""One search result per thing said or shown: the sandbox caps segments at 10 s, so a subtitle held over a
12 s scene lies in two segments, and came back as two results with the same words (index search,
knowledge-store search, and search_videos over both). Pages, totals, ranks and groups count the joined
results."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.openapi_spec import validate_response
from tests.sandbox.conftest import MARENGO, client_for, indexed, ready_asset, wait_for
from tests.server.conftest import call_ok, loopback_socket, sandbox_settings, serve_app
from tl_mcp.config import Settings
from tl_mcp.samples import DEFAULT_SCENES, SampleInfo, make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.sandbox.retrieval import Moment, held_once
from tl_mcp.server import build_http_app, build_server

#: Two scenes of 12 s: each one's subtitle (0.5-11.5 s, 12.5-23.5 s) spans a 10 s segment and its 2 s rest.
SCENE_S = 12.0
#: Words of the first subtitle only, and words of both.
SALES = "quarterly sales revenue"
BOTH = "revenue apples"
TOKEN = "tok-" + "held" * 6


@dataclass
class Held:
    client: httpx2.Client
    sample: SampleInfo
    settings: Settings
    index_id: str
    video_id: str
    store_id: str


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Held]:
    root = tmp_path_factory.mktemp("held")
    sample = make_sample_video(
        root / "held.mp4",
        scenes=DEFAULT_SCENES[:2],
        scene_seconds=SCENE_S,
        size=(320, 180),
        fps=5,
        speech=False,
    )
    sb = EmbeddedSandbox.start_in_thread(root / "data", analyzers="none")
    try:
        with client_for(sb) as client:
            r = client.post(
                "/indexes", json={"index_name": "held", "models": MARENGO, "addons": ["thumbnail"]}
            )
            assert r.status_code == 201, r.text
            index_id = r.json()["_id"]
            asset_id = ready_asset(client, sample.path)
            video_id = indexed(client, index_id, asset_id)
            store_id = client.post("/knowledge-stores", json={"name": "held"}).json()["_id"]
            r = client.post(f"/knowledge-stores/{store_id}/items", json={"asset_id": asset_id})
            assert r.status_code == 202, r.text
            item = r.json()["_id"]
            wait_for(
                lambda: client.get(f"/knowledge-stores/{store_id}/items/{item}").json(),
                lambda b: b["status"] == "ready",
            )
            settings = sandbox_settings(sb, root / "state", None, transport="http", auth_tokens=[TOKEN])
            yield Held(client, sample, settings, index_id, video_id, store_id)
    finally:
        sb.stop()


def _search(held: Held, query: str, **fields: Any) -> dict[str, Any]:
    r = held.client.post(
        "/search", data={"index_id": held.index_id, "query_text": query, "search_options": "audio", **fields}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    validate_response("post", "/search", 200, body)
    return body


def _spans(clips: list[dict[str, Any]]) -> list[tuple[float, float]]:
    return [(c["start"], c["end"]) for c in clips]


def test_each_scene_is_two_segments(held: Held) -> None:
    # The premise of this module: without it the other tests would pass for nothing.
    video = held.client.get(
        f"/indexes/{held.index_id}/videos/{held.video_id}", params={"embedding_option": "visual"}
    ).json()
    spans = [
        (s["start_offset_sec"], s["end_offset_sec"])
        for s in video["embedding"]["video_embedding"]["segments"]
    ]
    assert spans == [(0.0, 10.0), (10.0, 12.0), (12.0, 22.0), (22.0, 24.0)], spans


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"operator": "and"},
        {"search_options": "transcription", "transcription_options": "lexical"},
        {"search_options": ["visual", "transcription"], "transcription_options": "lexical"},
    ],
    ids=["default", "and", "lexical", "lexical-and-visual"],
)
def test_a_subtitle_held_past_a_segment_is_one_clip(held: Held, fields: dict[str, Any]) -> None:
    body = _search(held, SALES, **fields)
    cue = held.sample.subtitles[0]
    # Start of the first part to the end of the last: the whole scene the subtitle is held over.
    assert _spans(body["data"]) == [(0.0, SCENE_S)], body["data"]
    (clip,) = body["data"]
    assert clip["transcription"] == cue.text and clip["rank"] == 1 and clip["confidence"] == "high"
    assert body["page_info"]["total_results"] == 1


def test_pages_totals_and_groups_count_the_joined_clips(held: Held) -> None:
    whole = _search(held, BOTH)
    assert sorted(_spans(whole["data"])) == [(0.0, 12.0), (12.0, 24.0)], whole["data"]
    assert [c["rank"] for c in whole["data"]] == [1, 2]

    first = _search(held, BOTH, page_limit="1")
    assert first["page_info"]["total_results"] == 2 and len(first["data"]) == 1
    token = first["page_info"]["next_page_token"]
    second = held.client.get(f"/search/{token}").json()
    validate_response("get", "/search/{page-token}", 200, second)
    assert second["page_info"]["total_results"] == 2 and "next_page_token" not in second["page_info"]
    assert [c["rank"] for c in first["data"] + second["data"]] == [1, 2]
    assert first["data"] + second["data"] == whole["data"]

    grouped = _search(held, BOTH, group_by="video")
    (video,) = grouped["data"]
    assert video["id"] == held.video_id and video["clips"] == whole["data"]
    assert grouped["page_info"]["total_inner_matches"] == 2 and grouped["page_info"]["total_results"] == 1


def _ks(held: Held, query: str, **body: Any) -> dict[str, Any]:
    r = held.client.post(
        f"/knowledge-stores/{held.store_id}/search",
        json={"query": {"text": query}, "search_options": {"video": {"modalities": ["audio"]}}, **body},
    )
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def _matches(hits: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    return [(m["start_sec"], m["end_sec"], m["transcription"]) for h in hits for m in h["matches"]]


def test_a_knowledge_store_search_returns_a_held_subtitle_once(held: Held) -> None:
    first, second = (c.text for c in held.sample.subtitles)
    assert _matches(_ks(held, SALES)["data"]) == [(0.0, 12.0, first)]

    page1 = _ks(held, BOTH, page_size=1)
    page2 = _ks(held, BOTH, page_size=1, page_token=page1["next_page_token"])
    assert "next_page_token" not in page2
    assert sorted(_matches(page1["data"] + page2["data"])) == [(0.0, 12.0, first), (12.0, 24.0, second)]
    (item,) = _ks(held, BOTH, group_by="item")["data"]
    assert sorted(_matches([item])) == [(0.0, 12.0, first), (12.0, 24.0, second)]


def test_search_videos_returns_one_moment_per_held_subtitle(held: Held) -> None:
    async def run() -> None:
        app = build_http_app(build_server(held.settings), held.settings)
        async with serve_app(app, loopback_socket()) as base:
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
                await _searches(c, held)

    anyio.run(run)


async def _searches(c: Client, held: Held) -> None:
    found = await call_ok(c, "search_videos", {"query": SALES, "index_id": held.index_id})
    data = found.structured_content
    assert data is not None
    assert [(m["start"], m["end"]) for m in data["moments"]] == [(0.0, SCENE_S)], data
    assert data["total_results"] == 1

    # One moment a page, and the next page (as the result says to ask for it) is the other one.
    page = await call_ok(c, "search_videos", {"query": BOTH, "index_id": held.index_id, "limit": 1})
    first = page.structured_content
    assert first is not None and first["total_results"] == 2 and first["next_page_token"]
    follow = {"page_token": first["next_page_token"], "index_id": held.index_id}
    second = (await call_ok(c, "search_videos", follow)).structured_content
    assert second is not None and not second.get("next_page_token")
    spans = sorted((m["start"], m["end"]) for m in first["moments"] + second["moments"])
    assert spans == [(0.0, 12.0), (12.0, 24.0)]

    stored = await call_ok(c, "search_videos", {"query": SALES, "knowledge_store_id": held.store_id})
    assert stored.structured_content is not None
    assert [(m["start"], m["end"]) for m in stored.structured_content["moments"]] == [(0.0, SCENE_S)]


def test_only_the_same_text_end_to_end_is_joined() -> None:
    def moment(start: float, end: float, text: str, score: float, modality: str = "speech") -> Moment:
        return Moment("a1", start, end, text, score, modality, None)

    best_first = [
        moment(10.0, 12.0, "said twice", 0.9),  # the same words again, after a gap: another moment
        moment(0.0, 4.0, "said twice", 0.8),
        moment(4.0, 6.0, "across a cut", 0.7),
        moment(6.0, 7.5, "across a cut", 0.75),
        moment(20.0, 30.0, "", 0.6, "frame"),  # neighbouring scenes that both look alike stay two
        moment(30.0, 32.0, "", 0.5, "frame"),
        moment(6.0, 7.5, "across a cut", 0.4, "ocr"),  # the same words on screen are another result
    ]
    joined = held_once(best_first)
    assert [(m.start, m.end, m.score) for m in joined] == [
        (10.0, 12.0, 0.9),
        (0.0, 4.0, 0.8),
        (4.0, 7.5, 0.75),
        (20.0, 30.0, 0.6),
        (30.0, 32.0, 0.5),
        (6.0, 7.5, 0.4),
    ]
