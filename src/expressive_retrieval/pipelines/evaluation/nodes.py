"""Nodes of ``evaluation``: the split's view, measuring every system, exporting TREC files.

Every system ranks the split's clips (clip→clip) and tracks (clip→track) for every clip of
the split as a query (a stratified sample of them above ``queries.max``), the query's own
track excluded (docs/design.md, "Evaluation"); the
scores come from ``scoring.py`` (every pair, or a pool for a large split). Systems with
per-aspect sub-scores also get the faithfulness matrix, counterfactual effects and
curves; every mean gets its interval. The report, its pages and the gates are in
``reporting.py``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.evaluation.metrics import (
    format_qrels,
    format_run,
    summarise,
    task_metrics,
)
from expressive_retrieval.evaluation.retrieval import (
    TASKS,
    SplitView,
    SystemScores,
    aspect_report,
    counterfactual_curves,
    per_query_report,
    split_view,
)
from expressive_retrieval.evaluation.uncertainty import compare_pairs, finding

logger = logging.getLogger(__name__)

SYSTEMS = (
    "random",
    "cosine",
    "discovery_cosine",
    "oracle",
    "projection",
    "projection_distilled",
    "projection_distilled_ann",
    "projection_distilled_ivfpq",
)


def evaluation_view(
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    dataset_version: dict[str, Any],
    splits: pd.DataFrame,
    params: dict[str, Any],
    checks: dict[str, Any],
) -> SplitView:
    """Queries (every clip, or ``queries.max`` of them), candidates, independent units;
    graded relevance and aspect targets of every pair, or none yet when the split has more
    than ``pooling.above_clips`` clips."""
    unit = checks["uncertainty"]["unit"]
    pooled = int((clips["split"] == params["split"]).sum()) > params["pooling"]["above_clips"]
    view = split_view(
        clips,
        clip_aspect_features,
        dataset_version["relevance"],
        params["split"],
        splits,
        unit,
        pooled,
        params["queries"],
    )
    logger.info(
        "Evaluating on %s: %d query clips of %d, %d candidate tracks, %d independent units "
        "(%s) of which %d hold queries, %s",
        params["split"],
        len(view.query_clips),
        len(view.clip_ids),
        len(view.track_ids),
        len(np.unique(view.units)),
        unit,
        len(np.unique(view.units[view.query_clips])),
        "judged on a pool" if pooled else "every pair judged",
    )
    return view


def query_set(view: SplitView, queries: dict[str, Any]) -> dict[str, Any]:
    """Which clips query: ``all`` of the split's, or a ``sampled`` subset (how many of how
    many clips and units, its cap and seed)."""
    sampled = view.queries is not None
    return {
        "path": "sampled" if sampled else "all",
        "max": queries["max"],
        "seed": queries["seed"],
        "num_queries": len(view.query_clips),
        "of_clips": len(view.clip_ids),
        "num_units": len(np.unique(view.units[view.query_clips])),
        "of_units": len(np.unique(view.units)),
        "num_tracks": len(np.unique(view.query_track)),
        "of_tracks": len(view.track_ids),
    }


def all_systems(*groups: dict[str, SystemScores]) -> dict[str, SystemScores]:
    merged = {name: scores for group in groups for name, scores in group.items()}
    missing = set(SYSTEMS) - set(merged)
    assert not missing, f"systems without scores: {sorted(missing)}"
    return {name: merged[name] for name in SYSTEMS}


def judging(view: SplitView, task: str, pooling: dict[str, Any]) -> dict[str, Any]:
    """How a task's pairs were judged: ``exhaustive`` or ``pooled`` (depth, systems, pool size)."""
    valid = view.valid if task == "clip_to_clip" else view.track_valid
    if not view.pooled:
        return {
            "path": "exhaustive",
            "above_clips": pooling["above_clips"],
            "judged_pairs": int(valid.sum()),
        }
    return {
        "path": "pooled",
        "above_clips": pooling["above_clips"],
        "judged_pairs": view.pooling["judged_pairs"][task],
        "depth": view.pooling["depth"],
        "track_depth": view.pooling["track_depth"],
        "systems": view.pooling["systems"],
        "mean_pool_size": view.pooling["mean_pool_size"][task],
        "unjudged": "non-relevant",
    }


