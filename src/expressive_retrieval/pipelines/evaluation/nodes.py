"""Nodes of ``evaluation``: score every system on the test split, measure it, export TREC files.

Every system ranks the split's clips (clip→clip) and tracks (clip→track) for every clip of
the split as a query, the query's own track excluded (docs/design.md, "Evaluation").
Systems with per-aspect sub-scores also get the faithfulness matrix, counterfactual effects
and curves; every mean gets its interval. The report, its pages and the gates are in
``reporting.py``.
"""

from __future__ import annotations

import logging
import time
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
from expressive_retrieval.evaluation.retrieval import (
    TASKS,
    SplitView,
    SystemScores,
    aggregate_clip_scores,
    aspect_report,
    counterfactual_curves,
    per_query_report,
    scores_from_aspects,
    split_view,
    view_clips,
)
from expressive_retrieval.evaluation.uncertainty import compare_pairs, finding
from expressive_retrieval.models import OracleConfig, OracleScorer, ProjectionConfig, ProjectionHead
from expressive_retrieval.vectors.aspects import aspect_similarities, weight_query_vectors
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
    """Queries, candidates, graded relevance, aspect targets and independent units."""
    unit = checks["uncertainty"]["unit"]
    view = split_view(
        clips, clip_aspect_features, dataset_version["relevance"], params["split"], splits, unit
    )
    logger.info(
        "Evaluating on %s: %d query clips, %d candidate tracks, %d independent units (%s)",
        params["split"],
        len(view.clip_ids),
        len(view.track_ids),
        len(np.unique(view.units)),
        unit,
    )
    return view


def score_frozen_baselines(
    segments: SegmentStore,
    clips: pd.DataFrame,
    layer_evidence: dict[str, Any],
    view: SplitView,
    params: dict[str, Any],
    checks: dict[str, Any],
) -> dict[str, SystemScores]:
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
    plain = vectors[:, 0]
    cosine = (plain @ plain.T).astype(np.float64)
    track = aggregate_clip_scores(view, cosine, **checks["track_scoring"])
    per_aspect = vectors[:, 1:].reshape(len(vectors), -1)
    discovery = aspect_similarities(per_aspect, per_aspect, len(view.aspects))
    logger.info("Scored the frozen baselines in %.1fs", seconds)
    rng = np.random.default_rng(params["random_seed"])
    return {
        "random": SystemScores(rng.random(view.valid.shape), rng.random(view.track_valid.shape)),
        "cosine": SystemScores(cosine, track, seconds=seconds),
        "discovery_cosine": scores_from_aspects(
            view, discovery.astype(np.float64), checks["track_scoring"], seconds
        ),
    }


def score_oracle(
    oracle_model: dict[str, torch.Tensor],
    oracle_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    view: SplitView,
    params: dict[str, Any],
) -> dict[str, SystemScores]:
    """The oracle over every (query, candidate) pair; tracks as its config aggregates them."""
    model = OracleScorer.from_state(OracleConfig.from_dict(oracle_config), oracle_model).eval()
    started = time.perf_counter()
    chunks = segments.iter_clip_chunks(clip_refs(view_clips(clips, view)), params["chunk_size"])
    _, per_aspect = model.score_all(chunks)
    seconds = time.perf_counter() - started
    logger.info("Oracle scored %d pairs in %.1fs", per_aspect.shape[0] ** 2, seconds)
    track = {"how": model.config.track_aggregation, "k": model.config.track_topk}
    return {"oracle": scores_from_aspects(view, per_aspect.astype(np.float64), track, seconds)}


