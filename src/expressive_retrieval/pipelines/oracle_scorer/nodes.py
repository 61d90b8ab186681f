"""Nodes of ``oracle_scorer``: train, evaluate and gate the pairwise expressive scorer."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from expressive_retrieval.data.relevance import RelevanceModel
from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.evaluation.baselines import mean_pooled_vectors
from expressive_retrieval.evaluation.gates import (
    Verdict,
    aspect_failures,
    enforce,
    ranking_failures,
)
from expressive_retrieval.evaluation.metrics import summarise
from expressive_retrieval.evaluation.retrieval import (
    TASKS,
    SplitView,
    aggregate_clip_scores,
    aspect_report,
    per_query_report,
    split_view,
    view_clips,
)
from expressive_retrieval.models import OracleConfig, OracleScorer
from expressive_retrieval.models.training import TrainParams, fit_oracle
from expressive_retrieval.pipelines._inputs import model_layout, train_on_lists

logger = logging.getLogger(__name__)

GATED_SPLIT = "val"


def train_oracle(
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    layer_evidence: dict[str, Any],
    dataset_version: dict[str, Any],
    params: dict[str, Any],
    seed: int,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Train the oracle on the train split's lists, early-stopping on validation nDCG@10.

    Returns:
        Candidate weights, config and training metadata (published only if the gate passes).
    """
    relevance = RelevanceModel.from_dict(dataset_version["relevance"])
    layout = model_layout(clips, layer_evidence, dataset_version)
    counts = np.bincount(relevance.feature_aspect, minlength=len(relevance.aspects)).tolist()
    config = OracleConfig(**layout, num_proxy_features=counts, **params["model"])
    train_params = TrainParams(**params["training"], seed=seed)
    features = clip_aspect_features.set_index("clip_id").loc[clips["clip_id"], relevance.features]
    state, metadata = train_on_lists(
        fit_oracle,
        OracleScorer(config, seed=seed),
        features.to_numpy(dtype=np.float32),
        train_params,
        segments,
        clips,
        pairs,
        dataset_version,
        params,
    )
    return state, config.to_dict(), metadata


def split_report(
    model: OracleScorer,
    segments: SegmentStore,
    clips: pd.DataFrame,
    view: SplitView,
    params: dict[str, Any],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """The oracle against frozen cosine on one split: both tasks, the paired nDCG@10
    difference with its interval, and aspect behaviour."""
    members = view_clips(clips, view)
    started = time.perf_counter()
    chunks = segments.iter_clip_chunks(clip_refs(members), params["evaluation"]["chunk_size"])
    encoded = torch.cat([model.encode_clips(block) for block in chunks])
    queries = view.query_clips
    scores, per_aspect = model.score_many(encoded[torch.as_tensor(queries)], encoded)
    seconds = time.perf_counter() - started
    pooled = mean_pooled_vectors(segments, members, model.config.dim)
    cosine = pooled[queries] @ pooled.T
    track = {"how": model.config.track_aggregation, "k": model.config.track_topk}
    per_query = {
        name: per_query_report(view, s, aggregate_clip_scores(view, s, **track))
        for name, s in (("oracle", scores), ("cosine", cosine))
    }
    resampler = view.resampler(checks["uncertainty"])
    return {
        "num_clips": len(view.clip_ids),
        "num_queries": len(queries),
        "num_tracks": len(view.track_ids),
        "num_units": resampler.num_clusters,
        "scoring_seconds": round(seconds, 3),
        "scored_pairs_per_second": round(len(queries) * len(members) / max(seconds, 1e-9)),
        "systems": {
            name: {task: summarise(frame) for task, frame in frames.items()}
            for name, frames in per_query.items()
        },
        "comparisons": {
            task: {
                ("oracle", "cosine"): resampler.compare(
                    per_query["oracle"][task]["ndcg@10"].to_numpy(),
                    per_query["cosine"][task]["ndcg@10"].to_numpy(),
                )
            }
            for task in TASKS
        },
        **aspect_report(view, per_aspect, checks["aspects"], resampler),
    }


def evaluate_oracle(
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    splits: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    dataset_version: dict[str, Any],
    params: dict[str, Any],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """The validation report (vs frozen cosine) and the gate verdict on it.

    The test split is left to ``evaluation``. The report is saved whether or not the
    gate passes.
    """
    model = OracleScorer.from_state(OracleConfig.from_dict(model_config), model_state).eval()
    view = split_view(
        clips,
        clip_aspect_features,
        dataset_version["relevance"],
        GATED_SPLIT,
        splits,
        checks["uncertainty"]["unit"],
        queries=params["evaluation"]["queries"],
    )
    split = split_report(model, segments, clips, view, params, checks)
    verdict = gate_verdict(split, params["gate"], checks["aspects"])
    comparisons = split.pop("comparisons")
    split["comparisons"] = [
        {"a": a, "b": b, "task": task, "metric": "ndcg@10", **result}
        for task, pairs in comparisons.items()
        for (a, b), result in pairs.items()
    ]
    logger.info("Oracle gate on %s: %s", GATED_SPLIT, verdict.detail)
    return {
        "dataset_version": dataset_version["dataset_version"],
        "splits": {GATED_SPLIT: split},
        "gate": {"split": GATED_SPLIT, **verdict.to_dict()},
    }


def gate_verdict(
    split_report: dict[str, Any], gate: dict[str, Any], checks: dict[str, Any]
) -> Verdict:
    """Pass only if the oracle beats cosine with evidence AND aspect behaviour holds.

    Args:
        split_report: ``split_report``'s output (``comparisons`` still keyed by pair).
        gate: ``min_ndcg_gain_vs_cosine``: the 95% lower bound of oracle - cosine nDCG@10
            must reach it on both tasks.
        checks: the shared aspect thresholds (``params:checks`` ``aspects``).
    """
    failures = ranking_failures(
        split_report["comparisons"], ["oracle"], ["cosine"], gate["min_ndcg_gain_vs_cosine"]
    ) + aspect_failures(split_report, checks)
    return Verdict.of(failures, "ranking, faithfulness and counterfactual checks")


def publish_oracle(
    report: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    training_metadata: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Release the weights only when the gate passed (or ``fail_on_gate`` is false).

    Raises:
        GateFailed: naming every failed check and its figures.
    """
    enforce(
        {"oracle": Verdict.from_dict(report["gate"])},
        "Oracle (validation)",
        params["gate"]["fail_on_gate"],
        "The eval report is saved; the weights are not.",
    )
    return model_state, model_config, {**training_metadata, "gate": report["gate"]}