def comparison_pairs(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The paired comparisons: each learned system vs each baseline, then ``pairs``."""
    spec = params["comparisons"]
    learned = [(a, b) for a in spec["learned"] for b in spec["baselines"]]
    return learned + [(a, b) for a, b in spec["pairs"]]


def measure_systems(
    view: SplitView,
    system_scores: dict[str, SystemScores],
    oracle_scores: dict[str, SystemScores],
    params: dict[str, Any],
    checks: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Metrics with intervals of every system × task, paired comparisons, aspect checks.

    Returns:
        The measurements (the report's ``tasks``, ``intervals``, ``comparisons``,
        ``findings``, ``uncertainty``, ``aspect_faithfulness``, ``counterfactual``,
        ``counterfactual_curves`` and ``timing``) and the per-query metrics (one row per
        query × task × system).
    """
    systems = all_systems(system_scores, oracle_scores)
    resampler = view.resampler(checks["uncertainty"])
    tasks: dict[str, Any] = {}
    intervals: dict[str, Any] = {task: {} for task in TASKS}
    ndcg: dict[str, dict[str, np.ndarray]] = {task: {} for task in TASKS}
    frames = []
    for name, scores in systems.items():
        per_query = per_query_report(
            view, scores.clip, scores.track, scores.retrieved, scores.track_retrieved
        )
        for task, frame in per_query.items():
            metrics = task_metrics(view.recall_ks[task])
            summary = summarise(frame)
            task_report = tasks.setdefault(
                task,
                {
                    "num_queries": summary["num_queries"],
                    "num_queries_without_relevant": summary["num_queries_without_relevant"],
                    "num_candidates": view.num_candidates[task],
                    "recall_ks": list(view.recall_ks[task]),
                    "judging": judging(view, task, params["pooling"]),
                    "queries": query_set(view, params["queries"]),
                    "systems": {},
                },
            )
            task_report["systems"][name] = {metric: summary[metric] for metric in metrics}
            low, high = resampler.interval(frame[list(metrics)].to_numpy())
            intervals[task][name] = {
                m: {"low": float(lo), "high": float(hi)}
                for m, lo, hi in zip(metrics, low, high, strict=True)
            }
            ndcg[task][name] = frame["ndcg@10"].to_numpy()
            frames.append(frame.assign(query_clip_id=view.query_ids, task=task, system=name))
    alpha = params["comparisons"]["alpha"]
    comparisons = compare_pairs(ndcg, comparison_pairs(params), resampler, alpha, "ndcg@10")
    aspect_checks = checks["aspects"]
    faithfulness, counterfactual, curves = {}, {}, {}
    for name, scores in systems.items():
        if scores.aspects is None:
            continue
        started = time.perf_counter()
        report = aspect_report(view, scores.aspects, aspect_checks, resampler)
        faithfulness[name] = report["aspect_faithfulness"]
        counterfactual[name] = report["counterfactual"]
        curves[name] = counterfactual_curves(
            view,
            scores.aspects,
            params["counterfactual_boosts"],
            aspect_checks["counterfactual_top_k"],
        )
        logger.info("Aspect checks of %s in %.1fs", name, time.perf_counter() - started)
    per_query = pd.concat(frames).reset_index(drop=True)
    reported = task_metrics(tuple(set().union(*view.recall_ks.values())))
    columns = ["query_clip_id", "task", "system", *reported, "num_relevant"]
    measurements = {
        "tasks": tasks,
        "intervals": intervals,
        "comparisons": comparisons,
        "findings": [finding(c, task, alpha) for task in TASKS for c in comparisons[task]],
        "uncertainty": {
            "unit": checks["uncertainty"]["unit"],
            "num_units": resampler.num_clusters,
            "resamples": checks["uncertainty"]["resamples"],
            "seed": checks["uncertainty"]["seed"],
            "level": 0.95,
            "family_wise_alpha": alpha,
        },
        "aspect_faithfulness": faithfulness,
        "counterfactual": counterfactual,
        "counterfactual_curves": {"boosts": list(params["counterfactual_boosts"]), **curves},
        "timing": {name: {"scoring_seconds": round(s.seconds, 3)} for name, s in systems.items()},
    }
    return measurements, per_query[columns]


def export_trec(
    view: SplitView,
    system_scores: dict[str, SystemScores],
    oracle_scores: dict[str, SystemScores],
    params: dict[str, Any],
) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """TREC runs ``<task>/<system>.trec`` (top ``run_depth``), qrels ``<task>.qrels``."""
    systems = all_systems(system_scores, oracle_scores)
    depth = params["run_depth"]
    query_ids, clip_ids = list(view.query_ids), list(view.clip_ids)
    track_ids = list(view.track_ids)
    runs = {}
    for name, s in systems.items():
        runs[f"clip_to_clip/{name}.trec"] = format_run(
            query_ids, s.clip, clip_ids, view.valid, name, depth, s.retrieved, view.candidates
        )
        runs[f"clip_to_track/{name}.trec"] = format_run(
            query_ids,
            s.track,
            track_ids,
            view.track_valid,
            name,
            depth,
            s.track_retrieved,
            view.track_candidates,
        )
    qrels = {
        "clip_to_clip.qrels": format_qrels(
            query_ids, view.grades, clip_ids, view.valid, view.candidates
        ),
        "clip_to_track.qrels": format_qrels(
            query_ids, view.track_grades, track_ids, view.track_valid, view.track_candidates
        ),
    }
    summary = {
        "run_depth": depth,
        "runs": {path: text.count("\n") for path, text in runs.items()},
        "qrels": {path: text.count("\n") for path, text in qrels.items()},
    }
    return runs, qrels, summary
