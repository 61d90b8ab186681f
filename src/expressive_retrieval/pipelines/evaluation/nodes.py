"""Nodes of ``evaluation``: score every system on the test split, measure, export, gate.

Every system ranks the split's clips (clip→clip) and tracks (clip→track) for every clip of
the split as a query, the query's own track excluded (docs/design.md, "Evaluation").
Systems with per-aspect sub-scores also get the faithfulness matrix, counterfactual shares
and curves.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.evaluation.baselines import (
    discovery_layer_weights,
    layer_weighted_vectors,
)
from expressive_retrieval.evaluation.metrics import METRICS, format_qrels, format_run, summarise
from expressive_retrieval.evaluation.report.figures import (
    counterfactual_plot,
    faithfulness_plot,
    png_base64,
    ranking_plot,
    training_plot,
)
from expressive_retrieval.evaluation.report.page import report_html, summary_markdown
from expressive_retrieval.evaluation.retrieval import (
    TASKS,
    SplitView,
    SystemScores,
    aggregate_clip_scores,
    aspect_failures,
    aspect_report,
    counterfactual_curves,
    per_query_report,
    ranking_failures,
    scores_from_aspects,
    split_view,
    view_clips,
)
from expressive_retrieval.models import OracleConfig, OracleScorer, ProjectionConfig, ProjectionHead
from expressive_retrieval.vectors.aspects import aspect_similarities, weight_query_vectors
from expressive_retrieval.vectors.index import search

logger = logging.getLogger(__name__)

SYSTEMS = (
    "cosine",
    "discovery_cosine",
    "oracle",
    "projection",
    "projection_distilled",
    "projection_distilled_ann",
)
GATES = ("ranking", "aspect_faithfulness", "counterfactual", "human_audit")


def evaluation_view(
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    dataset_version: dict[str, Any],
    params: dict[str, Any],
) -> SplitView:
    """Queries, candidates, graded relevance and aspect targets of the evaluated split."""
    view = split_view(clips, clip_aspect_features, dataset_version["relevance"], params["split"])
    logger.info(
        "Evaluating on %s: %d query clips, %d candidate tracks",
        params["split"],
        len(view.clip_ids),
        len(view.track_ids),
    )
    return view


def score_frozen_baselines(
    segments: SegmentStore,
    clips: pd.DataFrame,
    layer_evidence: dict[str, Any],
    view: SplitView,
    params: dict[str, Any],
) -> dict[str, SystemScores]:
    """``cosine`` (all layers, mean) and ``discovery_cosine`` (layers per aspect by evidence).

    Both come from one streamed pass over the segments: row 0 of the layer mix is uniform,
    rows 1.. are the aspects' discovery weights.
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
    track = aggregate_clip_scores(view, cosine, **params["track_scoring"])
    per_aspect = vectors[:, 1:].reshape(len(vectors), -1)
    discovery = aspect_similarities(per_aspect, per_aspect, len(view.aspects))
    logger.info("Scored the frozen baselines in %.1fs", seconds)
    return {
        "cosine": SystemScores(cosine, track, seconds=seconds),
        "discovery_cosine": scores_from_aspects(
            view, discovery.astype(np.float64), params["track_scoring"], seconds
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
    clip_index: tuple[Any, dict[str, Any]],
    clip_ids: pd.DataFrame,
    queries: np.ndarray,
    view: SplitView,
    params: dict[str, Any],
) -> SystemScores:
    """The shipped index searched with default-weight queries, hits kept on the split.

    The index holds the whole corpus; each query asks for ``ann_depth`` neighbours (at most
    the index size) and keeps those in the split. Candidates it did not return are not
    retrieved: they are absent from the run and never count as hits.
    """
    index, manifest = clip_index
    depth = int(min(params["ann_depth"], manifest["ntotal"]))
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
    track = aggregate_clip_scores(
        view, np.where(retrieved, scores, -np.inf), **params["track_scoring"]
    )
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
) -> dict[str, SystemScores]:
    """``projection_distilled`` (shipped vectors, exact), its ANN twin, and ``projection``.

    The distilled system reads the shipped corpus vectors; the ablation (never shipped) is
    embedded here from the segments.
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
    systems = {}
    for name, vectors, seconds in (
        ("projection_distilled", distilled, 0.0),
        ("projection", plain, embed_seconds),
    ):
        tic = time.perf_counter()
        per_aspect = aspect_similarities(vectors, vectors, len(config.aspects)).astype(np.float64)
        seconds += time.perf_counter() - tic
        systems[name] = scores_from_aspects(view, per_aspect, params["track_scoring"], seconds)
    queries = weight_query_vectors(distilled, config.default_weights, len(config.aspects))
    systems["projection_distilled_ann"] = _ann_scores(clip_index, clip_ids, queries, view, params)
    logger.info(
        "Scored the projections (ablation embedded in %.1fs, index searched in %.2fs)",
        embed_seconds,
        systems["projection_distilled_ann"].seconds,
    )
    return systems


def all_systems(*groups: dict[str, SystemScores]) -> dict[str, SystemScores]:
    merged = {name: scores for group in groups for name, scores in group.items()}
    missing = set(SYSTEMS) - set(merged)
    assert not missing, f"systems without scores: {sorted(missing)}"
    return {name: merged[name] for name in SYSTEMS}


def measure_systems(
    view: SplitView,
    frozen_scores: dict[str, SystemScores],
    oracle_scores: dict[str, SystemScores],
    projection_scores: dict[str, SystemScores],
    params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Ranking metrics of every system × task, aspect checks and counterfactual curves.

    Returns:
        The measurements (the report's ``tasks``, ``aspect_faithfulness``,
        ``counterfactual``, ``counterfactual_curves`` and ``timing``) and the per-query
        metrics (one row per query × task × system).
    """
    systems = all_systems(frozen_scores, oracle_scores, projection_scores)
    tasks: dict[str, Any] = {task: {"systems": {}} for task in TASKS}
    frames = []
    for name, scores in systems.items():
        per_query = per_query_report(
            view, scores.clip, scores.track, scores.retrieved, scores.track_retrieved
        )
        for task, frame in per_query.items():
            summary = summarise(frame)
            tasks[task]["systems"][name] = {metric: summary[metric] for metric in METRICS}
            tasks[task]["num_queries"] = summary["num_queries"]
            tasks[task]["num_queries_without_relevant"] = summary["num_queries_without_relevant"]
            frames.append(frame.assign(query_clip_id=view.clip_ids, task=task, system=name))
    checks = params["aspect_checks"]
    faithfulness, counterfactual, curves = {}, {}, {}
    for name, scores in systems.items():
        if scores.aspects is None:
            continue
        started = time.perf_counter()
        report = aspect_report(view, scores.aspects, checks)
        faithfulness[name] = report["aspect_faithfulness"]
        counterfactual[name] = report["counterfactual"]
        curves[name] = counterfactual_curves(
            view, scores.aspects, params["counterfactual_boosts"], checks["counterfactual_top_k"]
        )
        logger.info("Aspect checks of %s in %.1fs", name, time.perf_counter() - started)
    per_query = pd.concat(frames).reset_index(drop=True)
    columns = ["query_clip_id", "task", "system", *METRICS, "num_relevant"]
    measurements = {
        "tasks": tasks,
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


def _training_curves(**metadata: dict[str, Any]) -> dict[str, Any]:
    """Per-epoch loss and validation nDCG@10 of each trained model."""
    curves = {}
    for name, meta in metadata.items():
        history = meta.get("history", [])
        curves[name] = {
            "epochs": [h["epoch"] for h in history],
            "loss": [h["loss"] for h in history],
            "val_ndcg@10": [h["val_ndcg@10"] for h in history],
            "best_epoch": meta.get("best_epoch"),
            "wall_time_s": meta.get("wall_time_s"),
        }
    return curves


def _ranking_gate(tasks: dict[str, Any], gate: dict[str, Any]) -> tuple[list[str], str]:
    systems = {name: {t: tasks[t]["systems"][name] for t in TASKS} for name in SYSTEMS}
    failures = []
    for system in gate["systems"]:
        for baseline in gate["baselines"]:
            failures += ranking_failures(systems, system, baseline, gate["min_ndcg_ratio"])
    for task in TASKS:
        exact = systems["projection_distilled"][task]["ndcg@10"]
        ann = systems["projection_distilled_ann"][task]["ndcg@10"]
        if exact - ann > gate["max_ann_ndcg_drop"]:
            failures.append(
                f"ranking: {task} nDCG@10 projection_distilled_ann {ann:.3f} is more than "
                f"{gate['max_ann_ndcg_drop']} below exact search {exact:.3f}"
            )
    scope = (
        f"{', '.join(gate['systems'])} >= {gate['min_ndcg_ratio']} x "
        f"{' and '.join(gate['baselines'])} on nDCG@10 for both tasks"
    )
    return failures, scope


def gate_verdicts(
    measurements: dict[str, Any], human_audit: dict[str, Any], params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """``{gate: {status, detail, failures}}`` for the four gates (docs/design.md, "Evaluation")."""
    gates = params["gates"]
    ranking, scope = _ranking_gate(measurements["tasks"], gates["ranking"])
    verdicts = {"ranking": (ranking, scope)}
    for gate in ("aspect_faithfulness", "counterfactual"):
        failures = []
        for system in gates[gate]["systems"]:
            report = {
                "aspect_faithfulness": measurements["aspect_faithfulness"][system],
                "counterfactual": measurements["counterfactual"][system],
            }
            failures += [
                f
                for f in aspect_failures(report, params["aspect_checks"], f"{system}/")
                if f.startswith(gate)
            ]
        verdicts[gate] = (failures, f"checked for {', '.join(gates[gate]['systems'])}")
    result = {
        name: {
            "status": "failed" if failures else "passed",
            "detail": "; ".join(failures) if failures else f"passed: {scope}",
            "failures": failures,
        }
        for name, (failures, scope) in verdicts.items()
    }
    result["human_audit"] = human_audit["gate"]
    return result


def assemble_report(
    dataset_version: dict[str, Any],
    measurements: dict[str, Any],
    trec_summary: dict[str, Any],
    audit_summary: dict[str, Any],
    human_audit: dict[str, Any],
    oracle_training_metadata: dict[str, Any],
    projection_training_metadata: dict[str, Any],
    projection_ablation_training_metadata: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """``evaluation_report``: the schema of docs/design.md ("Evaluation report") plus extras.

    The extras: timing, training curves, the audit and TREC line counts.
    """
    gates = gate_verdicts(measurements, human_audit, params)
    report = {
        "dataset_version": dataset_version["dataset_version"],
        "bundle_version": None,
        "split": params["split"],
        **measurements,
        "gates": gates,
        "training_curves": _training_curves(
            oracle=oracle_training_metadata,
            projection_distilled=projection_training_metadata,
            projection=projection_ablation_training_metadata,
        ),
        "human_audit": {k: v for k, v in human_audit.items() if k != "gate"},
        "audit_kit": audit_summary,
        "trec": trec_summary,
        "parameters": {k: params[k] for k in ("gates", "aspect_checks", "track_scoring")},
    }
    for name, verdict in gates.items():
        logger.info("Evaluation gate %s: %s", name, verdict["status"])
    return report


def plot_report(
    evaluation_report: dict[str, Any],
) -> tuple[Figure, Figure, Figure, Figure, dict[str, str]]:
    """The report's figures (saved for kedro-viz) and the same as base64 PNGs for the page."""
    figures = {
        "ranking": ranking_plot(evaluation_report),
        "faithfulness": faithfulness_plot(evaluation_report),
        "counterfactual": counterfactual_plot(evaluation_report),
        "training": training_plot(evaluation_report),
    }
    images = {name: png_base64(fig) for name, fig in figures.items()}
    return (*figures.values(), images)


def render_report(evaluation_report: dict[str, Any], images: dict[str, str]) -> dict[str, str]:
    """``report.html`` (figures embedded, no network) and ``summary.md``."""
    return {
        "report.html": report_html(evaluation_report, images),
        "summary.md": summary_markdown(evaluation_report),
    }


class EvaluationGateFailed(RuntimeError):
    """An automatic evaluation gate failed and ``fail_on_gate`` is true."""


def enforce_gates(
    evaluation_report: dict[str, Any], evaluation_html: dict[str, str], params: dict[str, Any]
) -> dict[str, Any]:
    """Fail the run when a gate failed, once the report and its page are saved.

    Returns:
        ``evaluation_verdict``: ``{"passed": bool, "gates": {gate: status}}``, so a later
        step (e.g. export) can depend on the gates having been enforced.

    Raises:
        EvaluationGateFailed: naming every failed gate and its figures.
    """
    statuses = {name: verdict["status"] for name, verdict in evaluation_report["gates"].items()}
    failed = {
        name: verdict
        for name, verdict in evaluation_report["gates"].items()
        if verdict["status"] == "failed"
    }
    if not failed:
        logger.info(
            "Every evaluation gate passed or is pending (%d report files)", len(evaluation_html)
        )
        return {"passed": True, "gates": statuses}
    lines = [f"{name}: {failure}" for name, v in failed.items() for failure in v["failures"]]
    message = f"Evaluation gate(s) failed: {', '.join(failed)}\n  - " + "\n  - ".join(lines)
    if params["gates"]["fail_on_gate"]:
        raise EvaluationGateFailed(message + "\nThe evaluation report and its page are saved.")
    logger.warning("%s\nfail_on_gate is false: the run goes on.", message)
    return {"passed": False, "gates": statuses}
