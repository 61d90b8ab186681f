"""Candidates of query clips within one split, and their labels.

A query's candidates are clips of its split from other tracks: the ``nearest`` by
combined target, ``hard_negatives`` (combined target below ``negative_max_similarity``,
nearest in frozen cosine), then random clips up to ``candidates_per_query``, seeded by
``(seed, query row)``. Two searches find them under these rules:

- ``exact`` compares every query with every clip of its split, in blocks of about
  ``pair_block`` (query, clip) pairs: flat memory, quadratic work. The reference.
- ``ann`` asks two FAISS indexes over the split: one over
  ``RelevanceModel.kernel_features`` (random Fourier features of the standardised proxy
  features, whose inner product approximates the combined target) for ``ann.nearest_pool``
  clips, one over the frozen vectors for ``ann.negative_pool`` clips. Targets are then
  computed exactly on the found clips only: the nearest are re-ranked by exact combined
  target, the hard negatives are the cosine hits whose exact combined target is low
  enough (a query that finds too few asks for four times as many, up to the whole
  split). Random clips are drawn by rejection, never through a ``[Q, N]`` matrix. The
  indexes are IVF with ``inverted_lists(n)`` (about ``2·sqrt(n)``) lists of which
  ``ann.nprobe`` are searched, so a query costs ``O(sqrt(n))``; flat (exact) where IVF
  would search every list, and for the frozen vectors up to ``ann.exact_cosine_up_to``
  clips (docs/labels_and_splits.md says why).

``label_queries`` labels any shard of one split's queries: a pure function of the
split's ``SplitClips``, the shard, the relevance model, the parameters and the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import faiss
import numpy as np

from expressive_retrieval.data.relevance import RelevanceModel
from expressive_retrieval.vectors.index import build_index, inverted_lists

SEARCHES = ("auto", "exact", "ann")
TRAIN_PER_LIST = 40  # k-means training vectors per IVF list (FAISS warns below 39)


class QueryCandidates(NamedTuple):
    """One query's candidates (positions in its split) and their exact labels."""

    query: int
    nearest: np.ndarray  # the most similar by combined target, best first
    hard: np.ndarray  # the hard negatives, nearest in frozen cosine first
    chosen: np.ndarray  # nearest, hard negatives, then random clips: the labelled pairs
    targets: np.ndarray  # [k, A] of chosen
    grades: np.ndarray  # [k]
    combined: np.ndarray  # [k]


@dataclass(frozen=True)
class SplitClips:
    """The clips of one split, and (``ann``) the indexes that find candidates among them.

    Positions ``0..n-1`` index every array; ``rows`` maps them to rows of ``clips``.
    """

    rows: np.ndarray  # [n] int64 rows of ``clips``
    z: np.ndarray  # [n, F] standardised proxy features
    frozen: np.ndarray  # [n, D] unit-norm frozen vectors
    tracks: np.ndarray  # [n] track code of each clip
    track_sizes: np.ndarray  # [tracks] clips per track code
    expression: faiss.Index | None = None  # over kernel_features(z)
    cosine: faiss.Index | None = None  # over frozen

    @property
    def search(self) -> str:
        return "exact" if self.expression is None else "ann"


def candidate_search(num_clips: int, cfg: dict[str, Any]) -> str:
    """``exact`` or ``ann`` for a split of ``num_clips`` (``candidate_search``, ``ann_above``)."""
    choice = cfg["candidate_search"]
    if choice not in SEARCHES:
        raise ValueError(
            f"labels_and_splits.pairs.candidate_search is {choice!r}; use one of {SEARCHES} "
            "(parameters_labels_and_splits.yml)"
        )
    if choice == "auto":
        return "ann" if num_clips > cfg["ann_above"] else "exact"
    return choice


