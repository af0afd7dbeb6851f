"""The sandbox engine: what every route and worker runs against — config, storage, the media folder, the
analyzers, the job queue and the cache of analysed assets loaded for search.

It holds no behaviour of its own beyond files and that cache: background work is in :mod:`.work`, wired
through the ``workers`` table the app passes in. Routes reach the engine as ``request.app.state.engine``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tl_mcp.sandbox.config import SandboxConfig
from tl_mcp.sandbox.media import MediaLimits, Probe, TimedText
from tl_mcp.sandbox.media import probe as probe_file
from tl_mcp.sandbox.perception import Analyzers, load_analyzers
from tl_mcp.sandbox.perception.base import FloatArray
from tl_mcp.sandbox.store import assets, segments, texts
from tl_mcp.sandbox.store.db import Database
from tl_mcp.sandbox.store.ids import new_id
from tl_mcp.sandbox.store.jobs import JobQueue, Worker

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AssetIndex:
    """An analysed asset, loaded for search: segments with vectors and the timed texts."""

    asset_id: str
    starts: np.ndarray[Any, np.dtype[np.float64]]
    ends: np.ndarray[Any, np.dtype[np.float64]]
    thumbnails: list[str | None]
    image_vecs: FloatArray | None
    texts: list[TimedText] = field(default_factory=list)
    text_vecs: FloatArray | None = None
    #: Search statistics derived from this object (owned by :mod:`.retrieval`); a re-analysed asset gets
    #: a new AssetIndex, so these never go stale.
    search_parts: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


class Engine:
    def __init__(
        self,
        config: SandboxConfig,
        analyzers: Analyzers | None = None,
        *,
        workers: Mapping[str, Worker[Engine]] | None = None,
    ) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.media_dir = config.data_dir / "media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "tmp").mkdir(exist_ok=True)
        self.db = Database.open(config.data_dir / "sandbox.db")
        self.analyzers = analyzers or load_analyzers(config.analyzers)
        self.limits = MediaLimits(
            max_duration_s=config.max_duration_s,
            max_pixels=config.max_pixels,
            max_frames=config.max_frames,
            max_memory_bytes=config.max_decode_memory_bytes,
        )
        #: Without ``workers`` (code driving the engine directly) queued jobs fail as of an unknown kind.
        self.jobs: JobQueue[Engine] = JobQueue(self.db, workers or {}, self)
        self._cache: OrderedDict[str, AssetIndex] = OrderedDict()
        self._cache_lock = threading.Lock()
        #: Stacked search corpora over sets of assets (owned by :mod:`.retrieval`), keyed by asset ids.
        self.search_corpora: OrderedDict[Any, Any] = OrderedDict()
        self.search_lock = threading.Lock()
        self.started_at = time.time()

    # ----- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.jobs.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.jobs.stop(timeout)
        self.db.close()

    # ----- files ------------------------------------------------------------------------------------------
    def asset_dir(self, asset_id: str) -> Path:
        path = self.media_dir / asset_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def tmp_path(self, suffix: str = "") -> Path:
        return self.data_dir / "tmp" / f"{new_id()}{suffix}"

    def remove_asset_files(self, asset_id: str) -> None:
        shutil.rmtree(self.media_dir / asset_id, ignore_errors=True)
        self.forget(asset_id)

    def probe(self, path: Path) -> Probe:
        return probe_file(path, self.limits)

    # ----- loaded indexes ---------------------------------------------------------------------------------
    def forget(self, asset_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(asset_id, None)
        with self.search_lock:
            # Corpora over this asset are stale now; drop them at once so their matrices are freed.
            for key in [k for k in self.search_corpora if asset_id in k[0]]:
                del self.search_corpora[key]

    def asset_index(self, asset_id: str) -> AssetIndex | None:
        with self._cache_lock:
            hit = self._cache.get(asset_id)
            if hit is not None:
                self._cache.move_to_end(asset_id)
                return hit
        if not assets.is_analyzed(self.db, asset_id):
            return None
        segs = segments.of_asset(self.db, asset_id)
        stored = texts.of_asset(self.db, asset_id)
        image_vecs = None
        if segs and all(s.image_vec is not None for s in segs):
            image_vecs = np.stack([np.frombuffer(s.image_vec or b"", dtype=np.float32) for s in segs])
        text_vecs = None
        if stored and all(t.vec is not None for t in stored):
            text_vecs = np.stack([np.frombuffer(t.vec or b"", dtype=np.float32) for t in stored])
        index = AssetIndex(
            asset_id=asset_id,
            starts=np.array([s.start for s in segs], dtype=np.float64),
            ends=np.array([s.end for s in segs], dtype=np.float64),
            thumbnails=[s.thumbnail for s in segs],
            image_vecs=image_vecs,
            texts=[t.timed for t in stored],
            text_vecs=text_vecs,
        )
        with self._cache_lock:
            self._cache[asset_id] = index
            while len(self._cache) > 256:
                self._cache.popitem(last=False)
        return index
