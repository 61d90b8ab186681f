"""Retrieval vectors made of per-aspect unit sub-vectors (numpy only: serving imports it).

A flat vector concatenates ``A`` unit-norm sub-vectors of ``k`` dims. Scaling a query's
sub-vector ``a`` by ``w_a / Σw`` makes its inner product with any clip vector equal
``Σ_a (w_a / Σw) · cos_a``, so one inner-product index serves every aspect weighting.
"""

from __future__ import annotations

import numpy as np

_NORM_EPS = 1e-12


def normalised_weights(
    weights: np.ndarray | list[float], num_aspects: int, num_queries: int | None = None
) -> np.ndarray:
    """Aspect weights validated and normalised to sum 1: ``[A]`` or ``[num_queries, A]``.

    Non-negative, finite, with a positive sum per row (the oracle's rules);
    ``num_queries=None`` allows only ``[A]``.
    """
    w = np.asarray(weights, dtype=np.float64)
    shapes = [(num_aspects,)] + ([(num_queries, num_aspects)] if num_queries else [])
    if w.shape not in shapes:
        raise ValueError(
            f"aspect weights must have shape {' or '.join(map(str, shapes))}, got {w.shape}"
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"aspect weights must be finite and non-negative, got {w.tolist()}")
    total = w.sum(axis=-1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("aspect weights must not be all zero")
    return w / total


def weight_query_vectors(
    vectors: np.ndarray, weights: np.ndarray | list[float], num_aspects: int
) -> np.ndarray:
    """Query vectors for an inner-product index under aspect weights (numpy only).

    Args:
        vectors: ``[Q, A·k]`` flat query vectors (unit-norm sub-vectors).
        weights: ``[A]`` or ``[Q, A]`` non-negative; normalised to sum 1 here.
        num_aspects: ``A``.

    Returns:
        float32 ``[Q, A·k]``: sub-vector ``a`` scaled by ``w_a / Σw``, so the inner product
        with a clip vector is ``Σ_a (w_a / Σw) · cos_a``.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] % num_aspects:
        raise ValueError(f"vectors must be [Q, {num_aspects}·k], got {vectors.shape}")
    w = normalised_weights(weights, num_aspects, len(vectors))
    per_aspect = vectors.reshape(len(vectors), num_aspects, -1)
    return (per_aspect * w[..., None]).reshape(vectors.shape).astype(np.float32)


def track_vectors(
    clip_vectors: np.ndarray, clip_track_index: np.ndarray, num_tracks: int, num_aspects: int
) -> np.ndarray:
    """Track vectors ``[num_tracks, A·k]`` (float32) from flat clip vectors ``[N, A·k]``.

    Per aspect, the mean of the track's clips' sub-vectors, re-normalised to unit length;
    ``clip_track_index [N]`` gives each clip's track. A track without clips (or whose
    sub-vectors cancel out) gets zeros there, so it scores 0 against every query.
    """
    clip_vectors = np.asarray(clip_vectors, dtype=np.float32)
    clip_track_index = np.asarray(clip_track_index)
    assert clip_vectors.ndim == 2 and clip_vectors.shape[1] % num_aspects == 0, clip_vectors.shape
    assert clip_track_index.shape == (len(clip_vectors),), clip_track_index.shape
    assert np.issubdtype(clip_track_index.dtype, np.integer), clip_track_index.dtype
    assert ((clip_track_index >= 0) & (clip_track_index < num_tracks)).all(), "track index range"
    sums = np.zeros((num_tracks, clip_vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, clip_track_index, clip_vectors)
    per_aspect = sums.reshape(num_tracks, num_aspects, -1)
    norms = np.linalg.norm(per_aspect, axis=-1, keepdims=True)
    unit = np.where(norms > _NORM_EPS, per_aspect / np.maximum(norms, _NORM_EPS), 0.0)
    return unit.reshape(sums.shape).astype(np.float32)


def aspect_similarities(
    queries: np.ndarray, candidates: np.ndarray, num_aspects: int
) -> np.ndarray:
    """Per-aspect inner products ``[Q, N, A]`` (float32) of flat ``[Q, A·k]``, ``[N, A·k]`` vectors.

    With unit sub-vectors these are the per-aspect cosines, the sub-scores whose weighted
    sum ``weight_query_vectors`` searches for.
    """
    queries, candidates = np.asarray(queries, np.float32), np.asarray(candidates, np.float32)
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"expected [Q, d] and [N, d] vectors, got {queries.shape}, {candidates.shape}"
        )
    if queries.shape[1] % num_aspects:
        raise ValueError(f"vector width {queries.shape[1]} is not a multiple of {num_aspects}")
    q = queries.reshape(len(queries), num_aspects, -1)
    c = candidates.reshape(len(candidates), num_aspects, -1)
    return np.einsum("qak,nak->qna", q, c)
