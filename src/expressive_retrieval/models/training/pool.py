"""Candidate pools: the within-split pairs that the labelled lists never held.

A ``pairs`` list gives a query ~32 candidates. A pool gives it every clip of its split from
another track, up to ``size``; above that, the candidates it must ``keep`` (its labelled
list), the ``mined`` nearest in a vector space (hard negatives, e.g. frozen mean-pooled
vectors) and a seeded random sample of the rest. The retriever is distilled on the
oracle's scores of a pool. A pool never leaves its split: candidates are drawn only from
the rows it is given.
"""

from __future__ import annotations

import numpy as np

_BLOCK_PAIRS = 1 << 20


def candidate_pool(
    queries: np.ndarray,
    rows: np.ndarray,
    tracks: np.ndarray,
    size: int,
    seed: int,
    vectors: np.ndarray | None = None,
    mined: int = 0,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Candidate rows ``[len(queries), P]`` for each query (-1 = padding).

    Args:
        queries: clip-table rows of the queries, all of them in ``rows``.
        rows: clip-table rows of one split: the only candidates.
        tracks: track id per clip-table row; a query's own track is never a candidate.
        size: most candidates per query (``P = min(size, largest number of others)``).
        seed: seeds the random sample, per query (the same query gets the same pool).
        vectors: ``[n_clips, d]`` unit vectors ranking the ``mined`` nearest; ``None`` = none.
        mined: nearest candidates kept before the random sample, when a split has more
            than ``size`` others.
        keep: ``[len(queries), C]`` candidate rows (-1 = padding) that come first in a capped
            pool, e.g. the labelled lists' candidates; they must be ``rows`` of other tracks.
    """
    queries, rows = np.asarray(queries, dtype=np.int64), np.unique(rows).astype(np.int64)
    if size < 1 or mined < 0:
        raise ValueError(f"pool size must be >= 1 and mined >= 0, got {size} and {mined}")
    if mined and vectors is None:
        raise ValueError("mined candidates need vectors to rank them")
    outside = np.setdiff1d(queries, rows)
    if len(outside):
        raise ValueError(f"pool queries must be rows of the split, not {outside[:5].tolist()}")
    tracks = np.asarray(tracks)
    _, per_track = np.unique(tracks[rows], return_counts=True)
    others = len(rows) - per_track.min(initial=len(rows))
    pool = np.full((len(queries), min(size, others)), -1, dtype=np.int64)
    step = max(1, _BLOCK_PAIRS // max(len(rows), 1))
    for lo in range(0, len(queries), step):
        block = queries[lo : lo + step]
        near = vectors[block] @ vectors[rows].T if mined else None
        for i, query in enumerate(block):
            valid = tracks[rows] != tracks[query]
            candidates = rows[valid]
            if len(candidates) > size:
                rng = np.random.default_rng([seed, int(query)])
                kept = _positions(candidates, keep[lo + i] if keep is not None else [], query)
                order = np.argsort(-near[i][valid], kind="stable") if mined else kept
                hard = order[~np.isin(order, kept)][:mined]
                first = np.concatenate([kept, hard])[:size]
                rest = np.setdiff1d(np.arange(len(candidates)), first)
                drawn = rng.choice(rest, size - len(first), replace=False)
                candidates = candidates[np.concatenate([first, drawn]).astype(np.int64)]
            pool[lo + i, : len(candidates)] = candidates
    return pool


def _positions(candidates: np.ndarray, keep: np.ndarray, query: int) -> np.ndarray:
    """Positions in the sorted ``candidates`` of the valid (>= 0) rows of ``keep``."""
    keep = np.asarray(keep, dtype=np.int64)
    keep = keep[keep >= 0]
    positions = np.searchsorted(candidates, keep).clip(max=max(len(candidates) - 1, 0))
    if len(keep) and not np.array_equal(candidates[positions], keep):
        raise ValueError(f"kept candidates of query {query} must be other-track rows of the split")
    return positions
