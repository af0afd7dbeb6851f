"""Answers an agent can act on, through a real MCP client on the embedded sandbox, on a four-scene video
with known truth: citations that chain into other tools and show their own moment, classification
ratios that match the class durations, analysis windows, and extractive chapters and summaries."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import jsonschema
import pytest
from mcp import Client, MCPError
from mcp.types import BlobResourceContents

from tests.server.answers_support import COOKING, FOUR_SCENES, scene_of
from tests.server.conftest import call_ok, sandbox_settings, seed_library, text_of
from tl_mcp.samples import SampleInfo, make_sample_video
from tl_mcp.sandbox.embedded import EmbeddedSandbox
from tl_mcp.server import build_server

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Four:
    sandbox: EmbeddedSandbox
    sample: SampleInfo
    settings: Any
    ids: dict[str, str]


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Four]:
    root = tmp_path_factory.mktemp("four")
    media = root / "media"
    media.mkdir()
    # Speech (espeak-ng, when installed), on-screen titles and a subtitle track, one scene each 6 s.
    sample = make_sample_video(media / "four.mp4", scenes=FOUR_SCENES)
    sandbox = EmbeddedSandbox.start_in_thread(root / "sandbox-data", analyzers="none")
    try:
        settings = sandbox_settings(sandbox, root / "state", media)

        async def setup() -> dict[str, str]:
            async with Client(build_server(settings)) as c:
                return await seed_library(c, sample.path, "four")

        yield Four(sandbox, sample, settings, anyio.run(setup))
    finally:
        sandbox.stop()


async def test_a_citation_names_its_asset_and_video_and_shows_its_own_moment(four: Four) -> None:
    cooking = four.sample.scenes[COOKING]
    async with Client(build_server(four.settings)) as c:
        answer = (
            await call_ok(
                c,
                "create_response",
                {"knowledge_store_id": four.ids["knowledge_store_id"], "input": "How do I cook pasta?"},
            )
        ).structured_content
        assert answer
        (cite,) = answer["citations"]
        assert cite["item_id"] == four.ids["item_id"]
        assert (cite["asset_id"], cite["video_id"], cite["index_id"]) == (
            four.ids["asset_id"],
            four.ids["video_id"],
            four.ids["index_id"],
        )
        assert cite["start_sec"] == pytest.approx(cooking.start, abs=0.5)

        # The citation's own picture is the cooking scene, not the video's first frame.
        async with httpx2.AsyncClient() as http:
            jpeg = (await http.get(cite["thumbnail_url"])).raise_for_status().content
        assert scene_of(four.sample, jpeg) == COOKING
        (blob,) = (await c.read_resource(cite["thumbnail_uri"])).contents
        assert isinstance(blob, BlobResourceContents) and blob.mime_type == "image/jpeg"
        assert scene_of(four.sample, base64.b64decode(blob.blob)) == COOKING

        for bad, why in (("soon", "not a time in seconds"), ("90", "past the end")):
            with pytest.raises(MCPError, match=why):
                await c.read_resource(f"twelvelabs://thumbnails/{cite['asset_id']}/{bad}")

        # Chain it: the video's details, then a look at exactly the cited span.
        video = (
            await call_ok(c, "get_video", {"index_id": cite["index_id"], "video_id": cite["video_id"]})
        ).structured_content
        assert video and video["video"]["asset_id"] == cite["asset_id"]
        closer = (
            await call_ok(
                c,
                "analyze_video",
                {
                    "asset_id": cite["asset_id"],
                    "start_time": cite["start_sec"],
                    "end_time": cite["end_sec"],
                    "prompt": "What happens here?",
                },
            )
        ).structured_content
        assert closer and cooking.narration in closer["text"]
        assert all(s.narration not in closer["text"] for s in four.sample.scenes if s.index != COOKING)


async def test_the_analysis_window_is_honoured_and_checked(four: Four) -> None:
    ocean = four.sample.scenes[2]
    async with Client(build_server(four.settings)) as c:
        inside = (
            await call_ok(
                c,
                "analyze_video",
                {
                    "video_id": four.ids["video_id"],
                    "index_id": four.ids["index_id"],
                    "prompt": "What is said?",
                    "start_time": ocean.start,
                    "end_time": ocean.end,
                },
            )
        ).structured_content
        assert inside and ocean.narration in inside["text"]
        assert [s.index for s in four.sample.scenes if s.narration in inside["text"]] == [2]
        chapters = (
            await call_ok(
                c,
                "analyze_video",
                {
                    "asset_id": four.ids["asset_id"],
                    "prompt": "Split this part into chapters.",
                    "start_time": 6,
                    "end_time": 18,
                    "output_schema": {
                        "type": "object",
                        "properties": {
                            "chapters": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "start_sec": {"type": "number"},
                                        "title": {"type": "string"},
                                    },
                                },
                            }
                        },
                    },
                },
            )
        ).structured_content
        assert chapters and [ch["start_sec"] for ch in chapters["parsed"]["chapters"]] == [6.0, 12.0]
        short = await c.call_tool(
            "analyze_video",
            {"asset_id": four.ids["asset_id"], "prompt": "x", "start_time": 5, "end_time": 5.5},
        )
        assert short.is_error and "at least 1 s after `start_time`" in text_of(short)
        late = await c.call_tool(
            "analyze_video", {"asset_id": four.ids["asset_id"], "prompt": "x", "start_time": 90}
        )
        assert late.is_error and "not before the end of the video" in text_of(late)


async def test_chapters_are_in_order_with_short_titles_distinct_from_their_summaries(four: Four) -> None:
    scenes = four.sample.scenes
    async with Client(build_server(four.settings)) as c:
        result = await call_ok(c, "summarize_video", {"kind": "chapters", "asset_id": four.ids["asset_id"]})
        data = result.structured_content
        assert data
        chapters = data["parsed"]["chapters"]
        assert [(ch["start_sec"], ch["end_sec"]) for ch in chapters] == [(s.start, s.end) for s in scenes]
        for ch, scene in zip(chapters, scenes, strict=True):
            assert ch["summary"] == scene.narration
            assert ch["title"] != ch["summary"] and 1 <= len(ch["title"].split()) <= 6
            assert ch["title"].lower() in scene.narration.lower()
        assert len({ch["title"] for ch in chapters}) == len(chapters)
        assert "extractively" in text_of(result)

        summary = (
            await call_ok(c, "summarize_video", {"kind": "summary", "asset_id": four.ids["asset_id"]})
        ).structured_content
        assert summary
        text = summary["parsed"]["summary"]
        # Every scene, in order.
        positions = [text.find(s.narration) for s in scenes]
        assert -1 not in positions and positions == sorted(positions), text

        gist = (
            await call_ok(c, "summarize_video", {"kind": "gist", "asset_id": four.ids["asset_id"]})
        ).structured_content
        assert gist
        topics = gist["parsed"]["topics"]
        assert len(topics) == 4 and all(t not in [s.narration for s in scenes] for t in topics)
        assert all(tag.startswith("#") and " " not in tag for tag in gist["parsed"]["hashtags"])


CLASSES = [
    {"name": "Cooking", "prompts": ["cooking pasta in the kitchen", "boil water and stir the sauce"]},
    {"name": "Sports", "prompts": ["football goal"]},
]


async def test_classify_ratios_count_only_moments_that_match(four: Four) -> None:
    async with Client(build_server(four.settings)) as c:
        for extra in ({}, {"min_score": 0.3}):
            result = await call_ok(
                c,
                "classify_videos",
                {"index_id": four.ids["index_id"], "classes": CLASSES, "include_clips": True, **extra},
            )
            data = result.structured_content
            assert data
            (video,) = data["videos"]
            shares = {m["name"]: m["duration_ratio"] for m in video["classes"]}
            # The truth: each class is one scene of four.
            assert shares == {"Cooking": 0.25, "Sports": 0.25}, (extra, shares)
            cooking = next(m for m in video["classes"] if m["name"] == "Cooking")
            assert {(clip["start"], clip["end"]) for clip in cooking["clips"]} == {(6.0, 12.0)}
            assert "Cooking (25% of the video" in text_of(result)
            assert ("0.3" in data["counted"]) == bool(extra)
        strict = (
            await call_ok(
                c,
                "classify_videos",
                {"index_id": four.ids["index_id"], "classes": CLASSES, "min_score": 0.95},
            )
        ).structured_content
        assert strict and [m["name"] for v in strict["videos"] for m in v["classes"]] == ["Sports"]


async def _analyze_json(c: Client, four: Four, prompt: str, schema: dict[str, Any], **window: float) -> Any:
    result = await call_ok(
        c,
        "analyze_video",
        {"asset_id": four.ids["asset_id"], "prompt": prompt, "output_schema": schema, **window},
    )
    assert result.structured_content
    return result.structured_content["parsed"]


async def test_a_summary_field_covers_every_scene_whatever_the_prompt_matched(four: Four) -> None:
    # The agent got {"summary": "QUESTIONS?"}: one matched moment standing in for the video.
    scenes = four.sample.scenes
    summary = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
    async with Client(build_server(four.settings)) as c:
        parsed = await _analyze_json(
            c, four, "What does it cover, from the sales report to the football final?", summary
        )
        positions = [parsed["summary"].find(s.narration) for s in scenes]
        assert -1 not in positions and positions == sorted(positions), parsed
        # A window keeps the summary to the scenes inside it.
        inside = await _analyze_json(c, four, "Summarize this part.", summary, start_time=6, end_time=18)
        assert [s.index for s in scenes if s.narration in inside["summary"]] == [1, 2], inside


async def test_each_field_gets_only_evidence_that_fits_it(four: Four) -> None:
    schema = {
        "type": "object",
        "properties": {
            "revenue_growth_percent": {"type": "number"},
            "launch_date": {"type": "string", "description": "When the product launches"},
            "headline": {"type": "string"},
            "answer": {"type": "string"},
            "speaker_name": {"type": "string"},
            "mentions_pasta": {"type": "boolean"},
            "mentions_pizza": {"type": "boolean"},
            "is_outdoors": {"type": ["boolean", "null"]},
            "category": {"type": "string", "enum": ["travel", "sports", "sales"]},
            "mood": {"type": "string", "enum": ["happy", "sad"]},
            "topics": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["revenue_growth_percent", "launch_date", "headline", "is_outdoors"],
    }
    async with Client(build_server(four.settings)) as c:
        parsed = await _analyze_json(c, four, "How much did quarterly sales revenue grow?", schema)
    jsonschema.validate(parsed, schema)
    assert parsed["revenue_growth_percent"] == 20  # "grew twenty percent"
    # Nothing in the video is a date, names a speaker or says whether it is outdoors: not invented.
    assert "not found" in parsed["launch_date"] and "speaker_name" not in parsed
    assert parsed["is_outdoors"] is None
    # Mentions are answered from every text of the video, either way.
    assert parsed["mentions_pasta"] is True and parsed["mentions_pizza"] is False
    # An enum takes a listed value the matching moment names ("sports" is said, but elsewhere), or none.
    assert parsed["category"] == "sales" and "mood" not in parsed
    assert "revenue grew twenty percent" in parsed["answer"]
    strings = [v for v in parsed.values() if isinstance(v, str)]
    assert len(strings) == len(set(strings)), parsed  # never one quote copied into several fields
    assert parsed["topics"] == _titles_of(parsed["topics"], four)


def _titles_of(topics: list[str], four: Four) -> list[str]:
    """The topics, checked to be one short phrase per scene, in scene order, each taken from it."""
    assert len(topics) == len(four.sample.scenes)
    for topic, scene in zip(topics, four.sample.scenes, strict=True):
        assert topic.lower() in scene.narration.lower() and len(topic.split()) <= 6
    return topics


async def test_a_schema_built_from_defs_is_filled_through_its_refs(four: Four) -> None:
    # Before: the analyze filler read a `$ref` as a string field and answered strings for chapters.
    chapter = {
        "type": "object",
        "properties": {"start_sec": {"type": "number"}, "title": {"type": "string"}},
        "required": ["start_sec", "title"],
    }
    schema = {
        "$defs": {"chapter": chapter},
        "type": "object",
        "properties": {"chapters": {"type": "array", "items": {"$ref": "#/$defs/chapter"}}},
        "required": ["chapters"],
    }
    async with Client(build_server(four.settings)) as c:
        parsed = await _analyze_json(c, four, "Split the video into chapters.", schema)
    jsonschema.validate(parsed, schema)
    assert [ch["start_sec"] for ch in parsed["chapters"]] == [s.start for s in four.sample.scenes]


async def test_highlights_are_real_moments_in_order(four: Four) -> None:
    async with Client(build_server(four.settings)) as c:
        data = (
            await call_ok(c, "summarize_video", {"kind": "highlights", "asset_id": four.ids["asset_id"]})
        ).structured_content
    assert data
    highlights = data["parsed"]["highlights"]
    cues = four.sample.subtitles
    # One per scene, at the sentence itself (not the whole scene), saying what happens there.
    assert [(h["start_sec"], h["end_sec"]) for h in highlights] == [(q.start, q.end) for q in cues]
    assert [h["highlight"] for h in highlights] == [q.text for q in cues]


async def test_a_chapters_field_walks_the_video_in_time_order_whatever_matched(four: Four) -> None:
    schema = {
        "type": "object",
        "properties": {
            "chapters": {
                "type": "array",
                "items": {"type": "object", "properties": {"start_sec": {"type": "number"}}},
            }
        },
    }
    async with Client(build_server(four.settings)) as c:
        parsed = await _analyze_json(c, four, "The football final, then the quarterly sales?", schema)
    assert [ch["start_sec"] for ch in parsed["chapters"]] == [s.start for s in four.sample.scenes]
