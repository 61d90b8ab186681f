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
from expressive_retrieval.evaluation.retrieval import (
    SplitView,
    aggregate_clip_scores,
    aspect_failures,
    aspect_report,
    ranking_failures,
    ranking_report,
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
) -> dict[str, Any]:
    """The oracle against frozen cosine on one split: both tasks and aspect behaviour."""
    members = view_clips(clips, view)
    refs = clip_refs(members)
    started = time.perf_counter()
    chunks = segments.iter_clip_chunks(refs, params["evaluation"]["chunk_size"])
    scores, per_aspect = model.score_all(chunks)
    seconds = time.perf_counter() - started
    pooled = mean_pooled_vectors(segments, members, model.config.dim)
    cosine = pooled @ pooled.T
    track = {"how": model.config.track_aggregation, "k": model.config.track_topk}
    return {
        "num_clips": len(view.clip_ids),
        "num_tracks": len(view.track_ids),
        "scoring_seconds": round(seconds, 3),
        "scored_pairs_per_second": round(len(refs) ** 2 / max(seconds, 1e-9)),
        "systems": {
            "oracle": ranking_report(view, scores, aggregate_clip_scores(view, scores, **track)),
            "cosine": ranking_report(view, cosine, aggregate_clip_scores(view, cosine, **track)),
        },
        **aspect_report(view, per_aspect, params["gate"]),
    }


def evaluate_oracle(
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    segments: SegmentStore,
    clips: pd.DataFrame,
    clip_aspect_features: pd.DataFrame,
    dataset_version: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Validation and test reports (vs frozen cosine) and the gate verdict on validation.

    The report is saved whether or not the gate passes.
    """
    model = OracleScorer.from_state(OracleConfig.from_dict(model_config), model_state).eval()
    report: dict[str, Any] = {
        "dataset_version": dataset_version["dataset_version"],
        "splits": {
            split: split_report(
                model,
                segments,
                clips,
                split_view(clips, clip_aspect_features, dataset_version["relevance"], split),
                params,
            )
            for split in ("val", "test")
        },
    }
    report["gate"] = gate_verdict(report["splits"][GATED_SPLIT], params["gate"])
    logger.info("Oracle gate on %s: %s", GATED_SPLIT, report["gate"]["detail"])
    return report


def gate_verdict(split_report: dict[str, Any], gate: dict[str, Any]) -> dict[str, Any]:
    """Pass only if ranking beats cosine AND aspect behaviour holds (seed plan §3)."""
    failures = ranking_failures(
        split_report["systems"], "oracle", "cosine", gate["min_ndcg_ratio_vs_cosine"]
    ) + aspect_failures(split_report, gate)
    return {
        "split": GATED_SPLIT,
        "status": "failed" if failures else "passed",
        "failures": failures,
        "detail": "; ".join(failures)
        if failures
        else "ranking, faithfulness and counterfactual checks pass",
    }


class OracleRejected(RuntimeError):
    """The oracle ranks but fails its gate; its weights are not published."""


def publish_oracle(
    report: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    training_metadata: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Release the weights only when the gate passed (or ``fail_on_gate`` is false).

    Raises:
        OracleRejected: naming every failed check and its figures.
    """
    if report["gate"]["status"] != "passed":
        message = "Oracle rejected by its validation gate:\n  - " + "\n  - ".join(
            report["gate"]["failures"]
        )
        if params["gate"]["fail_on_gate"]:
            raise OracleRejected(message + "\nThe eval report is saved; the weights are not.")
        logger.warning("%s\nfail_on_gate is false: publishing anyway.", message)
    return model_state, model_config, {**training_metadata, "gate": report["gate"]}
