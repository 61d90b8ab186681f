"""Frozen-embedding baselines over memory-mapped segments: plain and discovery-weighted cosine.

* ``cosine``: one unit vector per clip, the mean over its segments and all layers.
* ``discovery_cosine``: one unit vector per clip and aspect, the mean over segments of the
  layers weighted by the aspect's discovery evidence; the aspect's cosine is its sub-score
  and the default aspect weights combine them, so it has aspect behaviour to measure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.segments import SegmentStore
from expressive_retrieval.vectors.evidence import layer_priors


def layer_weighted_vectors(
    segments: SegmentStore, clips: pd.DataFrame, layer_weights: np.ndarray
) -> np.ndarray:
    """Unit-norm clip vectors ``[n_clips, G, D]`` (float32), one per row of ``layer_weights``.

    Row ``g`` of ``layer_weights [G, L]`` mixes the layers of every segment; the clip's
    vector is the mean of the mixed segments. Streamed one track at a time.
    """
    layer_weights = np.asarray(layer_weights, dtype=np.float32)
    assert layer_weights.ndim == 2, layer_weights.shape
    starts, ends = clips["segment_start"].to_numpy(), clips["segment_end"].to_numpy()
    vectors: np.ndarray | None = None
    with segments:
        for track_id, rows in clips.groupby("track_id", sort=False).indices.items():
            track = np.asarray(segments.open(track_id), dtype=np.float32)
            per_segment = np.einsum("gl,sld->sgd", layer_weights, track)
            if vectors is None:
                vectors = np.zeros((len(clips), *per_segment.shape[1:]), dtype=np.float32)
            cumulative = np.cumsum(per_segment, axis=0, dtype=np.float64)
            cumulative = np.concatenate([np.zeros_like(cumulative[:1]), cumulative])
            length = (ends[rows] - starts[rows])[:, None, None]
            means = ((cumulative[ends[rows]] - cumulative[starts[rows]]) / length).astype(
                np.float32
            )
            # Normalised per track: no temporary the size of the whole split.
            vectors[rows] = means / np.maximum(np.linalg.norm(means, axis=-1, keepdims=True), 1e-12)
    if vectors is None:
        return np.zeros((0, len(layer_weights), 0), dtype=np.float32)
    return vectors


def mean_pooled_vectors(segments: SegmentStore, clips: pd.DataFrame, dim: int) -> np.ndarray:
    """Unit-norm mean over segments and layers per clip ``[n_clips, D]``, streamed per track."""
    if clips.empty:
        return np.zeros((0, dim), dtype=np.float32)
    num_layers = segments.shape(str(clips["track_id"].iloc[0]))[1]
    uniform = np.full((1, num_layers), 1.0 / num_layers)
    return layer_weighted_vectors(segments, clips, uniform)[:, 0]


def discovery_layer_weights(layer_evidence: dict[str, Any], aspects: list[str]) -> np.ndarray:
    """Per-aspect layer weights ``[A, L]`` (rows sum to 1) from the layer evidence.

    ``layer_priors``, as ``LayerRouting`` initialises from it (temperature 1); an aspect
    without evidence weighs every layer equally.
    """
    return layer_priors([layer_evidence[a]["layer_scores"] for a in aspects])
