"""What every trained model takes from the catalog: shapes, evidence, clip loading, metadata.

Shared by the ``oracle_scorer`` and ``projection_retriever`` pipelines, so both models
are described and recorded the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from expressive_retrieval.data.relevance import RelevanceModel
from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.evaluation.baselines import mean_pooled_vectors
from expressive_retrieval.models.serialization import state_dict_for_safetensors
from expressive_retrieval.models.training import (
    ListwiseData,
    TrainParams,
    candidate_pool,
    listwise_data,
)


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


def split_pool(
    segments: SegmentStore,
    clips: pd.DataFrame,
    lists: ListwiseData,
    split: str,
    pool: dict[str, int],
    seed: int,
) -> np.ndarray:
    """``candidate_pool`` of the ``lists``' queries over the ``split``'s clips.

    ``pool`` gives ``size`` and ``mined``. A capped pool keeps each list's candidates first,
    then the ``mined`` nearest in frozen mean-pooled cosine (computed only when the split
    holds more than ``size`` clips), then a seeded random sample.
    """
    rows = np.flatnonzero(clips["split"].to_numpy() == split)
    size, mined = pool["size"], pool["mined"]
    vectors = None
    if mined and len(rows) > size:
        dim = segments.shape(clips["track_id"].iloc[rows[0]])[-1]
        vectors = np.zeros((len(clips), dim), dtype=np.float32)
        vectors[rows] = mean_pooled_vectors(segments, clips.iloc[rows], dim)
    tracks = clips["track_id"].to_numpy()
    mined = mined if vectors is not None else 0
    return candidate_pool(
        lists.query_index, rows, tracks, size, seed, vectors, mined, lists.candidate_index
    )


def train_on_lists(
    fit: Callable[..., tuple[torch.nn.Module, list[dict]]],
    model: torch.nn.Module,
    supervision: Any,
    train_params: TrainParams,
    segments: SegmentStore,
    clips: pd.DataFrame,
    pairs: pd.DataFrame,
    dataset_version: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Fit ``model`` on the train lists (early stopping on val); its weights and metadata.

    ``fit`` is ``fit_oracle`` or ``fit_projection``; ``supervision`` is what it takes beside
    the lists (the oracle's clip proxy features, the projection's teacher scores).

    Returns:
        The safetensors-ready state dict and ``training_metadata.json``: seed, loss
        weights, dataset version, epochs, best epoch, wall time, per-epoch history.
    """
    aspects = model.config.aspects
    started = time.perf_counter()
    with segments:
        model, history = fit(
            model,
            listwise_data(pairs, clips, aspects, "train"),
            listwise_data(pairs, clips, aspects, "val"),
            clip_loader(segments, clips),
            supervision,
            train_params,
            progress=params.get("progress", True),
        )
    metadata = {
        "seed": train_params.seed,
        "dataset_version": dataset_version["dataset_version"],
        "loss_weights": train_params.loss_weights,
        "training": params["training"],
        "epochs_run": len(history),
        "best_epoch": next(h["epoch"] for h in history if h["restored"]),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "torch_version": torch.__version__,
        "history": history,
    }
    return state_dict_for_safetensors(model), metadata
