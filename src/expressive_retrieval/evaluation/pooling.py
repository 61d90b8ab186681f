"""Judging a large split by pooling, as TREC builds its qrels.

Each pooling system ranks every candidate of a query cheaply, in blocks of queries
(``scorers.py``; vector systems in one product with default-weight query vectors): a
block's scores are ``[b, N]`` (``b`` shrinks as the split grows, so a block stays within
``BLOCK_VALUES`` values) and its track scores come from them as the systems score tracks
(``aggregate_runs``: the best ``k`` clips of each track in ``k`` passes). The union of
their top ``depth`` clips is the query's clip pool and the union of their top
``track_depth`` tracks its track pool. Only pooled pairs get relevance
grades, the expensive oracle scores only them (and every clip of a pooled track, so a
track's score and grade are exact), and every system is measured on its ranking of the
pool: a candidate outside it is unjudged and counts as non-relevant (docs/evaluation.md,
"Pooling").
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol

import numpy as np

from expressive_retrieval.evaluation.retrieval import SplitView, SystemScores, aggregate_clip_scores
from expressive_retrieval.evaluation.scorers import PairScores, RandomScorer, VectorScorer
from expressive_retrieval.vectors.track_scores import aggregate_runs

QUERY_BLOCK = 256  # queries scored against their pool at once (at most, against every clip)
BLOCK_VALUES = 1 << 24  # most scores of one block against every clip (per aspect included)


class Scorer(Protocol):
    """A system that scores any (query, candidate) clip pairs: ``scorers.py``."""

    seconds: float

    def pair_scores(self, queries: np.ndarray, columns: np.ndarray | None) -> PairScores: ...


def _blocks(num_queries: int, size: int = QUERY_BLOCK) -> list[np.ndarray]:
    return [
        np.arange(start, min(start + size, num_queries)) for start in range(0, num_queries, size)
    ]


def top_columns(scores: np.ndarray, depth: int) -> np.ndarray:
    """Each row's ``depth`` best finite columns ``[b, depth]`` in ascending order, -1 padded.

    Ties at the cut go to the higher column, as trec_eval orders ties by descending id
    (columns follow ascending ids).
    """
    depth = min(depth, scores.shape[1])
    if depth == 0:
        return np.zeros((len(scores), 0), dtype=np.int64)
    kth = -np.partition(-scores, depth - 1, axis=1)[:, depth - 1 : depth]
    above, tie = scores > kth, scores == kth
    need = depth - above.sum(axis=1, keepdims=True)
    from_right = np.cumsum(tie[:, ::-1], axis=1)[:, ::-1]
    chosen = (above | (tie & (from_right <= need))) & np.isfinite(scores)
    rows, found = np.nonzero(chosen)  # row-major: ascending columns within a row, O(N) a row
    counts = chosen.sum(axis=1)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    columns = np.full((len(scores), depth), -1, dtype=np.int64)
    columns[rows, slot] = found
    return columns


def union(lists: list[np.ndarray], size: int) -> np.ndarray:
    """Per row, the distinct values ``>= 0`` of ``lists`` (each ``[Q, k]``), ascending, -1 padded."""
    stacked = np.concatenate(lists, axis=1)
    values = np.sort(np.where(stacked >= 0, stacked, size), axis=1)
    repeated = np.zeros(values.shape, dtype=bool)
    repeated[:, 1:] = values[:, 1:] == values[:, :-1]
    values = np.sort(np.where(repeated, size, values), axis=1)
    width = int((values < size).sum(axis=1).max(initial=0))
    values = values[:, :width]
    return np.where(values < size, values, -1)


def member_scores(values: np.ndarray, members: np.ndarray, how: str, k: int) -> np.ndarray:
    """Track scores ``[b, Pt]`` from their clips' scores ``[b, Pt, M]`` (``members`` -1: no clip).

    ``aggregate_to_tracks`` over a table of members: the best clip (``max``) or the mean
    of the best ``min(k, clips)`` (``topk_mean``); -inf for a track slot without clips.
    """
    values = np.where(members >= 0, values, -np.inf)
    if how == "max":
        return values.max(axis=-1)
    assert how == "topk_mean", how
    count = np.minimum((members >= 0).sum(axis=-1), k)
    best = -np.sort(-values, axis=-1)[..., :k]
    taken = np.arange(best.shape[-1]) < count[..., None]
    total = np.where(taken, best, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), -np.inf)


def _ranking(scorer: Scorer, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A system's totals of ``queries`` against every clip ``[b, N]``, and what it returned."""
    if isinstance(scorer, VectorScorer):
        return scorer.totals(queries), None
    total, _, retrieved = scorer.pair_scores(queries, None)
    return total, retrieved


