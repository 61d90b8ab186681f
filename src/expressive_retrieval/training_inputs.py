"""What every trained model takes from the catalog: shapes, evidence, clip loading, metadata.

Shared by the ``oracle_scorer`` and ``projection_retriever`` pipelines, so both models
are described and recorded the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from expressive_retrieval.models.training import TrainParams
from expressive_retrieval.relevance import RelevanceModel
from expressive_retrieval.segments import SegmentStore, clip_refs


def model_layout(
    clips: pd.DataFrame, layer_evidence: dict[str, Any], dataset_version: dict[str, Any]
) -> dict[str, Any]:
    """Config fields common to every model: input shape, aspects, evidence, default weights."""
    relevance = RelevanceModel.from_dict(dataset_version["relevance"])
    return {
        "num_layers": dataset_version["embedding"]["L"],
        "dim": dataset_version["embedding"]["D"],
        "aspects": relevance.aspects,
        "clip_segments": int((clips["segment_end"] - clips["segment_start"]).iloc[0]),
        "layer_scores": [layer_evidence[a]["layer_scores"] for a in relevance.aspects],
        "default_weights": relevance.weights,
    }


def clip_loader(segments: SegmentStore, clips: pd.DataFrame) -> Callable[[np.ndarray], np.ndarray]:
    """``rows`` of the clip table → their segments ``[n, S, L, D]``, memory-mapped reads."""
    refs = clip_refs(clips)
    return lambda rows: segments.clips([refs[i] for i in rows])


def training_metadata(
    seed: int,
    dataset_version: dict[str, Any],
    train_params: TrainParams,
    training: dict[str, Any],
    history: list[dict],
    wall_time_s: float,
) -> dict[str, Any]:
    """``training_metadata.json``: seed, loss weights, dataset version, epochs, wall time."""
    return {
        "seed": seed,
        "dataset_version": dataset_version["dataset_version"],
        "loss_weights": train_params.loss_weights,
        "training": training,
        "epochs_run": len(history),
        "best_epoch": int(max(history, key=lambda h: h["val_ndcg@10"])["epoch"]),
        "wall_time_s": round(wall_time_s, 2),
        "torch_version": torch.__version__,
        "history": history,
    }
