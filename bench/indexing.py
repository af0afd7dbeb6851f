"""Indexing benchmark. The measurement runs in a child process so its peak RSS is its own."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np


def decode_baseline(path: Path) -> dict[str, float]:
    """What any indexer must at least pay: decode every video frame and the audio to 16 kHz mono."""
    started = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            frames += 1
    video_s = time.perf_counter() - started
    started = time.perf_counter()
    samples = 0
    with av.open(str(path)) as container:
        if container.streams.audio:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    samples += out.samples
    audio_s = time.perf_counter() - started
    return {"video_decode_s": video_s, "audio_decode_s": audio_s, "frames": frames, "audio_samples": samples}


class _Timed:
    """Wraps one analyzer method to total the seconds spent in it (a per-stage breakdown)."""

    def __init__(self, inner: Any, method: str) -> None:
        self._inner = inner
        self._method = method
        self.seconds = 0.0
        self.calls = 0
        self.name = inner.name
        setattr(self, method, self._call)

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return getattr(self._inner, self._method)(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def __getattr__(self, item: str) -> Any:
        return getattr(self._inner, item)


def _peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: Path, selection: str, threads: int) -> dict[str, Any]:
    """Run inside the child: load analyzers, decode baseline, then the sandbox's real ingest."""
    from tl_mcp.sandbox.config import SandboxConfig
    from tl_mcp.sandbox.engine import Engine
    from tl_mcp.sandbox.perception import AnalyzerModels, load_analyzers
    from tl_mcp.sandbox.work.asset import analyze_asset

    rss_start = _peak_rss_mib()
    started = time.perf_counter()
    analyzers = load_analyzers(selection, models=AnalyzerModels(threads=threads))
    # Force the lazy model loads now so they are not billed to indexing.
    analyzers.text.embed(["warm up"], "query")
    if analyzers.ocr is not None:
        analyzers.ocr.read(np.zeros((32, 64, 3), dtype=np.uint8), 0.0)
    speech_loader = getattr(analyzers.speech, "_loaded", None)
    if callable(speech_loader):
        speech_loader()
    load_s = time.perf_counter() - started
    rss_loaded = _peak_rss_mib()

    stages = {
        "speech": _Timed(analyzers.speech, "transcribe") if analyzers.speech else None,
        "ocr": _Timed(analyzers.ocr, "read") if analyzers.ocr else None,
        "text_embed": _Timed(analyzers.text, "embed"),
        "image_embed": _Timed(analyzers.image, "embed_image"),
    }
    analyzers.speech, analyzers.ocr = stages["speech"], stages["ocr"]
    analyzers.text, analyzers.image = stages["text_embed"], stages["image_embed"]  # type: ignore[assignment]

    baseline = decode_baseline(path)
    with tempfile.TemporaryDirectory(prefix="tl-mcp-bench-") as tmp:
        engine = Engine(SandboxConfig(data_dir=Path(tmp), analyzers=selection), analyzers=analyzers)
        # What an upload pays before its asset is queued (every packet is demuxed to measure the duration).
        started = time.perf_counter()
        info = engine.probe(path)
        probe_s = time.perf_counter() - started
        started = time.perf_counter()
        analyze_asset(engine, "bench-asset", path, info)
        index_s = time.perf_counter() - started
        rows = engine.db.all(
            "SELECT source, COUNT(*) AS n FROM texts WHERE asset_id=? GROUP BY source", ("bench-asset",)
        )
        counts = {str(r["source"]): int(r["n"]) for r in rows}
        row = engine.db.one("SELECT COUNT(*) AS n FROM segments WHERE asset_id=?", ("bench-asset",))
        segments = int(row["n"]) if row is not None else 0
        engine.db.close()
    return {
        "analyzers": analyzers.describe(),
        "threads": threads,
        "duration_s": info.duration,
        "model_load_s": load_s,
        "probe_s": probe_s,
        "index_s": index_s,
        "segments": segments,
        "texts_by_source": counts,
        "baseline": baseline,
        "stages_s": {k: round(v.seconds, 3) for k, v in stages.items() if v is not None},
        "stage_calls": {k: v.calls for k, v in stages.items() if v is not None},
        "rss_start_mib": rss_start,
        "rss_after_load_mib": rss_loaded,
        "peak_rss_mib": _peak_rss_mib(),
    }


def run(path: Path, *, selection: str = "auto", threads: int = 2, timeout: float = 900.0) -> dict[str, Any]:
    """Measure in a fresh interpreter and return its JSON result with the derived ratios."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.indexing", str(path), selection, str(threads)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"indexing benchmark child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    duration = float(result["duration_s"] or 0.0)
    decode_s = result["baseline"]["video_decode_s"] + result["baseline"]["audio_decode_s"]
    result["index_x_realtime"] = duration / result["index_s"] if result["index_s"] else None
    result["decode_x_realtime"] = duration / decode_s if decode_s else None
    result["index_over_decode"] = result["index_s"] / decode_s if decode_s else None
    return result


if __name__ == "__main__":
    out = measure(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    sys.stdout.write(json.dumps(out) + "\n")
