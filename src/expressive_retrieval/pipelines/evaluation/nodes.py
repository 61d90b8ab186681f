"""Nodes of ``evaluation``: score every system on the test split, measure it, export TREC files.

Every system ranks the split's clips (clip→clip) and tracks (clip→track) for every clip of
the split as a query, the query's own track excluded (docs/design.md, "Evaluation").
A split above ``pooling.above_clips`` clips is judged on a pool: the cheap systems' top
``pooling.depth`` candidates, found in blocks; the oracle scores only the pool. Systems
with per-aspect sub-scores also get the faithfulness matrix, counterfactual effects and
curves; every mean gets its interval. The report, its pages and the gates are in
``reporting.py``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.evaluation.baselines import (
    discovery_layer_weights,
    layer_weighted_vectors,
)
from expressive_retrieval.evaluation.metrics import (
    format_qrels,
    format_run,
    summarise,
    task_metrics,
)
from expressive_retrieval.evaluation.pooling import Scorer, judge_pool, system_scores
from expressive_retrieval.evaluation.retrieval import (
    TASKS,
    SplitView,
    SystemScores,
    aspect_report,
    counterfactual_curves,
    per_query_report,
    scores_from_aspects,
    split_view,
    view_clips,
)
from expressive_retrieval.evaluation.scorers import (
    FoundScorer,
    PairScores,
    RandomScorer,
    VectorScorer,
)
from expressive_retrieval.evaluation.uncertainty import compare_pairs, finding
from expressive_retrieval.models import OracleConfig, OracleScorer, ProjectionConfig, ProjectionHead
from expressive_retrieval.vectors.aspects import normalised_weights, weight_query_vectors
from expressive_retrieval.vectors.index import build_index, large_index_config, search

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
    """Queries, candidates, independent units; graded relevance and aspect targets of every
    pair, or none yet when the split has more than ``pooling.above_clips`` clips."""
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
    )
    logger.info(
        "Evaluating on %s: %d query clips, %d candidate tracks, %d independent units (%s), %s",
        params["split"],
        len(view.clip_ids),
        len(view.track_ids),
        len(np.unique(view.units)),
        unit,
        "judged on a pool" if pooled else "every pair judged",
    )
    return view


def score_frozen_baselines(
    segments: SegmentStore,
    clips: pd.DataFrame,
    layer_evidence: dict[str, Any],
    view: SplitView,
    params: dict[str, Any],
) -> dict[str, Scorer]:
    """The baselines: ``cosine`` (all layers, mean), ``discovery_cosine`` (layers per aspect
    by evidence) and ``random`` (seeded uniform scores: chance level).

    Both cosines come from one streamed pass over the segments: row 0 of the layer mix is
    uniform, rows 1.. are the aspects' discovery weights.
    """
    started = time.perf_counter()
    evidence = discovery_layer_weights(layer_evidence, view.aspects)
    uniform = np.full((1, evidence.shape[1]), 1.0 / evidence.shape[1])
    vectors = layer_weighted_vectors(
        segments, view_clips(clips, view), np.vstack([uniform, evidence])
    )
    seconds = time.perf_counter() - started
    logger.info("Embedded the frozen baselines in %.1fs", seconds)
    per_aspect = vectors[:, 1:].reshape(len(vectors), -1)
    return {
        "random": RandomScorer(params["random_seed"], len(view.clip_ids), len(view.track_ids)),
        "cosine": VectorScorer(vectors[:, 0], seconds=seconds),
        "discovery_cosine": VectorScorer(
            per_aspect, len(view.aspects), view.model.weights, seconds
        ),
    }


@dataclass
class _OraclePairs:
    """The oracle as a pool scorer: per-aspect scores of any pairs from cached encodings."""

    model: OracleScorer
    encoded: torch.Tensor
    weights: list[float]
    seconds: float = 0.0

    def pair_scores(self, queries: np.ndarray, columns: np.ndarray | None) -> PairScores:
        assert columns is not None, "the oracle scores a pool only"
        per_aspect = self.model.score_lists(self.encoded[queries], self.encoded, columns)
        aspects = per_aspect.astype(np.float64)
        return aspects @ normalised_weights(self.weights, aspects.shape[-1]), aspects, None


def score_oracle(
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    view: SplitView,
    params: dict[str, Any],
) -> dict[str, SystemScores]:
    """The oracle over every (query, candidate) pair, or over the pool only; tracks as its
    config aggregates them."""
    model = OracleScorer.from_state(OracleConfig.from_dict(oracle_config), oracle_model).eval()
    track = {"how": model.config.track_aggregation, "k": model.config.track_topk}
    started = time.perf_counter()
    chunks = segments.iter_clip_chunks(clip_refs(view_clips(clips, view)), params["chunk_size"])
    if view.candidates is None:
        _, per_aspect = model.score_all(chunks)
        seconds = time.perf_counter() - started
        scores = scores_from_aspects(view, per_aspect.astype(np.float64), track, seconds)
    else:
        encoded = torch.cat([model.encode_clips(block) for block in chunks])
        pairs = _OraclePairs(model, encoded, view.model.weights, time.perf_counter() - started)
        scores = system_scores(view, pairs, track)
    judged = f"{scores.clip.size} pairs" if view.candidates is None else "the pool"
    logger.info("Oracle scored %s in %.1fs", judged, scores.seconds)
    return {"oracle": scores}


def _ann_found(
    index: Any, clip_ids: pd.DataFrame, queries: np.ndarray, view: SplitView, params: dict[str, Any]
) -> FoundScorer:
    """An index of the whole corpus searched with default-weight queries, hits kept on the split.

    Each query asks for ``ann_depth`` neighbours (at most the index size) and keeps those
    in the split. Candidates it did not return are not retrieved: they are absent from the
    run and never count as hits; a track is returned when its clips are.
    """
    depth = int(min(params["ann_depth"], index.ntotal))
    started = time.perf_counter()
    found_scores, rows = search(index, queries, depth)
    seconds = time.perf_counter() - started
    position = pd.Series(np.arange(len(view.clip_ids)), index=view.clip_ids)
    found_ids = clip_ids["clip_id"].to_numpy()[np.maximum(rows, 0)]
    columns = position.reindex(found_ids.ravel()).to_numpy().reshape(rows.shape)
    found = np.where((rows >= 0) & ~np.isnan(columns), np.nan_to_num(columns, nan=-1), -1)
    return FoundScorer(found.astype(np.int64), found_scores, len(view.clip_ids), seconds)


def score_projections(
    projection_config: dict[str, Any],
    clip_vectors: np.ndarray,
    clip_ids: pd.DataFrame,
    projection_ablation_model: dict[str, torch.Tensor],
    projection_ablation_config: dict[str, Any],
    clip_index: tuple[Any, dict[str, Any]],
    segments: SegmentStore,
    clips: pd.DataFrame,
    view: SplitView,
    params: dict[str, Any],
    index_params: dict[str, Any],
) -> dict[str, Scorer]:
    """``projection_distilled`` (shipped vectors, exact), ``projection``, and two indexes.

    The distilled system reads the shipped corpus vectors; the ablation (never shipped) is
    embedded here from the segments. ``projection_distilled_ann`` searches the shipped
    index; ``projection_distilled_ivfpq`` an index of the same vectors built here with the
    large-corpus configuration (``index_params["large"]``), so the approximate index is
    measured on real projected vectors whatever the corpus size.
    """
    config = ProjectionConfig.from_dict(projection_config)
    rows = view_clips(clip_ids, view)["row"].to_numpy()
    distilled = np.asarray(clip_vectors[rows], dtype=np.float32)
    started = time.perf_counter()
    head = ProjectionHead.from_state(
        ProjectionConfig.from_dict(projection_ablation_config), projection_ablation_model
    ).eval()
    with segments:
        plain = head.embed_numpy(
            segments.clips(clip_refs(view_clips(clips, view))), batch_size=params["chunk_size"]
        )
    embed_seconds = time.perf_counter() - started
    num_aspects, weights = len(config.aspects), view.model.weights
    systems: dict[str, Scorer] = {
        "projection_distilled": VectorScorer(distilled, num_aspects, weights),
        "projection": VectorScorer(plain, num_aspects, weights, embed_seconds),
    }
    queries = weight_query_vectors(distilled, config.default_weights, num_aspects)
    systems["projection_distilled_ann"] = _ann_found(clip_index[0], clip_ids, queries, view, params)
    factory, search_params = large_index_config(
        len(clip_vectors), clip_vectors.shape[1], index_params["large"]
    )
    large = build_index(clip_vectors, clip_vectors.shape[1], factory, search_params)
    systems["projection_distilled_ivfpq"] = _ann_found(large, clip_ids, queries, view, params)
    logger.info(
        "Scored the projections (ablation embedded in %.1fs, shipped %s index searched in "
        "%.2fs, %s %s in %.2fs)",
        embed_seconds,
        clip_index[1]["factory"],
        systems["projection_distilled_ann"].seconds,
        factory,
        search_params,
        systems["projection_distilled_ivfpq"].seconds,
    )
    return systems


def pool_view(
    view: SplitView,
    frozen_scorers: dict[str, Scorer],
    projection_scorers: dict[str, Scorer],
    params: dict[str, Any],
    checks: dict[str, Any],
) -> SplitView:
    """The split judged on the pool of ``pooling.systems``' top ``pooling.depth`` (a small
    split, judged on every pair, as is)."""
    pooling = params["pooling"]
    scorers = {**frozen_scorers, **projection_scorers}
    unknown = sorted(set(pooling["systems"]) - set(scorers))
    if unknown:
        raise ValueError(
            f"evaluation.pooling.systems: {unknown} cannot build the pool; choose among "
            f"{sorted(scorers)} (the oracle only scores the pool)"
        )
    chosen = {name: scorers[name] for name in pooling["systems"]}
    judged = judge_pool(
        view, chosen, pooling["depth"], pooling["track_depth"], checks["track_scoring"]
    )
    if judged.pooled:
        logger.info(
            "Pooled the top %d of %s in %.1fs: %s judged pairs per query on average",
            pooling["depth"],
            ", ".join(chosen),
            judged.pooling["seconds"],
            judged.pooling["mean_pool_size"],
        )
    return judged


def score_systems(
    view: SplitView,
    frozen_scorers: dict[str, Scorer],
    projection_scorers: dict[str, Scorer],
    checks: dict[str, Any],
) -> dict[str, SystemScores]:
    """Every system but the oracle on the view's candidates (every pair, or the pool)."""
    scorers = {**frozen_scorers, **projection_scorers}
    return {name: system_scores(view, s, checks["track_scoring"]) for name, s in scorers.items()}


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
            frames.append(frame.assign(query_clip_id=view.clip_ids, task=task, system=name))
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
    clip_ids, track_ids = list(view.clip_ids), list(view.track_ids)
    runs = {}
    for name, s in systems.items():
        runs[f"clip_to_clip/{name}.trec"] = format_run(
            clip_ids, s.clip, clip_ids, view.valid, name, depth, s.retrieved, view.candidates
        )
        runs[f"clip_to_track/{name}.trec"] = format_run(
            clip_ids,
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
            clip_ids, view.grades, clip_ids, view.valid, view.candidates
        ),
        "clip_to_track.qrels": format_qrels(
            clip_ids, view.track_grades, track_ids, view.track_valid, view.track_candidates
        ),
    }
    summary = {
        "run_depth": depth,
        "runs": {path: text.count("\n") for path, text in runs.items()},
        "qrels": {path: text.count("\n") for path, text in qrels.items()},
    }
    return runs, qrels, summary
