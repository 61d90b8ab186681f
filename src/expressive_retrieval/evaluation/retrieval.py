"""Evaluate any scoring of one split's clips: both tasks, faithfulness and counterfactuals.

Shared by the oracle's validation gate and the evaluation pipeline, so every system is
measured the same way (docs/design.md, "Evaluation"):

* queries are the split's clips (a seeded sample of them above ``evaluation.queries.max``:
  ``queries.py``); candidates are every clip of the split (clip→clip) or its tracks
  (clip→track); the query's own track is excluded in both;
* a candidate clip's grade comes from the relevance model; a candidate track's grade is
  the best grade among its clips, and its score aggregates its clips' scores (top-k mean);
* a large split is judged on a pool (``evaluation/pooling.py``): each query's pair
  matrices are then over its own pooled candidates (``candidates``, ``track_candidates``)
  instead of every clip and track.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.relevance import RelevanceModel
from expressive_retrieval.evaluation.aspect_checks import (
    counterfactual_changes,
    counterfactual_shares,
    faithfulness_matrix,
    faithfulness_verdict,
)
from expressive_retrieval.evaluation.metrics import per_query_metrics, recall_cutoffs
from expressive_retrieval.evaluation.queries import sample_queries
from expressive_retrieval.evaluation.uncertainty import Resampler
from expressive_retrieval.vectors.aspects import normalised_weights
from expressive_retrieval.vectors.track_scores import TrackRuns, aggregate_to_tracks, track_runs

TASKS = ("clip_to_clip", "clip_to_track")


@dataclass
class SplitView:
    """Queries × candidates of one split, with their relevance.

    The queries are ``Q`` of the split's ``N`` clips (``queries``; None: every clip). The
    pair matrices are ``[Q, P]`` over each query's candidates: every clip (``P = N``,
    ``candidates`` None) or its pool (``candidates [Q, P]``, clip indices, -1 padded);
    the same for tracks (``T``, ``track_candidates``).
    """

    clip_ids: np.ndarray  # [N] candidate clips (the queries among them)
    track_ids: np.ndarray  # [T] candidate tracks
    clip_track: np.ndarray  # [N] index into track_ids
    targets: np.ndarray  # [Q, P, A] per-aspect target similarity
    grades: np.ndarray  # [Q, P] clip relevance
    valid: np.ndarray  # [Q, P] candidate clip is from another track (and not a pad slot)
    track_grades: np.ndarray  # [Q, Pt]
    track_valid: np.ndarray  # [Q, Pt]
    units: np.ndarray  # [N] each clip's independent unit (its track, or its track's group)
    model: RelevanceModel
    features: np.ndarray  # [N, F] standardised clip features (targets of any pair)
    candidates: np.ndarray | None = None  # [Q, P] pooled clips; None: every clip
    track_candidates: np.ndarray | None = None  # [Q, Pt] pooled tracks; None: every track
    pooling: dict[str, Any] | None = None  # how the pool was drawn; None: exhaustive
    queries: np.ndarray | None = None  # [Q] clip indices of the queries; None: every clip

    @property
    def query_clips(self) -> np.ndarray:
        """``[Q]`` clip index of each query (row of the pair matrices)."""
        return np.arange(len(self.clip_ids)) if self.queries is None else self.queries

    @property
    def query_ids(self) -> np.ndarray:
        return self.clip_ids[self.query_clips]

    @property
    def query_track(self) -> np.ndarray:
        return self.clip_track[self.query_clips]

    @property
    def aspects(self) -> list[str]:
        return self.model.aspects

    @property
    def pooled(self) -> bool:
        return self.pooling is not None

    @property
    def num_candidates(self) -> dict[str, int]:
        """Per task, the fewest candidates any query ranks (judged or not)."""
        per_track = np.bincount(self.clip_track, minlength=len(self.track_ids))
        return {
            "clip_to_clip": int((len(self.clip_ids) - per_track[self.query_track]).min()),
            "clip_to_track": len(self.track_ids) - 1,
        }

    @cached_property
    def track_members(self) -> np.ndarray:
        """``[T, M]``: each track's clip indices, -1 padded to the most clips of a track."""
        counts = np.bincount(self.clip_track, minlength=len(self.track_ids))
        by_track = np.argsort(self.clip_track, kind="stable")
        table = np.full((len(counts), counts.max(initial=1)), -1, dtype=np.int64)
        within = np.arange(len(by_track)) - np.repeat(np.cumsum(counts) - counts, counts)
        table[self.clip_track[by_track], within] = by_track
        return table

    @cached_property
    def track_runs(self) -> TrackRuns:
        """Clips grouped by track (``track_runs``; every track of a view has clips)."""
        return track_runs(self.clip_track, len(self.track_ids))

    def slot_clips(self, queries: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Clip indices of ``slots`` ``[..., k]`` of each query in ``queries``; -1 stays -1."""
        if self.candidates is None:
            return slots
        found = self.candidates[np.asarray(queries)[..., None], np.maximum(slots, 0)]
        return np.where(slots >= 0, found, -1)

    def clip_slots(self, queries: np.ndarray, clips: np.ndarray) -> np.ndarray:
        """Slots of clip indices ``clips`` for each (query, clip) pair; -1 outside the pool."""
        if self.candidates is None:
            return np.asarray(clips)
        matches = self.candidates[queries] == np.asarray(clips)[:, None]
        return np.where(matches.any(axis=1), matches.argmax(axis=1), -1)

    @property
    def recall_ks(self) -> dict[str, tuple[int, ...]]:
        """Per task, the Recall@K cut-offs its fewest-candidate query supports."""
        return {task: recall_cutoffs(n) for task, n in self.num_candidates.items()}

    def resampler(self, uncertainty: dict[str, Any]) -> Resampler:
        """Seeded cluster draws over ``units`` (``resamples``, ``seed`` from conf)."""
        units = self.units[self.query_clips]
        return Resampler.draw(units, uncertainty["resamples"], uncertainty["seed"])


@dataclass
class SystemScores:
    """One system's scores of a split view's queries against its candidates."""

    clip: np.ndarray  # [Q, P] clip→clip scores (finite wherever view.valid)
    track: np.ndarray  # [Q, Pt] clip→track scores
    aspects: np.ndarray | None = None  # [Q, P, A] per-aspect sub-scores, if the system has them
    retrieved: np.ndarray | None = None  # [Q, P] what the system returned (None: everything)
    track_retrieved: np.ndarray | None = None  # [Q, Pt]
    seconds: float = 0.0  # wall time of the scoring


def split_view(
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    relevance_model: dict[str, Any],
    split: str,
    splits: pd.DataFrame | None = None,
    unit: str = "track_id",
    pooled: bool = False,
    queries: dict[str, Any] | None = None,
) -> SplitView:
    """Build the query/candidate relevance of ``split`` (clips ordered by ``clip_id``).

    ``unit`` names the column of ``splits`` (``track_id`` or ``group_id``) whose values are
    the independent units that intervals resample; without ``splits``, tracks. ``pooled``
    leaves the pool empty (no pair is judged) for ``pooling.judge_pool`` to fill.
    ``queries`` (``max``, ``seed``) bounds the queries: above ``max`` clips, a sample
    stratified over the units (``queries.sample_queries``); every clip stays a candidate.
    """
    model = RelevanceModel.from_dict(relevance_model)
    members = clips[clips["split"] == split].sort_values("clip_id", kind="stable")
    if members.empty:
        raise ValueError(f"split {split!r} has no clips to evaluate")
    z = model.standardize(clip_aspect_features.set_index("clip_id").loc[members["clip_id"]])
    track_ids, clip_track = np.unique(members["track_id"].to_numpy(), return_inverse=True)
    query_tracks = members["track_id"].to_numpy()
    units = (
        query_tracks
        if splits is None
        else splits.set_index("track_id")[unit].loc[query_tracks].to_numpy()
    )
    units = units.astype(str)
    chosen = None
    if queries is not None and len(z) > queries["max"]:
        chosen = sample_queries(units, clip_track, queries["max"], queries["seed"])
    rows = np.arange(len(z)) if chosen is None else chosen
    if pooled:
        empty = np.zeros((len(rows), 0), dtype=np.int64)
        return SplitView(
            clip_ids=members["clip_id"].to_numpy(),
            track_ids=track_ids,
            clip_track=clip_track,
            targets=np.zeros((len(rows), 0, len(model.aspects)), dtype=np.float32),
            grades=empty,
            valid=empty.astype(bool),
            track_grades=empty,
            track_valid=empty.astype(bool),
            units=units,
            model=model,
            features=z,
            candidates=empty,
            track_candidates=empty,
            pooling={},
            queries=chosen,
        )
    targets = model.targets(z if chosen is None else z[chosen], z)
    grades = model.grades(targets)
    valid = clip_track[rows, None] != clip_track[None, :]
    track_valid = clip_track[rows, None] != np.arange(len(track_ids))[None, :]
    track_grades = aggregate_to_tracks(
        grades.astype(np.float64), clip_track, len(track_ids), how="max"
    ).astype(np.int64)
    return SplitView(
        clip_ids=members["clip_id"].to_numpy(),
        track_ids=track_ids,
        clip_track=clip_track,
        targets=targets,
        grades=grades.astype(np.int64),
        valid=valid,
        track_grades=track_grades,
        track_valid=track_valid,
        units=units,
        model=model,
        features=z,
        queries=chosen,
    )


def view_clips(table: pd.DataFrame, view: SplitView) -> pd.DataFrame:
    """Rows of a table keyed by ``clip_id`` (``clips``, ``clip_ids``) for the view's clips,
    in the view's order, with their row positions in ``table`` as column ``row``."""
    positions = pd.Series(np.arange(len(table)), index=table["clip_id"].to_numpy())
    return (
        table.set_index("clip_id")
        .loc[view.clip_ids]
        .reset_index()
        .assign(row=positions.loc[view.clip_ids].to_numpy())
    )


def aggregate_clip_scores(view: SplitView, scores: np.ndarray, how: str, k: int) -> np.ndarray:
    """Score candidate tracks ``[Q, T]`` through their clips' scores ``[Q, N]`` (every pair
    judged; a pool scores its tracks' clips apart: ``pooling.system_scores``)."""
    assert view.candidates is None, "a pooled view scores its tracks through pooling"
    return aggregate_to_tracks(scores, view.clip_track, len(view.track_ids), how=how, k=k)


def scores_from_aspects(
    view: SplitView, aspect_scores: np.ndarray, track_scoring: dict[str, Any], seconds: float = 0.0
) -> SystemScores:
    """Default-weight totals of per-aspect scores ``[Q, N, A]``; tracks through their clips."""
    total = aspect_scores @ normalised_weights(view.model.weights, len(view.aspects))
    track = aggregate_clip_scores(view, total, **track_scoring)
    return SystemScores(total, track, aspects=aspect_scores, seconds=seconds)


def per_query_report(
    view: SplitView,
    scores: np.ndarray,
    track_scores: np.ndarray,
    retrieved: np.ndarray | None = None,
    track_retrieved: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """``per_query_metrics`` of both tasks (rows = ``view.query_ids``), recall at ``recall_ks``.

    ``retrieved`` / ``track_retrieved`` mark what a system returned (default: everything).
    """
    ks = view.recall_ks
    return {
        "clip_to_clip": per_query_metrics(
            scores,
            view.grades,
            list(view.clip_ids),
            view.valid,
            ks["clip_to_clip"],
            retrieved=retrieved,
            candidates=view.candidates,
        ),
        "clip_to_track": per_query_metrics(
            track_scores,
            view.track_grades,
            list(view.track_ids),
            view.track_valid,
            ks["clip_to_track"],
            retrieved=track_retrieved,
            candidates=view.track_candidates,
        ),
    }


def aspect_report(
    view: SplitView, aspect_scores: np.ndarray, checks: dict[str, Any], resampler: Resampler
) -> dict[str, Any]:
    """Faithfulness matrix and counterfactual effects from per-aspect scores ``[Q, P, A]``.

    For each aspect ``a``, raising its weight changes every query's top-``k`` mean targets:
    ``effect`` is the change of ``target_a`` and ``worst_other`` the other aspect whose
    change has the lowest lower bound, each with its mean and 95% cluster-bootstrap
    interval; ``share_moved_as_expected`` counts the queries whose ``target_a`` rose.

    Args:
        checks: ``faithfulness_min_diagonal``, ``faithfulness_min_margin``,
            ``counterfactual_boost``, ``counterfactual_top_k``,
            ``counterfactual_min_effect``, ``counterfactual_max_other_drop``.
    """
    matrix = faithfulness_matrix(aspect_scores[view.valid], view.targets[view.valid])
    faithfulness = faithfulness_verdict(
        matrix,
        view.aspects,
        checks["faithfulness_min_diagonal"],
        checks["faithfulness_min_margin"],
    )
    changes = counterfactual_changes(
        aspect_scores,
        view.targets,
        view.valid,
        np.asarray(view.model.weights),
        checks["counterfactual_boost"],
        checks["counterfactual_top_k"],
    )
    num = len(view.aspects)
    flat = changes.transpose(1, 0, 2).reshape(changes.shape[1], num * num)
    low, high = (bound.reshape(num, num) for bound in resampler.interval(flat))
    mean = flat.mean(0).reshape(num, num)
    counterfactual: dict[str, Any] = {}
    passed = True
    for a, aspect in enumerate(view.aspects):
        others = [b for b in range(num) if b != a]
        worst = min(others, key=lambda b: low[a, b]) if others else a
        effect = {"mean": float(mean[a, a]), "low": float(low[a, a]), "high": float(high[a, a])}
        other = {
            "aspect": view.aspects[worst],
            "mean": float(mean[a, worst]) if others else 0.0,
            "low": float(low[a, worst]) if others else 0.0,
            "high": float(high[a, worst]) if others else 0.0,
        }
        counterfactual[aspect] = {
            "share_moved_as_expected": float((changes[a, :, a] > 1e-6).mean()),
            "effect": effect,
            "worst_other": other,
        }
        passed &= (
            effect["low"] > checks["counterfactual_min_effect"]
            and other["low"] >= -checks["counterfactual_max_other_drop"]
        )
    counterfactual["passed"] = bool(passed)
    return {"aspect_faithfulness": faithfulness, "counterfactual": counterfactual}


def counterfactual_curves(
    view: SplitView, aspect_scores: np.ndarray, boosts: list[float], k: int
) -> dict[str, list[float]]:
    """Share of queries moved towards each aspect for every boost: ``{aspect: [share]}``."""
    weights = np.asarray(view.model.weights)
    shares = np.stack(
        [
            counterfactual_shares(aspect_scores, view.targets, view.valid, weights, boost, k)
            for boost in boosts
        ],
        axis=1,
    )
    return {a: [float(s) for s in row] for a, row in zip(view.aspects, shares, strict=True)}
