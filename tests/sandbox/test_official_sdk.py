"""The official ``twelvelabs`` 1.3.6 SDK, pointed at the embedded sandbox, runs the whole flow: index, upload,
index the asset, search, knowledge store + item, a streamed Jockey response, entities (collections,
entities, their assets, entity search), analysis tasks and batches. Where the SDK's models and the
sandbox disagree the SDK silently drops events or raises ``ValidationError``, so every step checks that
nothing was lost, not just that a call returned."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest
from twelvelabs import TwelveLabs
from twelvelabs.core.api_error import ApiError
from twelvelabs.entity_collections.entities import EntitiesCreateBulkRequestEntitiesItem
from twelvelabs.errors import BadRequestError, ConflictError, NotFoundError
from twelvelabs.indexes import IndexesCreateRequestModelsItem
from twelvelabs.types import (
    AsyncResponseFormat,
    BatchDefaults,
    BatchItemRequest,
    BatchPrompt,
    BatchVideoContext,
    EnrichmentConfig_Description,
    EnrichmentConfig_JsonSchema,
    IngestionConfig,
    ItemIdFilter,
    KnowledgeStoreSearchQuery,
    ResponseInputItem,
    ResponseSelection,
    SearchKnowledgeStoreFilter,
    SearchKnowledgeStoreHit_Video,
    SearchKnowledgeStoreOptions,
    SegmentDefinition,
    SegmentField,
    SegmentFieldItems,
    TimeArrayItemField,
    VideoContext_AssetId,
    VideoSearchOptions,
)

from tests.sandbox.conftest import Media
from tl_mcp.sandbox.embedded import EmbeddedSandbox

T = TypeVar("T")


def _poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s; last value: {value!r}")
        time.sleep(0.05)


@dataclass
class Flow:
    sb: EmbeddedSandbox
    client: TwelveLabs
    media: Media
    index_id: str
    asset_id: str
    indexed_asset_id: str
    store_id: str
    item_id: str


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, media: Media) -> Iterator[Flow]:
    """Every step of the flow through the SDK; each test below then inspects one part of it."""
    mp = pytest.MonkeyPatch()
    mp.delenv("TWELVELABS_BASE_URL", raising=False)  # the SDK lets this override base_url
    sb = EmbeddedSandbox.start_in_thread(tmp_path_factory.mktemp("sdk"), analyzers="none")
    try:
        client = TwelveLabs(api_key=sb.api_key, base_url=sb.base_url, timeout=30.0)
        index = client.indexes.create(
            index_name="sdk-flow",
            models=[
                IndexesCreateRequestModelsItem(model_name="marengo3.0", model_options=["visual", "audio"])
            ],
            addons=["thumbnail"],
        )
        assert index.id
        with media.video.path.open("rb") as fh:
            asset = client.assets.create(method="direct", file=fh, filename="clip.mp4")
        assert asset.id
        ready = _poll(lambda: client.assets.retrieve(asset.id or ""), lambda a: a.status != "processing")
        assert ready.status == "ready", ready
        created = client.indexes.indexed_assets.create(index.id, asset_id=asset.id)
        assert created.id
        indexed = _poll(
            lambda: client.indexes.indexed_assets.retrieve(index.id or "", created.id or ""),
            lambda ia: ia.status in ("ready", "failed"),
        )
        assert indexed.status == "ready", indexed
        store = client.knowledge_stores.create(name="sdk-store", metadata={"team": "qa", "year": 2026})
        assert store.id and store.metadata == {"team": "qa", "year": 2026}
        item = client.knowledge_store_items.create(store.id, asset_id=asset.id, asset_type="video")
        assert item.id and item.status == "queued"
        done = _poll(
            lambda: client.knowledge_store_items.retrieve(store.id or "", item.id or ""),
            lambda it: it.status in ("ready", "failed"),
        )
        assert done.status == "ready", done
        yield Flow(sb, client, media, index.id, asset.id, created.id, store.id, item.id)
    finally:
        sb.stop()
        mp.undo()


def test_index_and_asset_objects_parse(flow: Flow) -> None:
    client = flow.client
    index = client.indexes.retrieve(flow.index_id)
    assert index.index_name == "sdk-flow" and index.models and index.models[0].model_name == "marengo3.0"
    asset = client.assets.retrieve(flow.asset_id)
    assert asset.filename == "clip.mp4" and asset.status == "ready"
    listed = list(client.indexes.indexed_assets.list(flow.index_id))
    assert [ia.id for ia in listed] == [flow.indexed_asset_id]
    assert listed[0].system_metadata is not None and listed[0].system_metadata.duration
    with pytest.raises(NotFoundError):
        client.assets.retrieve("0" * 24)


def test_search_finds_the_subtitle_with_its_time(flow: Flow) -> None:
    cue = flow.media.video.subtitles[1]
    hits = list(
        flow.client.search.query(
            index_id=flow.index_id, query_text=cue.text, search_options=["visual", "audio"]
        )
    )
    assert hits, "the SDK returned no search results"
    top = hits[0]
    assert top.video_id == flow.indexed_asset_id and top.rank == 1
    assert top.start is not None and top.end is not None
    assert top.start <= cue.start + 0.5 and top.end >= cue.end - 0.5


def test_knowledge_store_objects_and_search(flow: Flow) -> None:
    client = flow.client
    store = client.knowledge_stores.retrieve(flow.store_id)
    assert store.name == "sdk-store" and store.item_count == 1
    items = list(client.knowledge_store_items.list(flow.store_id))
    assert [i.id for i in items] == [flow.item_id] and items[0].status == "ready"
    assert items[0].system_metadata is not None
    cue = flow.media.video.subtitles[1]
    # Subtitles are speech-track text, so they match under `audio`; the default is `visual` only.
    found = client.knowledge_stores.search(
        flow.store_id,
        query=KnowledgeStoreSearchQuery(text=cue.text),
        search_options=SearchKnowledgeStoreOptions(video=VideoSearchOptions(modalities=["visual", "audio"])),
        page_size=1,
    )
    assert found.data and found.next_page_token, found
    top = found.data[0]
    assert top.item_id == flow.item_id  # type: ignore[union-attr]
    rest = client.knowledge_stores.search(
        flow.store_id, query=KnowledgeStoreSearchQuery(text=cue.text), page_token=found.next_page_token
    )
    assert rest.data and rest.data[0].rank == 2  # type: ignore[union-attr]


def test_streamed_jockey_response_arrives_whole(flow: Flow) -> None:
    cue = flow.media.video.subtitles[1]
    events = list(
        flow.client.responses.create_stream(
            knowledge_store_id=flow.store_id,
            input=[ResponseInputItem(type="message", role="user", content=cue.text)],
            include=["intermediate_outputs"],
        )
    )
    # The SDK drops every frame its models reject, so a gap in the numbering means a malformed event.
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.function_call_arguments.done" in types
    text = "".join(getattr(e, "delta", "") for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert final is not None and final.status == "completed" and final.session_id
    answer = [o for o in final.output if o.type == "message" and o.phase in (None, "final_answer")]
    assert len(answer) == 1 and answer[0].content
    part = answer[0].content[0]
    assert part.text and part.text in text
    assert part.annotations, "the answer cites nothing"
    for ann in part.annotations:
        assert ann.item_id == flow.item_id
        assert part.text[ann.start_index : ann.end_index + 1].startswith("[")
    assert final.usage is not None and final.usage.output_tokens > 0


def test_non_streamed_follow_up_in_the_same_session(flow: Flow) -> None:
    cue = flow.media.video.subtitles[1]
    first = flow.client.responses.create(
        knowledge_store_id=flow.store_id,
        input=[ResponseInputItem(type="message", role="user", content=cue.text)],
    )
    assert first.status == "completed" and first.session_id and first.incomplete_details is None
    follow = flow.client.responses.create(
        knowledge_store_id=flow.store_id,
        session_id=first.session_id,
        input=[ResponseInputItem(type="message", role="user", content="and when is that said?")],
    )
    assert follow.session_id == first.session_id
    other = flow.client.knowledge_stores.create(name="sdk-other")
    with pytest.raises(BadRequestError):
        flow.client.responses.create(
            knowledge_store_id=other.id or "",
            session_id=first.session_id,
            input=[ResponseInputItem(type="message", role="user", content="hi")],
        )


def test_collections_enrichment_and_grouped_search_through_the_sdk(flow: Flow) -> None:
    client, store_id = flow.client, flow.store_id
    described = IngestionConfig(enrichment_config=EnrichmentConfig_Description(description="Who speaks."))
    enriched = client.knowledge_stores.create(name="sdk-enriched", ingestion_config=described)
    assert isinstance(enriched.ingestion_config, IngestionConfig)
    assert isinstance(enriched.ingestion_config.enrichment_config, EnrichmentConfig_Description)
    schema = {"type": "object", "properties": {"who": {"type": "string", "description": "The speaker."}}}
    typed = client.knowledge_stores.create(
        name="sdk-typed",
        ingestion_config=IngestionConfig(enrichment_config=EnrichmentConfig_JsonSchema(json_schema=schema)),
    )
    assert isinstance(typed.ingestion_config, IngestionConfig)
    assert isinstance(typed.ingestion_config.enrichment_config, EnrichmentConfig_JsonSchema)

    collections = client.knowledge_store_item_collections
    made = collections.create(store_id, name="sdk-collection", metadata={"rank": 1, "tags": ["a"]})
    assert made.id and made.id.startswith("ksic_") and made.member_count == 0
    added = collections.add_items(store_id, made.id, item_ids=[flow.item_id])
    assert added.member_count == 1 and added.metadata == {"rank": 1, "tags": ["a"]}
    assert [i.id for i in collections.list_items(store_id, made.id)] == [flow.item_id]
    assert made.id in [c.id for c in collections.list(store_id)]

    cue = flow.media.video.subtitles[1]
    found = client.knowledge_stores.search(
        store_id,
        query=KnowledgeStoreSearchQuery(text=cue.text),
        filter=SearchKnowledgeStoreFilter(item_id=ItemIdFilter(in_=[flow.item_id])),
        search_options=SearchKnowledgeStoreOptions(video=VideoSearchOptions(modalities=["visual", "audio"])),
        group_by="item",
        include_metadata=True,
    )
    assert len(found.data) == 1 and isinstance(found.data[0], SearchKnowledgeStoreHit_Video)
    hit = found.data[0]
    assert hit.item_id == flow.item_id and len(hit.matches) >= 1
    assert hit.metadata is not None and hit.metadata.system is not None

    answer = client.responses.create(
        knowledge_store_id=store_id,
        input=[ResponseInputItem(type="message", role="user", content=f"In {{{{sel:0}}}}: {cue.text}")],
        selections=[ResponseSelection(kind="collection", id=made.id)],
    )
    assert answer.status == "completed"
    collections.remove_items(store_id, made.id, item_ids=[flow.item_id])
    assert collections.retrieve(store_id, made.id).member_count == 0
    collections.delete(store_id, made.id)
    # The SDK types only 400 for this route; a 404 arrives as its generic ApiError.
    with pytest.raises(ApiError) as gone:
        collections.retrieve(store_id, made.id)
    assert gone.value.status_code == 404


def test_entities_collections_assets_and_entity_search(flow: Flow) -> None:
    client, scene = flow.client, flow.media.video.scenes[1]
    with flow.media.images[1].open("rb") as fh:
        picture = client.assets.create(method="direct", file=fh, filename="apples.png")
    assert picture.id
    _poll(lambda: client.assets.retrieve(picture.id or ""), lambda a: a.status == "ready")
    collection = client.entity_collections.create(name="sdk-cast", description="people")
    assert collection.id and collection.name == "sdk-cast" and collection.created_at is not None
    assert [c.id for c in client.entity_collections.list(name="sdk-cast")] == [collection.id]
    assert client.entity_collections.update(collection.id, name="sdk-crew").name == "sdk-crew"
    entity = client.entity_collections.entities.create(
        collection.id, name="Apples", asset_ids=[picture.id], metadata={"aisle": 3, "fresh": True}
    )
    assert entity.id and entity.status == "ready" and entity.asset_ids == [picture.id]
    assert entity.metadata == {"aisle": 3, "fresh": True} and entity.entity_collection_id == collection.id
    assert client.entity_collections.entities.retrieve(collection.id, entity.id) == entity
    listed = list(client.entity_collections.entities.list(collection.id, status="ready", sort_by="name"))
    assert [e.id for e in listed] == [entity.id]
    assert [e.id for e in client.entity_collections.entities.list_by_asset(picture.id)] == [entity.id]
    renamed = client.entity_collections.entities.update(collection.id, entity.id, name="Fresh apples")
    assert renamed.name == "Fresh apples" and renamed.metadata == entity.metadata
    grown = client.entity_collections.entities.create_assets(
        collection.id, entity.id, asset_ids=[flow.asset_id]
    )
    assert grown.asset_ids == [picture.id, flow.asset_id]
    shrunk = client.entity_collections.entities.delete_assets(
        collection.id, entity.id, asset_ids=[flow.asset_id]
    )
    assert shrunk.asset_ids == [picture.id]
    bulk = client.entity_collections.entities.create_bulk(
        collection.id,
        entities=[
            EntitiesCreateBulkRequestEntitiesItem(name="Pears", asset_ids=[picture.id]),
            EntitiesCreateBulkRequestEntitiesItem(name="Ghost", asset_ids=["0" * 24]),
        ],
    )
    assert bulk.success_count == 1 and bulk.failed_count == 1
    assert bulk.errors and bulk.errors[0].entity_index == 1 and bulk.errors[0].entity_name == "Ghost"

    hits = list(
        client.search.query(index_id=flow.index_id, query_text=f"<@{entity.id}>", search_options=["visual"])
    )
    assert hits and hits[0].video_id == flow.indexed_asset_id
    assert hits[0].start is not None and hits[0].end is not None
    assert hits[0].start >= scene.start - 0.5 and hits[0].end <= scene.end + 0.5
    with pytest.raises(BadRequestError):
        list(
            client.search.query(
                index_id=flow.index_id, query_text=f"<@{'0' * 24}>", search_options=["visual"]
            )
        )

    client.entity_collections.entities.delete(collection.id, entity.id)
    # A gone id is 404 `resource_not_exist`, as everywhere in the sandbox (api doc §15 #7: the general docs
    # say 404; these operations' specs list only 400, so the SDK raises its untyped ApiError for it).
    with pytest.raises(ApiError) as gone:
        client.entity_collections.entities.retrieve(collection.id, entity.id)
    assert gone.value.status_code == 404 and gone.value.body["code"] == "resource_not_exist"
    client.entity_collections.delete(collection.id)
    with pytest.raises(ApiError) as gone:
        client.entity_collections.retrieve(collection.id)
    assert gone.value.status_code == 404


def test_analysis_task_with_time_array_segments_parses(flow: Flow) -> None:
    client = flow.client
    lines = SegmentField(
        name="lines",
        type="time_array",
        description="each line said",
        items=SegmentFieldItems(
            type="object", fields=[TimeArrayItemField(name="quote", type="string", description="the words")]
        ),
    )
    created = client.analyze_async.tasks.create(
        video=VideoContext_AssetId(asset_id=flow.asset_id),
        model_name="pegasus1.6",
        analysis_mode="time_based_metadata",
        max_tokens="unlimited",
        custom_id="sdk-segments",
        response_format=AsyncResponseFormat(
            type="segment_definitions",
            segment_time_format="hh:mm:ss.fff",
            segment_definitions=[SegmentDefinition(id="apples", description="apples price", fields=[lines])],
        ),
    )
    assert created.task_id and created.status == "queued"
    task = _poll(
        lambda: client.analyze_async.tasks.retrieve(created.task_id),
        lambda t: t.status in ("ready", "failed", "canceled"),
    )
    assert task.status == "ready" and task.result is not None and task.custom_id == "sdk-segments"
    assert task.request_params is not None and task.request_params.max_tokens == "unlimited"
    (segment,) = json.loads(task.result.data)["apples"]
    cue = flow.media.video.subtitles[1]
    assert (segment["start_time"], segment["end_time"]) == ("00:00:06.000", "00:00:12.000")
    assert segment["metadata"]["lines"] == [
        {"start_time": f"00:00:0{cue.start:.3f}", "end_time": f"00:00:{cue.end:06.3f}", "quote": cue.text}
    ]
    listed = client.analyze_async.tasks.list(page_limit=50).data or []
    assert created.task_id in [t.task_id for t in listed]
    with pytest.raises(ConflictError):
        client.analyze_async.tasks.cancel(created.task_id)
    with pytest.raises(BadRequestError):
        client.analyze_async.tasks.create(
            video=VideoContext_AssetId(asset_id=flow.asset_id),
            model_name="pegasus1.5",
            analysis_mode="time_based_metadata",
            response_format=AsyncResponseFormat(
                type="segment_definitions",
                segment_definitions=[SegmentDefinition(id="apples", description="apples", fields=[lines])],
            ),
        )


def test_batch_with_a_failing_item_parses_item_by_item(flow: Flow) -> None:
    client = flow.client
    created = client.analyze_async.batches.create(
        model_name="pegasus1.5",
        analysis_mode="general",
        defaults=BatchDefaults(prompt=BatchPrompt(input_text="apples price")),
        requests=[
            BatchItemRequest(
                video=BatchVideoContext(type="asset_id", asset_id=flow.asset_id), custom_id="clip"
            ),
            BatchItemRequest(video=BatchVideoContext(type="asset_id", asset_id="0" * 24), custom_id="gone"),
        ],
    )
    assert created.total_items == 2 and [i.custom_id for i in created.items] == ["clip", "gone"]
    batch = _poll(
        lambda: client.analyze_async.batches.retrieve(created.batch_id), lambda b: b.status == "completed"
    )
    assert (batch.ready_items, batch.failed_items) == (1, 1)
    results = {r.custom_id: r for r in client.analyze_async.batches.results(created.batch_id)}
    # The SDK drops every line its model rejects, so both lines arriving means both parsed.
    assert set(results) == {"clip", "gone"}
    assert results["clip"].data is not None and "two dollars" in results["clip"].data.data
    assert results["gone"].error is not None and results["gone"].error.code == "asset_unavailable"
    assert created.batch_id in [b.batch_id for b in client.analyze_async.batches.list()]
    with pytest.raises(ConflictError):
        client.analyze_async.batches.cancel(created.batch_id)
