"""Evaluate any scoring of one split's clips: both tasks, faithfulness and counterfactuals.

Shared by the oracle's validation gate and the evaluation pipeline, so every system is
measured the same way (docs/design.md, "Evaluation"):

* queries are the split's clips; candidates are the split's clips (clip→clip) or tracks
  (clip→track); the query's own track is excluded in both;
* a candidate clip's grade comes from the relevance model; a candidate track's grade is
  the best grade among its clips, and its score aggregates its clips' scores (top-k mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.relevance import RelevanceModel
from expressive_retrieval.evaluation.aspect_checks import (
    counterfactual_shares,
    faithfulness_matrix,
    faithfulness_verdict,
)
from expressive_retrieval.evaluation.metrics import per_query_metrics, summarise
from expressive_retrieval.vectors.aspects import normalised_weights
from expressive_retrieval.vectors.track_scores import aggregate_to_tracks

TASKS = ("clip_to_clip", "clip_to_track")


@dataclass
class SplitView:
    """Queries × candidates of one split, with their relevance."""

    clip_ids: np.ndarray  # [N] query = candidate clips
    track_ids: np.ndarray  # [T] candidate tracks
    clip_track: np.ndarray  # [N] index into track_ids
    targets: np.ndarray  # [N, N, A] per-aspect target similarity
    grades: np.ndarray  # [N, N] clip relevance
    valid: np.ndarray  # [N, N] candidate clip is from another track
    track_grades: np.ndarray  # [N, T]
    track_valid: np.ndarray  # [N, T]
    model: RelevanceModel

    @property
    def aspects(self) -> list[str]:
        return self.model.aspects


@dataclass
class SystemScores:
    """One system's scores of a split view's queries against its candidates."""

    clip: np.ndarray  # [N, N] clip→clip scores (finite wherever view.valid)
    track: np.ndarray  # [N, T] clip→track scores
    aspects: np.ndarray | None = None  # [N, N, A] per-aspect sub-scores, if the system has them
    retrieved: np.ndarray | None = None  # [N, N] what the system returned (None: everything)
    track_retrieved: np.ndarray | None = None  # [N, T]
    seconds: float = 0.0  # wall time of the scoring


def split_view(
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    relevance_model: dict[str, Any],
    split: str,
) -> SplitView:
    """Build the query/candidate relevance of ``split`` (clips ordered by ``clip_id``)."""
    model = RelevanceModel.from_dict(relevance_model)
    members = clips[clips["split"] == split].sort_values("clip_id", kind="stable")
    if members.empty:
        raise ValueError(f"split {split!r} has no clips to evaluate")
    z = model.standardize(clip_aspect_features.set_index("clip_id").loc[members["clip_id"]])
    targets = model.targets(z, z)
    grades = model.grades(targets)
    track_ids, clip_track = np.unique(members["track_id"].to_numpy(), return_inverse=True)
    valid = clip_track[:, None] != clip_track[None, :]
    track_valid = clip_track[:, None] != np.arange(len(track_ids))[None, :]
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
        model=model,
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
    """Score candidate tracks ``[N, T]`` through their clips' scores ``[N, N]``."""
    return aggregate_to_tracks(scores, view.clip_track, len(view.track_ids), how=how, k=k)


def scores_from_aspects(
    view: SplitView, aspect_scores: np.ndarray, track_scoring: dict[str, Any], seconds: float = 0.0
) -> SystemScores:
    """Default-weight totals of per-aspect scores ``[N, N, A]``; tracks through their clips."""
    total = aspect_scores @ normalised_weights(view.model.weights, len(view.aspects))
    track = aggregate_clip_scores(view, total, **track_scoring)
    return SystemScores(total, track, aspects=aspect_scores, seconds=seconds)


