"""Resources, templates, completions and prompts through a real client, in both eras."""

from __future__ import annotations

import json

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference, TextContent, TextResourceContents

from tests.server.conftest import MODES, World
from tl_mcp.server import build_server
from tl_mcp.server.prompts import PERSONAS

pytestmark = pytest.mark.anyio

PROMPTS = {
    "corpus_overview",
    "extract_entities",
    "find_moments",
    "organize_collection",
    "track_entity",
    "enrich_content",
}


async def _read(c: Client, uri: str) -> str:
    result = await c.read_resource(uri)
    block = result.contents[0]
    assert isinstance(block, TextResourceContents)
    return block.text


@pytest.mark.parametrize("mode", MODES)
async def test_resources_and_templates(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        static = {str(r.uri) for r in (await c.list_resources()).resources}
        assert static == {
            "twelvelabs://guide",
            "twelvelabs://indexes",
            "twelvelabs://knowledge-stores",
            "ui://tl-mcp/moments",
        }
        templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        assert templates == {
            "twelvelabs://indexes/{index_id}",
            "twelvelabs://indexes/{index_id}/videos/{video_id}",
            "twelvelabs://knowledge-stores/{knowledge_store_id}",
            "twelvelabs://thumbnails/{media_id}/{seconds}",
        }
        guide = await _read(c, "twelvelabs://guide")
        for must in ("upload_asset", "wait_for_task", "continue_session", "job_id", "search_videos"):
            assert must in guide
        indexes = json.loads(await _read(c, "twelvelabs://indexes"))
        assert world.index_id in [i["_id"] if "_id" in i else i["id"] for i in indexes["indexes"]]
        one = json.loads(await _read(c, f"twelvelabs://indexes/{world.index_id}"))
        assert [v.get("_id", v.get("id")) for v in one["videos"]] == [world.video_id]
        video = json.loads(await _read(c, f"twelvelabs://indexes/{world.index_id}/videos/{world.video_id}"))
        assert "Fresh apples" in json.dumps(video)
        stores = json.loads(await _read(c, "twelvelabs://knowledge-stores"))
        assert world.knowledge_store_id in json.dumps(stores)
        store = json.loads(await _read(c, f"twelvelabs://knowledge-stores/{world.knowledge_store_id}"))
        assert world.item_id in json.dumps(store["items"])
        with pytest.raises(Exception, match=r"404|not"):
            await c.read_resource(f"twelvelabs://indexes/{'0' * 24}")


@pytest.mark.parametrize("mode", MODES)
async def test_completions_offer_real_ids(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        ref = ResourceTemplateReference(type="ref/resource", uri="twelvelabs://indexes/{index_id}")
        done = await c.complete(ref, {"name": "index_id", "value": world.index_id[:4]})
        assert world.index_id in done.completion.values
        prompt_ref = PromptReference(type="ref/prompt", name="corpus_overview")
        stores = await c.complete(prompt_ref, {"name": "knowledge_store_id", "value": ""})
        assert world.knowledge_store_id in stores.completion.values


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_carry_store_and_persona(world: World, mode: str) -> None:
    async with Client(build_server(world.settings()), mode=mode) as c:
        prompts = {p.name: p for p in (await c.list_prompts()).prompts}
        assert set(prompts) == PROMPTS
        for name, prompt in prompts.items():
            args = {"knowledge_store_id": world.knowledge_store_id, "persona": "compliance"}
            if name == "find_moments":
                args["description"] = "someone names a price"
            if name == "track_entity":
                args["entity"] = "apples"
            got = await c.get_prompt(name, args)
            text = got.messages[0].content
            assert isinstance(text, TextContent)
            assert world.knowledge_store_id in text.text and PERSONAS["compliance"] in text.text, name
            assert "create_response" in text.text and "continue_session" in text.text
            arg_names = {a.name for a in prompt.arguments or []}
            assert {"knowledge_store_id", "persona"} <= arg_names
        plain = await c.get_prompt("corpus_overview", {"knowledge_store_id": world.knowledge_store_id})
        content = plain.messages[0].content
        assert isinstance(content, TextContent) and "instructions=" not in content.text
