"""The documented limits of a Jockey request are enforced by the client before anything is sent."""

from __future__ import annotations

import pytest

from tl_mcp.api import ResponseRequest
from tl_mcp.api.models import MAX_INSTRUCTIONS_CHARS


def test_instructions_longer_than_the_documented_limit_are_refused_with_the_limit_named() -> None:
    assert MAX_INSTRUCTIONS_CHARS == 2_000  # seed 001: "<=2000 characters"; the snapshot states none
    at_limit = ResponseRequest(knowledge_store_id="ks_1", input="Hi?", instructions="x" * 2_000)  # type: ignore[arg-type]
    assert at_limit.to_wire(stream=False)["instructions"] == "x" * 2_000
    with pytest.raises(ValueError, match=r"2,001 characters long; TwelveLabs accepts at most 2,000"):
        ResponseRequest(knowledge_store_id="ks_1", input="Hi?", instructions="x" * 2_001)  # type: ignore[arg-type]
