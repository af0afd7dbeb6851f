"""Which spec operations the sandbox implements, and proof that every operation the MCP tools call was
answered, and validated by the global guard (``conformance.SpecGuard``), somewhere in this test run.

Named ``test_zz_…`` so it runs after the other sandbox modules, whose traffic it inspects.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from tests.openapi_spec import all_operations, match_path
from tests.sandbox.conformance import RECORDER, SDK_136_OPERATIONS
from tl_mcp.sandbox.app import API_PREFIX, create_app
from tl_mcp.sandbox.config import SandboxConfig

# What tl_mcp.api (and so the MCP tools) calls, grouped as DESIGN §5 lists them. SDK 1.3.6 additions
# (`GET /assets/{asset_id}/transcription`, `POST /analyze/tasks/{task_id}/cancel`) are outside the snapshot.
TOOL_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        # assets and multipart uploads
        ("POST", "/assets"),
        ("GET", "/assets"),
        ("GET", "/assets/{asset_id}"),
        ("DELETE", "/assets/{asset_id}"),
        ("GET", "/assets/{asset_id}/indexed-assets"),
        ("POST", "/assets/multipart-uploads"),
        ("GET", "/assets/multipart-uploads/{upload_id}"),
        ("POST", "/assets/multipart-uploads/{upload_id}"),
        ("POST", "/assets/multipart-uploads/{upload_id}/presigned-urls"),
        # indexes, indexed assets, videos, tasks
        ("POST", "/indexes"),
        ("GET", "/indexes"),
        ("GET", "/indexes/{index-id}"),
        ("PUT", "/indexes/{index-id}"),
        ("DELETE", "/indexes/{index-id}"),
        ("POST", "/indexes/{index-id}/indexed-assets"),
        ("GET", "/indexes/{index-id}/indexed-assets"),
        ("GET", "/indexes/{index-id}/indexed-assets/{indexed-asset-id}"),
        ("DELETE", "/indexes/{index-id}/indexed-assets/{indexed-asset-id}"),
        ("GET", "/indexes/{index-id}/videos"),
        ("GET", "/indexes/{index-id}/videos/{video-id}"),
        ("DELETE", "/indexes/{index-id}/videos/{video-id}"),
        ("POST", "/tasks"),
        ("GET", "/tasks"),
        ("GET", "/tasks/{task_id}"),
        # search and embeddings
        ("POST", "/search"),
        ("GET", "/search/{page-token}"),
        ("POST", "/embed"),
        ("POST", "/embed-v2/tasks"),
        ("GET", "/embed-v2/tasks/{task_id}"),
        # analyze: sync and NDJSON stream share POST /analyze
        ("POST", "/analyze"),
        ("POST", "/analyze/tasks"),
        ("GET", "/analyze/tasks"),
        ("GET", "/analyze/tasks/{task_id}"),
        ("POST", "/analyze/batches"),
        ("GET", "/analyze/batches/{batch_id}"),
        ("GET", "/analyze/batches/{batch_id}/results"),
        ("POST", "/analyze/batches/{batch_id}/cancel"),
        # knowledge stores, items, item collections, search; Jockey
        ("POST", "/knowledge-stores"),
        ("GET", "/knowledge-stores"),
        ("GET", "/knowledge-stores/{knowledge_store_id}"),
        ("PATCH", "/knowledge-stores/{knowledge_store_id}"),
        ("DELETE", "/knowledge-stores/{knowledge_store_id}"),
        ("POST", "/knowledge-stores/{knowledge_store_id}/items"),
        ("GET", "/knowledge-stores/{knowledge_store_id}/items"),
        ("GET", "/knowledge-stores/{knowledge_store_id}/items/{item_id}"),
        ("DELETE", "/knowledge-stores/{knowledge_store_id}/items/{item_id}"),
        ("POST", "/knowledge-stores/{knowledge_store_id}/item-collections"),
        ("GET", "/knowledge-stores/{knowledge_store_id}/item-collections"),
        ("POST", "/knowledge-stores/{knowledge_store_id}/search"),
        ("POST", "/responses"),
        # entity collections, entities, their assets; the entities of an asset
        ("POST", "/entity-collections"),
        ("GET", "/entity-collections"),
        ("PATCH", "/entity-collections/{entity_collection_id}"),
        ("DELETE", "/entity-collections/{entity_collection_id}"),
        ("POST", "/entity-collections/{entity_collection_id}/entities"),
        ("GET", "/entity-collections/{entity_collection_id}/entities"),
        ("GET", "/entity-collections/{entity_collection_id}/entities/{entity_id}"),
        ("PATCH", "/entity-collections/{entity_collection_id}/entities/{entity_id}"),
        ("DELETE", "/entity-collections/{entity_collection_id}/entities/{entity_id}"),
        ("POST", "/entity-collections/{entity_collection_id}/entities/{entity_id}/assets"),
        ("DELETE", "/entity-collections/{entity_collection_id}/entities/{entity_id}/assets"),
        ("GET", "/assets/{asset_id}/entities"),
    }
)


def _implemented(tmp_path: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(spec operations the app routes, routes outside the spec) from the app's own route table."""
    app = create_app(SandboxConfig(data_dir=tmp_path, analyzers="none"))
    in_spec: set[tuple[str, str]] = set()
    outside: set[tuple[str, str]] = set()
    spec_ops = set(all_operations())
    for mount in app.routes:
        assert isinstance(mount, Mount) and mount.path == API_PREFIX, mount
        for route in mount.routes:
            assert isinstance(route, Route)
            concrete = re.sub(r"\{[^}]+\}", "x1", route.path)
            template = match_path(concrete)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                if template is not None and (method.lower(), template) in spec_ops:
                    in_spec.add((method, template))
                else:
                    outside.add((method, route.path))
    return in_spec, outside