def ranking_report(
    view: SplitView, scores: np.ndarray, track_scores: np.ndarray
) -> dict[str, dict[str, float]]:
    """Metrics for both tasks from clip scores ``[N, N]`` and track scores ``[N, T]``."""
    return {
        task: summarise(frame)
        for task, frame in per_query_report(view, scores, track_scores).items()
    }


def per_query_report(
    view: SplitView,
    scores: np.ndarray,
    track_scores: np.ndarray,
    retrieved: np.ndarray | None = None,
    track_retrieved: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """``per_query_metrics`` of both tasks (rows = ``view.clip_ids``).

    ``retrieved`` / ``track_retrieved`` mark what a system returned (default: everything).
    """
    return {
        "clip_to_clip": per_query_metrics(
            scores, view.grades, list(view.clip_ids), view.valid, retrieved=retrieved
        ),
        "clip_to_track": per_query_metrics(
            track_scores,
            view.track_grades,
            list(view.track_ids),
            view.track_valid,
            retrieved=track_retrieved,
        ),
    }


def aspect_report(
    view: SplitView, aspect_scores: np.ndarray, params: dict[str, Any]
) -> dict[str, Any]:
    """Faithfulness matrix and counterfactual shares from per-aspect scores ``[N, N, A]``.

    Args:
        params: ``faithfulness_min_diagonal``, ``faithfulness_min_margin``,
            ``counterfactual_boost``, ``counterfactual_top_k``, ``counterfactual_min_share``.
    """
    matrix = faithfulness_matrix(aspect_scores[view.valid], view.targets[view.valid])
    faithfulness = faithfulness_verdict(
        matrix,
        view.aspects,
        params["faithfulness_min_diagonal"],
        params["faithfulness_min_margin"],
    )
    shares = counterfactual_shares(
        aspect_scores,
        view.targets,
        view.valid,
        np.asarray(view.model.weights),
        params["counterfactual_boost"],
        params["counterfactual_top_k"],
    )
    counterfactual: dict[str, Any] = {
        a: {"share_moved_as_expected": float(s)} for a, s in zip(view.aspects, shares, strict=True)
    }
    counterfactual["passed"] = bool((shares >= params["counterfactual_min_share"]).all())
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


def ranking_failures(
    systems: dict[str, dict[str, dict[str, float]]],
    system: str,
    baseline: str,
    min_ratio: float,
    tasks: tuple[str, ...] = TASKS,
) -> list[str]:
    """``ranking:`` lines for every task where ``system``'s nDCG@10 < ``min_ratio`` × baseline's."""
    failures = []
    for task in tasks:
        value, reference = systems[system][task]["ndcg@10"], systems[baseline][task]["ndcg@10"]
        if value < min_ratio * reference:
            failures.append(
                f"ranking: {task} nDCG@10 {system} {value:.3f} < {min_ratio} x "
                f"{baseline} {reference:.3f}"
            )
    return failures


def aspect_failures(report: dict[str, Any], params: dict[str, Any], label: str = "") -> list[str]:
    """``aspect_faithfulness:`` and ``counterfactual:`` lines of a failed ``aspect_report``.

    ``label`` prefixes each aspect (e.g. ``"oracle/"``) when several systems are checked.
    """
    failures = []
    for aspect, verdict in report["aspect_faithfulness"]["per_aspect"].items():
        if not verdict["passed"]:
            failures.append(
                f"aspect_faithfulness: {label}{aspect} diagonal {verdict['diagonal']:.3f} "
                f"(min {params['faithfulness_min_diagonal']}), margin {verdict['margin']:.3f} "
                f"(min {params['faithfulness_min_margin']})"
            )
    for aspect, result in report["counterfactual"].items():
        if aspect != "passed" and (
            result["share_moved_as_expected"] < params["counterfactual_min_share"]
        ):
            failures.append(
                f"counterfactual: {label}{aspect} moved {result['share_moved_as_expected']:.2f} "
                f"of queries (min {params['counterfactual_min_share']})"
            )
    return failures
