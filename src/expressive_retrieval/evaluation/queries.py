"""A bounded query set for a large split, as TREC fixes its topics.

Above ``max`` clips, a seeded sample of the split's clips are the queries; every clip
stays a candidate. The sample is stratified over the independent units that intervals
resample: each unit gets at least one query (when ``max`` allows) and the rest in
proportion to its clips, and within a unit the queries go round its tracks, so the
cluster bootstrap and the track pool see the whole split (docs/evaluation.md, "Queries").
"""

from __future__ import annotations

import numpy as np


def unit_quotas(sizes: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Queries per unit: one each (when ``limit`` reaches the unit count), the rest in
    proportion to the units' clips by largest remainder (seeded ties); sums to ``limit``."""
    total = int(sizes.sum())
    if limit >= total:
        return sizes.copy()
    floor = np.ones_like(sizes) if limit >= len(sizes) else np.zeros_like(sizes)
    share = (sizes - floor) * (limit - int(floor.sum())) / (total - int(floor.sum()))
    quota = floor + np.floor(share).astype(sizes.dtype)
    left = limit - int(quota.sum())
    order = np.lexsort((rng.random(len(sizes)), -(share - np.floor(share))))
    quota[order[:left]] += 1
    return quota


def _rank_within(groups: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Each item's rank by ``key`` among the items of its group."""
    order = np.lexsort((key, groups))
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, counts)
    return rank


def sample_queries(units: np.ndarray, tracks: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Ascending clip indices of the queries: every clip when there are at most ``limit``.

    Args:
        units: ``[N]`` each clip's independent unit (its track or its track's group).
        tracks: ``[N]`` each clip's track (codes or ids).
        limit: the most queries.
        seed: the sample's seed; the same seed and split give the same queries.
    """
    if len(units) <= limit:
        return np.arange(len(units))
    rng = np.random.default_rng(seed)
    _, unit, sizes = np.unique(units, return_inverse=True, return_counts=True)
    quota = unit_quotas(sizes, limit, rng)
    _, track = np.unique(tracks, return_inverse=True)
    key = rng.random(len(units))
    turn = _rank_within(track, key)  # 0 for a random clip of each track, 1 for a second, ...
    within = _rank_within(unit, turn + key)  # round-robin over the unit's tracks
    return np.flatnonzero(within < quota[unit])
