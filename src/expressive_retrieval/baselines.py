"""Frozen-embedding baselines: mean-pooled cosine over memory-mapped segments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from expressive_retrieval.segments import SegmentStore


def mean_pooled_vectors(segments: SegmentStore, clips: pd.DataFrame, dim: int) -> np.ndarray:
    """Unit-norm mean over segments and layers per clip ``[n_clips, D]``, streamed per track."""
    vectors = np.zeros((len(clips), dim), dtype=np.float32)
    starts, ends = clips["segment_start"].to_numpy(), clips["segment_end"].to_numpy()
    for track_id, rows in clips.groupby("track_id", sort=False).indices.items():
        per_segment = np.asarray(segments.open(track_id), dtype=np.float32).mean(axis=1)
        cumulative = np.vstack([np.zeros((1, dim)), np.cumsum(per_segment, 0)])
        length = (ends[rows] - starts[rows])[:, None]
        vectors[rows] = (cumulative[ends[rows]] - cumulative[starts[rows]]) / length
    segments.close()
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
