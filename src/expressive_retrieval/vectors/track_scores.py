"""Track scores from clip scores (numpy only: the serving API imports it).

A candidate track is scored through its clips (docs/design.md, "Models"): the best clip
(``max``) or the mean of its best ``k`` clips (``topk_mean``), for evaluation and serving
alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK_QUERIES = 1024

TrackRuns = tuple[np.ndarray | None, np.ndarray, np.ndarray]
"""``track_runs``: the grouping order (or None), each track's first position, its clip count."""


def query_chunks(num_queries: int) -> Iterator[slice]:
    """Slices of at most ``CHUNK_QUERIES`` queries covering ``range(num_queries)``."""
    for start in range(0, num_queries, CHUNK_QUERIES):
        yield slice(start, min(start + CHUNK_QUERIES, num_queries))


def track_runs(clip_track_index: np.ndarray, num_tracks: int) -> TrackRuns:
    """Clips grouped by track: the order ``[N]`` that groups them (None: they already are),
    each track's first position ``[T]`` in it and its clip count ``[T]``."""
    counts = np.bincount(clip_track_index, minlength=num_tracks)
    grouped = bool((np.diff(clip_track_index) >= 0).all())
    order = None if grouped else np.argsort(clip_track_index, kind="stable")
    return order, np.cumsum(counts) - counts, counts


def aggregate_runs(clip_scores: np.ndarray, runs: TrackRuns, how: str, k: int) -> np.ndarray:
    """Track scores ``[Q, T]`` from clip scores ``[Q, N]`` over ``track_runs`` (every track
    with a clip), in the scores' dtype: the best clip, or the mean of the best ``min(k,
    clips)``, -inf counted.

    Without sorting: per track, its maximum and how often it occurs; a maximum used up is
    dropped and the next one found, ``k`` passes in all.
    """
    assert how in {"max", "topk_mean"}, how
    assert k >= 1, k
    order, starts, counts = runs
    grouped = clip_scores if order is None else np.take(clip_scores, order, axis=1)

    def peak(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = np.maximum.reduceat(values, starts, axis=1)
        at_top = (values == np.repeat(top, counts, axis=1)).astype(np.float64)
        return top, np.add.reduceat(at_top, starts, axis=1)

    best, left = peak(grouped)
    if how == "max":
        return best
    total = best.copy()
    for taken in range(1, k):
        left -= 1
        spent = left == 0  # every clip at this maximum is taken: drop them, find the next
        drop = np.repeat(spent, counts, axis=1) & (grouped == np.repeat(best, counts, axis=1))
        grouped = np.where(drop, -np.inf, grouped)
        following, times = peak(grouped)
        best, left = np.where(spent, following, best), np.where(spent, times, left)
        total += np.where(counts > taken, best, 0.0)
    return total / np.minimum(counts, k)


def aggregate_to_tracks(
    clip_scores: np.ndarray,
    clip_track_index: np.ndarray,
    num_tracks: int,
    how: str = "max",
    k: int = 2,
) -> np.ndarray:
    """Track scores ``[Q, num_tracks]`` (float64) from clip scores ``[Q, Nclips]``: max or
    top-k mean (``aggregate_runs``, in chunks of queries).

    ``topk_mean`` averages a track's ``min(k, clip count)`` best clips; a track without clips
    scores -inf (mark it invalid).
    """
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    clip_track_index = np.asarray(clip_track_index)
    assert clip_scores.ndim == 2, clip_scores.shape
    assert clip_track_index.shape == (clip_scores.shape[1],), clip_track_index.shape
    assert np.issubdtype(clip_track_index.dtype, np.integer), clip_track_index.dtype
    assert ((clip_track_index >= 0) & (clip_track_index < num_tracks)).all(), "track index range"
    out = np.full((clip_scores.shape[0], num_tracks), -np.inf)
    has_clips = np.bincount(clip_track_index, minlength=num_tracks) > 0
    present = np.flatnonzero(has_clips)
    if present.size == 0:
        return out
    dense = (np.cumsum(has_clips) - 1)[clip_track_index]  # the tracks with clips, renumbered
    runs = track_runs(dense, len(present))
    for rows in query_chunks(clip_scores.shape[0]):
        out[rows, present] = aggregate_runs(clip_scores[rows], runs, how, k)
    return out
