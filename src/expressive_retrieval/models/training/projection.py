"""Training of the projection retriever head, distilled from the oracle (docs/design.md, "Models").

Reuses the generic loop of ``models.training`` (``run_epochs``: seeding, optimiser, early
stopping on validation nDCG@10, progress, per-epoch logs) and its list helpers; this
module supplies the retriever's batches and losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from expressive_retrieval.models.encoder import as_float_tensor
from expressive_retrieval.models.losses import (
    AspectRegressionLoss,
    DistillationLoss,
    ListwiseRankingLoss,
    RoutingPriorLoss,
)
from expressive_retrieval.models.losses.distillation_loss import DISTILLATION_KINDS
from expressive_retrieval.models.projection import ProjectionHead
from expressive_retrieval.models.training.loop import (
    ListwiseData,
    LoadClips,
    TrainParams,
    batch_positions,
    fit_lists,
)


@dataclass
class ProjectionTrainParams(TrainParams):
    """``TrainParams`` of the retriever (the ``projection`` parameters' ``train`` block).

    ``temperature`` divides the list scores (cosine totals) in the ranking and the
    distillation loss; ``distillation`` is ``"listwise_kl"`` or ``"margin_mse"``. A
    ``loss_weights["distillation"]`` of 0 (or no teacher) trains without distillation.
    """

    batch_queries: int = 96
    lr: float = 4e-3
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"ranking": 1.0, "aspect": 1.0, "routing": 0.1, "distillation": 1.0}
    )
    temperature: float = 0.05
    distillation: str = "listwise_kl"

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.distillation not in DISTILLATION_KINDS:
            raise ValueError(
                f"distillation must be one of {DISTILLATION_KINDS}, got {self.distillation!r}"
            )


def _embed_rows(
    head: ProjectionHead, load_clips: LoadClips, rows: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Flat vectors ``[len(rows), A·k]`` of clip-table rows, loaded in chunks."""
    chunks = [
        head.embed_numpy(load_clips(rows[i : i + batch_size]))
        for i in range(0, len(rows), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, head.config.vector_dim), np.float32)


def projection_list_scores(
    head: ProjectionHead, data: ListwiseData, load_clips: LoadClips, batch_queries: int = 1024
) -> np.ndarray:
    """Default-weight total similarities ``[Q, C]`` of every list; padding scores 0.

    Scored as the index scores them: weighted query vector · flat candidate vector. Every
    clip is embedded once; lists are scored ``batch_queries`` at a time.
    """
    rows, query_pos, cand_pos = batch_positions(data, np.arange(len(data.query_index)))
    vectors = _embed_rows(head, load_clips, rows)
    queries = head.query_vectors(vectors[query_pos])
    scores = np.zeros(data.candidate_index.shape, dtype=np.float64)
    for i in range(0, len(queries), batch_queries):
        block = slice(i, i + batch_queries)
        scores[block] = np.einsum("qk,qck->qc", queries[block], vectors[cand_pos[block]])
    return np.where(data.valid, scores, 0.0)


def fit_projection(
    head: ProjectionHead,
    train: ListwiseData,
    val: ListwiseData,
    load_clips: LoadClips,
    teacher_train: np.ndarray | None,
    params: ProjectionTrainParams,
    progress: bool = True,
) -> tuple[ProjectionHead, list[dict]]:
    """Train the head on ranked lists; early-stop on validation nDCG@10.

    First the head's input standardisation is fitted on (a seeded sample of) the training
    clips. Per batch of queries the unique clips of its lists are loaded and embedded once,
    and each list is scored by its per-aspect cosines ``[Bq, C, A]`` and their
    default-weight total. Losses (named as in ``params.loss_weights``):

    * ``ranking``: ListNet on the total ``/ params.temperature`` against graded relevance;
    * ``aspect``: each aspect's ``(cos + 1) / 2`` regressed on its ``target_<aspect>``;
    * ``routing``: KL from the discovery evidence to each aspect's layer routing;
    * ``distillation``: the total against ``teacher_train`` (``params.distillation``).

    Args:
        head: the retriever head, trained in place.
        train: training lists.
        val: validation lists (at least one relevant candidate).
        load_clips: clip-table rows ``[n]`` → float16/32 clips ``[n, S, L, D]``.
        teacher_train: ``[Q_train, C]`` teacher (oracle default-weight) scores of the
            training lists, aligned with ``train.candidate_index``; ``None`` = no
            distillation (as does ``loss_weights["distillation"] == 0``).
        params: optimisation settings.
        progress: show a progress bar.

    Returns:
        The head (best epoch restored) and the per-epoch history.
    """
    distil = teacher_train is not None and params.loss_weights.get("distillation", 0.0) != 0
    if distil:
        teacher_train = np.asarray(teacher_train, dtype=np.float32)
        if teacher_train.shape != train.candidate_index.shape:
            raise ValueError(
                f"teacher_train must be [Q, C]={train.candidate_index.shape} like "
                f"train.candidate_index, got {teacher_train.shape}"
            )
        if not np.isfinite(teacher_train[train.valid]).all():
            raise ValueError("teacher_train scores of valid candidates must be finite")
        teacher = torch.from_numpy(np.where(train.valid, teacher_train, 0.0))
    ranking_loss = ListwiseRankingLoss(params.temperature)
    aspect_loss, routing_loss = AspectRegressionLoss(), RoutingPriorLoss()
    distillation_loss = DistillationLoss(params.distillation, params.temperature)
    prior = torch.tensor(head.config.layer_scores, dtype=torch.float32)

    def step(lists: np.ndarray) -> dict[str, Tensor]:
        rows, query_pos, cand_pos = batch_positions(train, lists)
        vectors = head.embed(as_float_tensor(load_clips(rows)))  # [R, A, k]
        per_aspect = head.aspect_similarities(vectors[query_pos], vectors[cand_pos])
        total = head.combine(per_aspect)  # [Bq, C]
        mask = torch.from_numpy(train.valid[lists])
        targets = torch.from_numpy(train.targets[lists]).float()
        losses = {
            "ranking": ranking_loss(total, torch.from_numpy(train.relevance[lists]), mask),
            "aspect": aspect_loss((per_aspect + 1) / 2, targets, mask),
            "routing": routing_loss(head.routing.weights(), prior),
        }
        if distil:
            losses["distillation"] = distillation_loss(total, teacher[lists], mask)
        return losses

    def list_scores(data: ListwiseData) -> np.ndarray:
        return projection_list_scores(head, data, load_clips)

    history = fit_lists(
        head, train, val, load_clips, params, step, list_scores, progress, desc="projection"
    )
    return head, history