def _index(vectors: np.ndarray, nprobe: int, exact_up_to: int, seed: int) -> faiss.Index:
    """IVF-Flat (L2) with ``inverted_lists(n)`` lists, ``nprobe`` searched; a flat (exact)
    index up to ``exact_up_to`` vectors or where IVF would search every list.

    L2 rather than inner product: an inner-product quantizer favours long centroids, and
    both kinds of vectors have (nearly) constant norms, where L2 ranks as inner product.
    """
    nlist = min(inverted_lists(len(vectors)), len(vectors) // TRAIN_PER_LIST)
    if len(vectors) <= exact_up_to or nlist <= nprobe:
        return build_index(vectors, vectors.shape[1], "Flat", metric=faiss.METRIC_L2)
    return build_index(
        vectors,
        vectors.shape[1],
        f"IVF{nlist},Flat",
        {"nprobe": nprobe},
        train_size=TRAIN_PER_LIST * nlist,
        seed=seed,
        metric=faiss.METRIC_L2,
    )


def split_clips(
    rows: np.ndarray,
    z: np.ndarray,
    frozen: np.ndarray,
    tracks: np.ndarray,
    model: RelevanceModel,
    cfg: dict[str, Any],
    seed: int,
) -> SplitClips:
    """One split's clips (``rows`` of ``z``, ``frozen``, ``tracks``), indexed when ``ann``."""
    codes = np.unique(tracks[rows], return_inverse=True)[1].reshape(-1)
    z_split, frozen_split = z[rows], frozen[rows]
    split = SplitClips(rows, z_split, frozen_split, codes, np.bincount(codes))
    if candidate_search(len(rows), cfg) == "exact":
        return split
    ann = cfg["ann"]
    embedded = model.kernel_features(z_split, ann["kernel_features"], seed)
    return replace(
        split,
        expression=_index(embedded, ann["nprobe"], 0, seed),
        cosine=_index(frozen_split, ann["nprobe"], ann["exact_cosine_up_to"], seed),
    )


def _select_candidates(
    combined: np.ndarray, cosine: np.ndarray, valid: np.ndarray, cfg: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query's candidates over its whole split: nearest, hard negatives, random fill."""
    order = np.flatnonzero(valid)
    nearest = order[np.argsort(-combined[order], kind="stable")[: cfg["nearest"]]]
    negatives = order[combined[order] < cfg["negative_max_similarity"]]
    hard = negatives[np.argsort(-cosine[negatives], kind="stable")[: cfg["hard_negatives"]]]
    chosen = list(dict.fromkeys([*nearest, *hard]))
    rest = np.setdiff1d(order, chosen)
    fill = max(0, cfg["candidates_per_query"] - len(chosen))
    chosen += list(rng.choice(rest, size=min(fill, len(rest)), replace=False))
    return nearest, hard, np.asarray(chosen, dtype=np.int64)


def _exact_block(
    split: SplitClips, block: np.ndarray, model: RelevanceModel, cfg: dict, seed: int
) -> Iterator[QueryCandidates]:
    targets = model.targets(split.z[block], split.z)  # [q, n, A]
    combined = model.combined(targets)
    grades = model.grades(targets)
    cosine = split.frozen[block] @ split.frozen.T
    for i, q in enumerate(block):
        rng = np.random.default_rng([seed, int(split.rows[q])])
        valid = split.tracks != split.tracks[q]
        nearest, hard, chosen = _select_candidates(combined[i], cosine[i], valid, cfg, rng)
        yield QueryCandidates(
            q, nearest, hard, chosen, targets[i, chosen], grades[i, chosen], combined[i, chosen]
        )


def _other_tracks(split: SplitClips, q: int, found: np.ndarray) -> np.ndarray:
    """Mask of found positions that exist (FAISS pads with ``-1``) and are not ``q``'s track."""
    ok = found >= 0
    ok[ok] = split.tracks[found[ok]] != split.tracks[q]
    return ok


def _hard_negatives(
    split: SplitClips, block: np.ndarray, model: RelevanceModel, cfg: dict
) -> list[np.ndarray]:
    """Each query's cosine hits (best first) whose exact combined target is low enough.

    Queries with too few ask the index for four times as many hits, in chunks of about
    the block's (query, hit) pairs, until they have enough or have seen the whole split.
    """
    need, n = cfg["hard_negatives"], len(split.rows)
    budget = len(block) * cfg["ann"]["negative_pool"]
    hard: list[np.ndarray] = [np.zeros(0, np.int64)] * len(block)
    todo, k = np.arange(len(block)), min(cfg["ann"]["negative_pool"], n)
    while len(todo):
        again = []
        for lo in range(0, len(todo), max(1, budget // k)):
            chunk = todo[lo : lo + max(1, budget // k)]
            queries = block[chunk]
            hits = split.cosine.search(split.frozen[queries], k)[1]
            combined = model.combined(model.targets(split.z[queries], split.z[hits]))
            for j, i in enumerate(chunk):
                keep = _other_tracks(split, queries[j], hits[j])
                keep &= combined[j] < cfg["negative_max_similarity"]
                hard[i] = hits[j][keep][:need]
                if len(hard[i]) < need and k < n:
                    again.append(i)
        todo, k = np.asarray(again, dtype=np.int64), min(4 * k, n)
    return hard


def _random_fill(
    split: SplitClips, q: int, chosen: list[int], size: int, rng: np.random.Generator
) -> list[int]:
    """Up to ``size`` clips of other tracks drawn uniformly from the split, not in ``chosen``."""
    left = len(split.rows) - split.track_sizes[split.tracks[q]] - len(chosen)
    if left <= size:  # a small split: everything that is left
        rest = np.setdiff1d(np.flatnonzero(split.tracks != split.tracks[q]), chosen)
        return list(rng.permutation(rest))
    picked = np.zeros(0, np.int64)
    while len(picked) < size:  # rejection: draws of the query's track or already chosen
        draws = rng.integers(0, len(split.rows), size=2 * size)
        taken = (draws[:, None] == np.asarray(chosen, dtype=np.int64)[None, :]).any(axis=1)
        keep = (split.tracks[draws] != split.tracks[q]) & ~taken
        picked = np.concatenate([picked, draws[keep]])
        picked = picked[np.sort(np.unique(picked, return_index=True)[1])]
    return list(picked[:size])


def _ann_block(
    split: SplitClips, block: np.ndarray, model: RelevanceModel, cfg: dict, seed: int
) -> Iterator[QueryCandidates]:
    ann = cfg["ann"]
    query = split.z[block]
    embedded = model.kernel_features(query, ann["kernel_features"], seed)
    near = split.expression.search(embedded, min(ann["nearest_pool"], len(split.rows)))[1]
    near_combined = model.combined(model.targets(query, split.z[near]))  # -1: masked
    hard = _hard_negatives(split, block, model, cfg)
    nearest, chosen = [], np.zeros((len(block), cfg["candidates_per_query"]), np.int64)
    sizes = np.zeros(len(block), np.int64)
    for i, q in enumerate(block):
        ok = _other_tracks(split, q, near[i])
        best = np.argsort(-near_combined[i][ok], kind="stable")[: cfg["nearest"]]
        nearest.append(near[i][ok][best])
        picked = list(dict.fromkeys([*nearest[i], *hard[i]]))
        fill = max(0, cfg["candidates_per_query"] - len(picked))
        rng = np.random.default_rng([seed, int(split.rows[q])])
        picked += _random_fill(split, q, picked, fill, rng)
        sizes[i] = len(picked)
        chosen[i, : len(picked)] = picked
    targets = model.targets(query, split.z[chosen])  # [q, C, A]; padding cut below
    grades, combined = model.grades(targets), model.combined(targets)
    for i, q in enumerate(block):
        k = sizes[i]
        yield QueryCandidates(
            q, nearest[i], hard[i], chosen[i, :k], targets[i, :k], grades[i, :k], combined[i, :k]
        )


def query_block(num_clips: int, search: str, cfg: dict[str, Any], pair_block: int) -> int:
    """Queries per block of about ``pair_block`` (query, clip) pairs, in a split of
    ``num_clips`` searched by ``search``; blocks start at multiples of it."""
    pool = cfg["ann"]["nearest_pool"] + cfg["ann"]["negative_pool"]
    return max(1, pair_block // (num_clips if search == "exact" else pool))


def find_candidates(
    split: SplitClips,
    queries: np.ndarray,
    model: RelevanceModel,
    cfg: dict[str, Any],
    seed: int,
    pair_block: int,
) -> Iterator[QueryCandidates]:
    """The candidates of each of ``queries`` (positions in ``split``) by the split's search,
    in blocks of about ``pair_block`` (query, clip) pairs."""
    step = query_block(len(split.rows), split.search, cfg, pair_block)
    find = _exact_block if split.search == "exact" else _ann_block
    for lo in range(0, len(queries), step):
        yield from find(split, queries[lo : lo + step], model, cfg, seed)


def label_queries(
    split: SplitClips,
    queries: np.ndarray,
    model: RelevanceModel,
    cfg: dict[str, Any],
    seed: int,
    pair_block: int,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Graded pairs and triples of ``queries`` (positions in ``split``) by its search.

    Args:
        split: the split's clips (``split_clips``).
        queries: ``[Q]`` positions of the query clips in ``split``.
        model: the relevance model.
        cfg: the ``labels_and_splits.pairs`` parameters.
        seed: the run's seed; a query's random fill is seeded by ``(seed, its clip row)``.
        pair_block: about how many (query, clip) pairs one block compares (memory bound).

    Returns:
        Pair columns ``query``, ``candidate`` (clip rows ``[P]``), ``relevance`` ``[P]``
        and ``targets`` ``[P, A]``; triples ``[T, 3]`` clip rows (query, positive, negative).
    """
    columns: dict[str, list[np.ndarray]] = {
        "query": [np.zeros(0, np.int64)],
        "candidate": [np.zeros(0, np.int64)],
        "relevance": [np.zeros(0, np.int8)],
        "targets": [np.zeros((0, len(model.aspects)), np.float32)],
    }
    triples = []
    for found in find_candidates(split, queries, model, cfg, seed, pair_block):
        row, chosen, grades = split.rows[found.query], found.chosen, found.grades
        columns["query"].append(np.full(len(chosen), row))
        columns["candidate"].append(split.rows[chosen])
        columns["relevance"].append(grades)
        columns["targets"].append(found.targets)
        positives = chosen[grades >= 1]
        positives = positives[np.argsort(-found.combined[grades >= 1], kind="stable")]
        for pos, neg in zip(positives[: cfg["triples_per_query"]], found.hard, strict=False):
            triples.append((row, split.rows[pos], split.rows[neg]))
    pairs = {name: np.concatenate(parts) for name, parts in columns.items()}
    return pairs, np.asarray(triples, dtype=np.int64).reshape(-1, 3)
