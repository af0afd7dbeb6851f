"""Answerer choice and the grounding rules' number reading (a model may write in digits what the
evidence says in words)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tl_mcp.config import ConfigError, Settings
from tl_mcp.sandbox.answerers import Made, answerer_for
from tl_mcp.sandbox.answerers.grounding import _numbers
from tl_mcp.sandbox.config import SandboxConfig


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("A return ticket costs thirty five euros.", {"35"}),
        ("Bake it at two hundred twenty degrees.", {"220"}),
        ("Two hundred and five people came.", {"205"}),
        ("One thousand two hundred kilometres", {"1200"}),
        ("It costs $2 per pound, or 1.50 a bag.", {"2", "1.5"}),
        ("Revenue grew twenty-five percent in 2026.", {"25", "2026"}),
        ("Chapter three, then chapter 4.", {"3", "4"}),
    ],
)
def test_numbers_in_digits_and_words(text: str, numbers: set[str]) -> None:
    assert _numbers(text) == numbers


def test_an_answerer_that_cannot_run_here_is_extractive_and_says_why(tmp_path: Path) -> None:
    def made(**config: object) -> Made:
        return answerer_for(SandboxConfig(data_dir=tmp_path, **config)).made

    assert made(answerer="extractive") == Made("extractive")
    assert made(answerer="auto", llm_model=None, llm_url=None) == Made("extractive")
    assert made(answerer="local", llm_model=None).note == (
        "TL_MCP_SANDBOX_ANSWERER=local but TL_MCP_SANDBOX_LLM_MODEL is not set"
    )
    assert made(answerer="endpoint", llm_url=None).note == (
        "TL_MCP_SANDBOX_ANSWERER=endpoint but TL_MCP_SANDBOX_LLM_URL is not set"
    )
    url = made(llm_url="http://user:secret@127.0.0.1:11434/v1", llm_name="qwen2.5:1.5b")
    assert url == Made("endpoint", "qwen2.5:1.5b at http://127.0.0.1:11434")  # never the credentials
    if importlib.util.find_spec("xllamacpp") is None:
        note = made(llm_model=tmp_path / "model.gguf").note
        assert note is not None and "xllamacpp is not installed (pip install 'tl-mcp[llm]')" in note


def test_a_model_url_that_is_not_http_is_refused_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TL_MCP_SANDBOX_LLM_URL must be an http\(s\) URL"):
        SandboxConfig(data_dir=tmp_path, llm_url="localhost:11434")
    with pytest.raises(ConfigError, match="TL_MCP_SANDBOX_LLM_URL / --sandbox-llm-url"):
        Settings.from_sources(env={"TL_MCP_SANDBOX_LLM_URL": "localhost:11434"})


def test_a_refused_model_url_is_never_echoed_as_it_may_carry_credentials(tmp_path: Path) -> None:
    # No scheme, so refused; the key in it must not reach the error (stderr at start-up, logs).
    url = "ollama:sk-SECRET123@127.0.0.1:11434/v1"
    with pytest.raises(ValueError) as sandbox_error:
        SandboxConfig(data_dir=tmp_path, llm_url=url)
    with pytest.raises(ConfigError) as settings_error:
        Settings.from_sources(env={"TL_MCP_SANDBOX_LLM_URL": url})
    for error in (sandbox_error.value, settings_error.value):
        assert "SECRET123" not in str(error) and "SECRET123" not in repr(error)
        assert "http://127.0.0.1:11434/v1" in str(error)  # still says what a good value looks like
