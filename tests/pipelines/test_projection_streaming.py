"""Corpus projection and indexing stream: peak memory does not grow with the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import measured
from benchmarks.random_models import uniform_config

L, D, SEGMENTS, CLIP, HOP = 13, 256, 16, 6, 3


def _write_corpus(root: Path, num_tracks: int) -> None:
    """``num_tracks`` float16 segment files of 16 × 13 × 256 (106 kB each) and their clips."""
    rng = np.random.default_rng(0)
    (root / "segments").mkdir(parents=True)
    rows = []
    for t in range(num_tracks):
        track_id = f"t{t:05d}"
        np.save(
            root / "segments" / f"{track_id}.npy",
            rng.standard_normal((SEGMENTS, L, D)).astype(np.float16),
        )
        rows += [
            (f"{track_id}:{s}", track_id, s, s + CLIP, "test")
            for s in range(0, SEGMENTS - CLIP + 1, HOP)
        ]
    clips = pd.DataFrame(
        rows, columns=["clip_id", "track_id", "segment_start", "segment_end", "split"]
    )
    clips.to_parquet(root / "clips.parquet")


def project_and_index(root: str) -> int:
    """Project every clip of ``root`` in chunks, write the vectors, build a Flat index."""
    from expressive_retrieval.data.segments import SegmentStore
    from expressive_retrieval.datasets import VectorsDataset
    from expressive_retrieval.models import ProjectionConfig, ProjectionHead
    from expressive_retrieval.pipelines.projection_retriever.nodes import project_corpus
    from expressive_retrieval.vectors.index import build_index

    config = uniform_config(ProjectionConfig, L, D, ["tempo", "dynamics", "phrasing"], CLIP)
    head = ProjectionHead(config)
    clips = pd.read_parquet(Path(root) / "clips.parquet")
    params = {"corpus": {"chunk_size": 64}}
    scale = {"backend": "inprocess", "staging": str(Path(root) / "staging")}
    segments = SegmentStore(Path(root) / "segments")
    blocks, _ = project_corpus(head.state_dict(), config.to_dict(), segments, clips, params, scale)
    path = str(Path(root) / "vectors.npy")
    VectorsDataset(path).save(blocks)
    vectors = VectorsDataset(path).load()
    return int(build_index(vectors, vectors.shape[1], "Flat").ntotal)


def test_peak_memory_does_not_grow_with_the_corpus(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    _write_corpus(small, 100)  # 11 MB of segments, 400 clips
    _write_corpus(large, 800)  # 85 MB of segments, 3,200 clips
    runs = {
        name: measured(
            "tests.pipelines.test_projection_streaming:project_and_index", root=str(root)
        )
        for name, root in (("small", small), ("large", large))
    }
    assert runs["small"]["value"] == 400 and runs["large"]["value"] == 3200
    # Holding the corpus (or its float32 copy, 170 MB) would add far more than this.
    assert runs["large"]["peak_rss_mb"] - runs["small"]["peak_rss_mb"] < 30, runs
