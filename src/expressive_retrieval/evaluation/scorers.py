"""Systems that can score any (query, candidate) clip pair of a split cheaply.

Each scorer answers ``pair_scores(queries, columns)``: the scores of query clips
``queries [b]`` against every clip of the split (``columns`` None, ``[b, N]``) or against
each query's own list (``columns [b, P]``, clip indices, -1 padded; a pad's score is
meaningless). Evaluation uses the first to find each system's top candidates in blocks
(the pool) and the second to score a pool, so no ``[N, N]`` matrix exists for a large split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from expressive_retrieval.vectors.aspects import (
    aspect_similarities,
    normalised_weights,
    weight_query_vectors,
)

PairScores = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]  # total, aspects, retrieved


@dataclass
class VectorScorer:
    """Inner products of clip vectors ``[N, d]``: per aspect (``num_aspects``) or one total.

    With aspects, the total is their weighted sum with normalised ``weights``.
    """

    vectors: np.ndarray
    num_aspects: int | None = None
    weights: list[float] | None = None
    seconds: float = 0.0

    def pair_scores(self, queries: np.ndarray, columns: np.ndarray | None) -> PairScores:
        query = self.vectors[queries]
        if columns is None:
            if self.num_aspects is None:
                return (query @ self.vectors.T).astype(np.float64), None, None
            aspects = aspect_similarities(query, self.vectors, self.num_aspects)
        else:
            candidates = self.vectors[np.maximum(columns, 0)]
            groups = self.num_aspects or 1
            q = query.reshape(len(query), groups, -1)
            c = candidates.reshape(*columns.shape, groups, -1)
            aspects = np.einsum("bak,bcak->bca", q, c)
            if self.num_aspects is None:
                return aspects[..., 0].astype(np.float64), None, None
        aspects = aspects.astype(np.float64)
        assert self.weights is not None, "aspect vectors need their default weights"
        return aspects @ normalised_weights(self.weights, self.num_aspects), aspects, None

    def totals(self, queries: np.ndarray) -> np.ndarray:
        """``[b, N]`` totals against every clip in one product (default-weight query vectors,
        as an index searches): for ranking only, equal to ``pair_scores``' up to float32
        rounding."""
        query = self.vectors[queries]
        if self.num_aspects is not None:
            assert self.weights is not None, "aspect vectors need their default weights"
            query = weight_query_vectors(query, self.weights, self.num_aspects)
        return (query @ self.vectors.T).astype(np.float64)


@dataclass
class FoundScorer:
    """What an index returned: per query clip, found split clips ``[Q, D]`` (-1: none).

    ``queries`` are the clips the rows of ``found`` belong to (ascending; None: every clip
    of the split). A pair it did not return is not retrieved (score 0, ``retrieved`` False).
    """

    found: np.ndarray
    scores: np.ndarray
    num_clips: int
    seconds: float = 0.0
    queries: np.ndarray | None = None

    def pair_scores(self, queries: np.ndarray, columns: np.ndarray | None) -> PairScores:
        if self.queries is not None:
            queries = np.searchsorted(self.queries, queries)
        found = self.found[queries]
        rows = np.broadcast_to(np.arange(len(queries))[:, None], found.shape)
        hit = found >= 0
        dense = np.zeros((len(queries), self.num_clips))
        retrieved = np.zeros(dense.shape, dtype=bool)
        dense[rows[hit], found[hit]] = self.scores[queries][hit]
        retrieved[rows[hit], found[hit]] = True
        if columns is None:
            return dense, None, retrieved
        at = np.maximum(columns, 0)
        return (
            np.take_along_axis(dense, at, axis=1),
            None,
            np.take_along_axis(retrieved, at, axis=1) & (columns >= 0),
        )


def _uniform(seed: int, queries: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) value per (query, column) pair: splitmix64 of the pair and seed."""
    with np.errstate(over="ignore"):
        x = (queries.astype(np.uint64) << np.uint64(32)) ^ columns.astype(np.uint64)
        x = x + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / 2.0**53


@dataclass
class RandomScorer:
    """Chance level: a seeded uniform score per (query, candidate) pair, tracks apart.

    The score is a function of the pair, so a pool and an exhaustive pass agree on it.
    """

    seed: int
    num_clips: int
    num_tracks: int
    seconds: float = 0.0

    def pair_scores(self, queries: np.ndarray, columns: np.ndarray | None) -> PairScores:
        columns = np.arange(self.num_clips)[None, :] if columns is None else columns
        return _uniform(2 * self.seed, np.asarray(queries)[:, None], columns), None, None

    def track_scores(self, queries: np.ndarray, columns: np.ndarray | None) -> np.ndarray:
        """``[b, T]`` or ``[b, Pt]``: the candidate tracks' own uniform scores."""
        columns = np.arange(self.num_tracks)[None, :] if columns is None else columns
        return _uniform(2 * self.seed + 1, np.asarray(queries)[:, None], columns)
