"""Track scores from clip scores (numpy only: the serving API imports it).

A candidate track is scored through its clips (docs/design.md, "Models"): the best clip
(``max``) or the mean of its best ``k`` clips (``topk_mean``), for evaluation and serving
alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK_QUERIES = 1024


def query_chunks(num_queries: int) -> Iterator[slice]:
    """Slices of at most ``CHUNK_QUERIES`` queries covering ``range(num_queries)``."""
    for start in range(0, num_queries, CHUNK_QUERIES):
        yield slice(start, min(start + CHUNK_QUERIES, num_queries))


def aggregate_to_tracks(
    clip_scores: np.ndarray,
    clip_track_index: np.ndarray,
    num_tracks: int,
    how: str = "max",
    k: int = 2,
) -> np.ndarray:
    """Track scores ``[Q, num_tracks]`` from clip scores ``[Q, Nclips]``: max or top-k mean.

    ``topk_mean`` averages a track's ``min(k, clip count)`` best clips; a track without clips
    scores -inf (mark it invalid).
    """
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    clip_track_index = np.asarray(clip_track_index)
    assert clip_scores.ndim == 2, clip_scores.shape
    assert clip_track_index.shape == (clip_scores.shape[1],), clip_track_index.shape
    assert np.issubdtype(clip_track_index.dtype, np.integer), clip_track_index.dtype
    assert ((clip_track_index >= 0) & (clip_track_index < num_tracks)).all(), "track index range"
    assert how in {"max", "topk_mean"}, how
    assert k >= 1, k
    out = np.full((clip_scores.shape[0], num_tracks), -np.inf)
    counts = np.bincount(clip_track_index, minlength=num_tracks)
    present = np.flatnonzero(counts)
    if present.size == 0:
        return out
    # Columns grouped by track: each track's clips are one contiguous run, the same for
    # every query, so reduceat over the run starts aggregates per track.
    by_track = np.argsort(clip_track_index, kind="stable")
    sorted_tracks = clip_track_index[by_track]
    starts = np.concatenate(([0], np.cumsum(counts[present])[:-1]))
    in_top = np.arange(len(by_track)) - np.repeat(starts, counts[present]) < k
    for rows in query_chunks(clip_scores.shape[0]):
        grouped = clip_scores[rows][:, by_track]
        if how == "max":
            out[rows, present] = np.maximum.reduceat(grouped, starts, axis=1)
        else:
            tracks = np.broadcast_to(sorted_tracks, grouped.shape)
            within = np.lexsort((-grouped, tracks), axis=1)
            best = np.where(in_top, np.take_along_axis(grouped, within, axis=1), 0.0)
            sums = np.add.reduceat(best, starts, axis=1)
            out[rows, present] = sums / np.minimum(counts[present], k)
    return out