def _report(in_spec: set[tuple[str, str]], outside: set[tuple[str, str]]) -> str:
    spec_ops = {(m.upper(), p) for m, p in all_operations()}
    missing = sorted(spec_ops - in_spec, key=lambda op: (op[1], op[0]))
    families = sorted({p.split("/")[1] for _, p in missing})
    lines = [
        f"spec operations: {len(spec_ops)}; the sandbox implements {len(in_spec)}",
        f"not implemented ({len(missing)}), by family: {', '.join(families)}",
        *(f"  {m} {p}" for m, p in missing),
        f"sandbox routes outside the snapshot ({len(outside)}):",
        *(f"  {m} {p}" for m, p in sorted(outside, key=lambda op: (op[1], op[0]))),
    ]
    return "\n".join(lines)


def test_tool_operations_are_implemented(tmp_path: Path) -> None:
    in_spec, outside = _implemented(tmp_path)
    spec_ops = {(m.upper(), p) for m, p in all_operations()}
    assert spec_ops >= TOOL_OPERATIONS, sorted(TOOL_OPERATIONS - spec_ops)
    missing = sorted(TOOL_OPERATIONS - in_spec)
    assert not missing, f"the sandbox lacks operations the tools call: {missing}\n{_report(in_spec, outside)}"
    # The SDK 1.3.6 additions are served although the snapshot lacks them.
    assert outside >= SDK_136_OPERATIONS, sorted(SDK_136_OPERATIONS - outside)


def _whole_sandbox_run(session: pytest.Session) -> bool:
    here = Path(__file__).parent
    modules = {p.name for p in here.glob("test_*.py")}
    ran = {Path(str(item.fspath)).name for item in session.items if Path(str(item.fspath)).parent == here}
    deselected = session.testscollected != len(session.items)
    return modules <= ran and not deselected


def test_tool_operations_were_exercised_and_validated(request: pytest.FixtureRequest) -> None:
    if not _whole_sandbox_run(request.session):
        pytest.skip("needs the whole tests/sandbox run (it inspects the traffic of every sandbox test)")
    answered = {(m, t) for (m, t, status) in RECORDER.validated if 200 <= status < 300}
    missing = sorted(TOOL_OPERATIONS - answered, key=lambda op: (op[1], op[0]))
    assert not missing, (
        "no test in tests/sandbox got a validated 2xx answer from these operations the tools call:\n"
        + "\n".join(f"  {m} {p}" for m, p in missing)
    )
    served = {(m, p) for (m, p), n in RECORDER.outside_spec.items() if n}
    assert served >= SDK_136_OPERATIONS, sorted(SDK_136_OPERATIONS - served)