def _ann_scores(
    index: Any,
    clip_ids: pd.DataFrame,
    queries: np.ndarray,
    view: SplitView,
    params: dict[str, Any],
    track_scoring: dict[str, Any],
) -> SystemScores:
    """An index of the whole corpus searched with default-weight queries, hits kept on the split.

    Each query asks for ``ann_depth`` neighbours (at most the index size) and keeps those
    in the split. Candidates it did not return are not retrieved: they are absent from the
    run and never count as hits.
    """
    depth = int(min(params["ann_depth"], index.ntotal))
    started = time.perf_counter()
    found_scores, rows = search(index, queries, depth)
    seconds = time.perf_counter() - started
    position = pd.Series(np.arange(len(view.clip_ids)), index=view.clip_ids)
    found_ids = clip_ids["clip_id"].to_numpy()[np.maximum(rows, 0)]
    columns = position.reindex(found_ids.ravel()).to_numpy().reshape(rows.shape)
    hit = (rows >= 0) & ~np.isnan(columns)
    query_rows = np.broadcast_to(np.arange(len(queries))[:, None], rows.shape)[hit]
    columns = columns[hit].astype(np.int64)
    scores = np.zeros((len(queries), len(view.clip_ids)))
    retrieved = np.zeros(scores.shape, dtype=bool)
    scores[query_rows, columns] = found_scores[hit]
    retrieved[query_rows, columns] = True
    retrieved &= view.valid
    # A track is returned when its clips are: aggregate over returned clips only.
    track = aggregate_clip_scores(view, np.where(retrieved, scores, -np.inf), **track_scoring)
    track_retrieved = np.isfinite(track)
    return SystemScores(
        scores,
        np.where(track_retrieved, track, 0.0),
        retrieved=retrieved,
        track_retrieved=track_retrieved,
        seconds=seconds,
    )


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
    checks: dict[str, Any],
) -> dict[str, SystemScores]:
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
    track = checks["track_scoring"]
    systems = {}
    for name, vectors, seconds in (
        ("projection_distilled", distilled, 0.0),
        ("projection", plain, embed_seconds),
    ):
        tic = time.perf_counter()
        per_aspect = aspect_similarities(vectors, vectors, len(config.aspects)).astype(np.float64)
        seconds += time.perf_counter() - tic
        systems[name] = scores_from_aspects(view, per_aspect, track, seconds)
    queries = weight_query_vectors(distilled, config.default_weights, len(config.aspects))
    systems["projection_distilled_ann"] = _ann_scores(
        clip_index[0], clip_ids, queries, view, params, track
    )
    factory, search_params = large_index_config(
        len(clip_vectors), clip_vectors.shape[1], index_params["large"]
    )
    large = build_index(clip_vectors, clip_vectors.shape[1], factory, search_params)
    systems["projection_distilled_ivfpq"] = _ann_scores(
        large, clip_ids, queries, view, params, track
    )
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


def all_systems(*groups: dict[str, SystemScores]) -> dict[str, SystemScores]:
    merged = {name: scores for group in groups for name, scores in group.items()}
    missing = set(SYSTEMS) - set(merged)
    assert not missing, f"systems without scores: {sorted(missing)}"
    return {name: merged[name] for name in SYSTEMS}


def comparison_pairs(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The paired comparisons: each learned system vs each baseline, then ``pairs``."""
    spec = params["comparisons"]
    learned = [(a, b) for a in spec["learned"] for b in spec["baselines"]]
    return learned + [(a, b) for a, b in spec["pairs"]]


def measure_systems(
    view: SplitView,
    frozen_scores: dict[str, SystemScores],
    oracle_scores: dict[str, SystemScores],
    projection_scores: dict[str, SystemScores],
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
    systems = all_systems(frozen_scores, oracle_scores, projection_scores)
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
    frozen_scores: dict[str, SystemScores],
    oracle_scores: dict[str, SystemScores],
    projection_scores: dict[str, SystemScores],
    params: dict[str, Any],
) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """TREC runs ``<task>/<system>.trec`` (top ``run_depth``), qrels ``<task>.qrels``."""
    systems = all_systems(frozen_scores, oracle_scores, projection_scores)
    depth = params["run_depth"]
    clip_ids, track_ids = list(view.clip_ids), list(view.track_ids)
    runs = {}
    for name, s in systems.items():
        runs[f"clip_to_clip/{name}.trec"] = format_run(
            clip_ids, s.clip, clip_ids, view.valid, name, depth, s.retrieved
        )
        runs[f"clip_to_track/{name}.trec"] = format_run(
            clip_ids, s.track, track_ids, view.track_valid, name, depth, s.track_retrieved
        )
    qrels = {
        "clip_to_clip.qrels": format_qrels(clip_ids, view.grades, clip_ids, view.valid),
        "clip_to_track.qrels": format_qrels(
            clip_ids, view.track_grades, track_ids, view.track_valid
        ),
    }
    summary = {
        "run_depth": depth,
        "runs": {path: text.count("\n") for path, text in runs.items()},
        "qrels": {path: text.count("\n") for path, text in qrels.items()},
    }
    return runs, qrels, summary