def _track_lists(view: SplitView, tracks: np.ndarray) -> np.ndarray:
    """``[b, Pt, M]``: the clips of each listed track (-1 padded)."""
    return np.where(tracks[..., None] >= 0, view.track_members[np.maximum(tracks, 0)], -1)


def top_candidates(
    view: SplitView, scorer: Scorer, depth: int, track_depth: int, track_scoring: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """A system's top ``depth`` clips ``[Q, depth]`` and ``track_depth`` tracks per query,
    ranked by its scores (ties as ``top_columns``)."""
    clips, tracks = [], []
    every_track = np.arange(len(view.track_ids))[None, :]
    size = int(np.clip(BLOCK_VALUES // len(view.clip_ids), 1, QUERY_BLOCK))
    for rows in _blocks(len(view.query_clips), size):
        queries = view.query_clips[rows]
        total, retrieved = _ranking(scorer, queries)
        own = view.clip_track[queries][:, None]
        valid = view.clip_track[None, :] != own
        if retrieved is not None:
            valid &= retrieved
        masked = np.where(valid, total, -np.inf)
        if isinstance(scorer, RandomScorer):
            track = scorer.track_scores(queries, None)
        else:
            track = aggregate_runs(masked, view.track_runs, **track_scoring)
        clips.append(top_columns(masked, depth))
        tracks.append(top_columns(np.where(every_track != own, track, -np.inf), track_depth))
    return np.concatenate(clips), np.concatenate(tracks)


def judge_pool(
    view: SplitView,
    scorers: dict[str, Scorer],
    depth: int,
    track_depth: int,
    track_scoring: dict[str, Any],
) -> SplitView:
    """The view judged on the pool of ``scorers``' tops (an unpooled view as is).

    Grades, targets and validity are computed for the pooled pairs only; a pooled track's
    grade is its best clip's.
    """
    if not view.pooled:
        return view
    started = time.perf_counter()
    tops = [
        top_candidates(view, scorer, depth, track_depth, track_scoring)
        for scorer in scorers.values()
    ]
    candidates = union([c for c, _ in tops], len(view.clip_ids))
    tracks = union([t for _, t in tops], len(view.track_ids))
    targets = np.zeros((*candidates.shape, len(view.aspects)), dtype=np.float32)
    track_grades = np.zeros(tracks.shape, dtype=np.int64)
    for rows in _blocks(len(candidates)):
        query = view.features[view.query_clips[rows]]
        targets[rows] = view.model.targets(query, view.features[np.maximum(candidates[rows], 0)])
        lists = _track_lists(view, tracks[rows])
        flat = lists.reshape(len(rows), -1)
        grades = view.model.grades(view.model.targets(query, view.features[np.maximum(flat, 0)]))
        best = member_scores(grades.reshape(lists.shape).astype(np.float64), lists, "max", 1)
        track_grades[rows] = np.maximum(best, 0)
    own = view.query_track[:, None]
    valid = (candidates >= 0) & (view.clip_track[np.maximum(candidates, 0)] != own)
    track_valid = (tracks >= 0) & (tracks != own)
    return dataclasses.replace(
        view,
        targets=targets,
        grades=np.where(valid, view.model.grades(targets), 0).astype(np.int64),
        valid=valid,
        track_grades=np.where(track_valid, track_grades, 0),
        track_valid=track_valid,
        candidates=candidates,
        track_candidates=tracks,
        pooling={
            "depth": depth,
            "track_depth": track_depth,
            "systems": list(scorers),
            "judged_pairs": {
                "clip_to_clip": int(valid.sum()),
                "clip_to_track": int(track_valid.sum()),
            },
            "mean_pool_size": {
                "clip_to_clip": round(float(valid.sum(1).mean()), 1),
                "clip_to_track": round(float(track_valid.sum(1).mean()), 1),
            },
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


def _positions(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Column of each of ``values`` ``[b, k]`` within its row of ``rows`` ``[b, W]``
    (ascending, -1 padded at the end, every value >= 0 present); a -1 value gets any column."""
    size = int(max(rows.max(initial=0), values.max(initial=0))) + 1
    offset = np.arange(len(rows))[:, None] * (size + 1)
    keys = (np.where(rows >= 0, rows, size) + offset).ravel()
    probe = np.where(values >= 0, values, size) + offset
    found = np.searchsorted(keys, probe) - np.arange(len(rows))[:, None] * rows.shape[1]
    return np.clip(found, 0, rows.shape[1] - 1)


def _pooled_pairs(
    view: SplitView, scorer: Scorer, track_scoring: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """``pair_scores`` of the clip pool, and the track pool's scores ``[Q, Pt]`` (-inf: a
    track none of whose clips the system returned). Each pair is scored once per query:
    the pooled clips and the pooled tracks' clips overlap."""
    parts, tracks = [], []
    for rows in _blocks(len(view.query_clips)):
        clips, queries = view.candidates[rows], view.query_clips[rows]
        if isinstance(scorer, RandomScorer):
            parts.append(scorer.pair_scores(queries, clips))
            tracks.append(scorer.track_scores(queries, view.track_candidates[rows]))
            continue
        lists = _track_lists(view, view.track_candidates[rows])
        flat = lists.reshape(len(rows), -1)
        both = union([clips, flat], len(view.clip_ids))
        if both.shape[1] == 0:
            both = np.full((len(rows), 1), -1)
        total, aspects, retrieved = scorer.pair_scores(queries, both)
        at, at_track = _positions(both, clips), _positions(both, flat)
        parts.append(
            (
                np.take_along_axis(total, at, axis=1),
                None if aspects is None else np.take_along_axis(aspects, at[..., None], axis=1),
                None
                if retrieved is None
                else np.take_along_axis(retrieved, at, axis=1) & (clips >= 0),
            )
        )
        track = np.take_along_axis(total, at_track, axis=1)
        if retrieved is not None:
            track = np.where(np.take_along_axis(retrieved, at_track, axis=1), track, -np.inf)
        tracks.append(member_scores(track.reshape(lists.shape), lists, **track_scoring))
    total = np.concatenate([p[0] for p in parts])
    aspects = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    retrieved = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    return total, aspects, retrieved, np.concatenate(tracks)


def system_scores(view: SplitView, scorer: Scorer, track_scoring: dict[str, Any]) -> SystemScores:
    """A scorer's scores of the view's candidates: every pair, or the pool in blocks."""
    started = time.perf_counter()
    if view.candidates is None:
        queries = view.query_clips
        total, aspects, retrieved = scorer.pair_scores(queries, None)
        if isinstance(scorer, RandomScorer):
            track = scorer.track_scores(queries, None)
        else:
            masked = (
                total if retrieved is None else np.where(retrieved & view.valid, total, -np.inf)
            )
            track = aggregate_clip_scores(view, masked, **track_scoring)
    else:
        total, aspects, retrieved, track = _pooled_pairs(view, scorer, track_scoring)
    if retrieved is not None:
        retrieved &= view.valid
    return SystemScores(
        total,
        np.where(np.isfinite(track), track, 0.0),
        aspects=aspects,
        retrieved=retrieved,
        track_retrieved=None if retrieved is None else np.isfinite(track),
        seconds=scorer.seconds + time.perf_counter() - started,
    )
