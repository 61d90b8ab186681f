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

DISTILLATION_LOSSES = ("distillation", "aspect_distillation")  # of the total, per aspect


@dataclass
class ProjectionTrainParams(TrainParams):
    """``TrainParams`` of the retriever (the ``projection`` parameters' ``train`` block).

    ``temperature`` divides the list scores (cosine totals) in the ranking and the
    distillation losses; ``distillation`` is ``"listwise_kl"`` or ``"margin_mse"``. With
    ``loss_weights`` 0 for both ``distillation`` and ``aspect_distillation`` (or no teacher)
    the head trains without distillation.
    """

    batch_queries: int = 96
    lr: float = 4e-3
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {
            "ranking": 1.0,
            "aspect": 1.0,
            "routing": 0.1,
            "distillation": 1.0,
            "aspect_distillation": 1.0,
        }
    )
    temperature: float = 0.05
    distillation: str = "listwise_kl"

    @property
    def distils(self) -> bool:
        """True when a distillation loss has a weight (a teacher then takes part)."""
        return any(self.loss_weights.get(name, 0.0) != 0 for name in DISTILLATION_LOSSES)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.distillation not in DISTILLATION_KINDS:
            raise ValueError(
                f"distillation must be one of {DISTILLATION_KINDS}, got {self.distillation!r}"
            )


@dataclass
class TeacherScores:
    """The teacher's (oracle's default-weight) scores of each training query's pool.

    Attributes:
        query_index: ``[Q]`` query rows, those of the training lists in their order.
        candidate_index: ``[Q, P]`` candidate rows (-1 = padding), e.g. a ``candidate_pool``.
        scores: ``[Q, P]`` the teacher's scores of those pairs.
        aspect_scores: ``[Q, P, A]`` the teacher's per-aspect sub-scores of them, or None.
    """

    query_index: np.ndarray
    candidate_index: np.ndarray
    scores: np.ndarray
    aspect_scores: np.ndarray | None = None

    def check(self, train: ListwiseData, aspects: bool = False) -> None:
        """Refuse scores that do not belong to ``train``'s queries, or are not finite.

        ``aspects``: the per-aspect scores are needed too (``[Q, P, A]``).
        """
        if not np.array_equal(self.query_index, train.query_index):
            raise ValueError("teacher scores must have one row per training list, in order")
        valid = self.candidate_index >= 0
        if self.scores.shape != self.candidate_index.shape:
            raise ValueError(
                f"teacher scores {self.scores.shape} must match candidate_index "
                f"{self.candidate_index.shape}"
            )
        if not np.isfinite(self.scores[valid]).all():
            raise ValueError("teacher scores of valid candidates must be finite")
        if not aspects:
            return
        if self.aspect_scores is None:
            raise ValueError("aspect_distillation needs the teacher's per-aspect scores")
        if self.aspect_scores.shape[:2] != self.scores.shape or self.aspect_scores.ndim != 3:
            raise ValueError(
                f"teacher aspect scores {self.aspect_scores.shape} must be [Q, P, A] with "
                f"[Q, P] = {self.scores.shape}"
            )
        if not np.isfinite(self.aspect_scores[valid]).all():
            raise ValueError("teacher aspect scores of valid candidates must be finite")


def _valid_scores(scores: np.ndarray, candidate_index: np.ndarray) -> Tensor:
    """Float32 teacher scores ``[Q, P, ...]`` with the padding (``candidate_index`` -1) zeroed."""
    valid = (candidate_index >= 0).reshape(candidate_index.shape + (1,) * (scores.ndim - 2))
    return torch.from_numpy(np.where(valid, scores, 0.0).astype(np.float32))


def _positions(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Positions of ``index`` entries in the sorted ``rows`` (padding -1 → 0)."""
    return np.searchsorted(rows, np.where(index >= 0, index, rows[0]))


def _pool_similarities(
    head: ProjectionHead, queries: Tensor, vectors: Tensor, positions: np.ndarray
) -> Tensor:
    """Per-aspect cosines ``[Bq, P, A]`` of each query with the ``vectors`` at ``positions``.

    When the pools cover most of the batch's clips (a small split), every query is scored
    against every clip at once and the pools are picked from that; otherwise each pool's
    vectors are gathered.
    """
    if len(vectors) <= positions.shape[1] * vectors.shape[-1]:
        every = head.aspect_similarities(queries, vectors)  # [Bq, R, A]
        index = torch.from_numpy(positions)[..., None].expand(-1, -1, every.shape[-1])
        return every.gather(1, index)
    return head.aspect_similarities(queries, vectors[positions])


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
    teacher: TeacherScores | None,
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
    * ``distillation``: the totals of each query's teacher pool against the teacher's
      scores of it (``params.distillation``): pairs the labelled lists may never hold;
    * ``aspect_distillation``: the same per aspect, each aspect's cosines over the pool
      against the teacher's sub-scores ``s_a`` (one list per query and aspect), so each
      sub-space learns its own aspect from the teacher, not only their weighted sum.

    Args:
        head: the retriever head, trained in place.
        train: training lists.
        val: validation lists (at least one relevant candidate).
        load_clips: clip-table rows ``[n]`` → float16/32 clips ``[n, S, L, D]``.
        teacher: the teacher's scores of a pool per training list (``aspect_scores``
            needed for ``aspect_distillation``); ``None`` = no distillation (as do zero
            weights of both distillation losses).
        params: optimisation settings.
        progress: show a progress bar.

    Returns:
        The head (best epoch restored) and the per-epoch history.
    """
    distil = teacher is not None and params.distils
    total_distil = distil and params.loss_weights.get("distillation", 0.0) != 0
    aspect_distil = distil and params.loss_weights.get("aspect_distillation", 0.0) != 0
    if distil:
        teacher.check(train, aspects=aspect_distil)
    if total_distil:
        teacher_scores = _valid_scores(teacher.scores, teacher.candidate_index)
    if aspect_distil:
        teacher_aspects = _valid_scores(teacher.aspect_scores, teacher.candidate_index)
    ranking_loss = ListwiseRankingLoss(params.temperature)
    aspect_loss, routing_loss = AspectRegressionLoss(), RoutingPriorLoss()
    distillation_loss = DistillationLoss(params.distillation, params.temperature)
    prior = torch.tensor(head.config.layer_scores, dtype=torch.float32)

    def step(lists: np.ndarray) -> dict[str, Tensor]:
        queries, cands = train.query_index[lists], train.candidate_index[lists]
        pool = teacher.candidate_index[lists] if distil else cands[:, :0]
        rows = np.unique(np.concatenate([queries, cands[cands >= 0], pool[pool >= 0]]))
        vectors = head.embed(as_float_tensor(load_clips(rows)))  # [R, A, k]
        query_vectors = vectors[_positions(rows, queries)]
        per_aspect = head.aspect_similarities(query_vectors, vectors[_positions(rows, cands)])
        total = head.combine(per_aspect)  # [Bq, C]
        mask = torch.from_numpy(train.valid[lists])
        targets = torch.from_numpy(train.targets[lists]).float()
        losses = {
            "ranking": ranking_loss(total, torch.from_numpy(train.relevance[lists]), mask),
            "aspect": aspect_loss((per_aspect + 1) / 2, targets, mask),
            "routing": routing_loss(head.routing.weights(), prior),
        }
        if distil:
            pooled = _pool_similarities(head, query_vectors, vectors, _positions(rows, pool))
            valid = torch.from_numpy(pool >= 0)
        if total_distil:
            losses["distillation"] = distillation_loss(
                head.combine(pooled), teacher_scores[lists], valid
            )
        if aspect_distil:  # one list per (query, aspect): cos_a against the teacher's s_a
            losses["aspect_distillation"] = distillation_loss(
                pooled.movedim(-1, 1),
                teacher_aspects[lists].movedim(-1, 1),
                valid[:, None].expand(-1, pooled.shape[-1], -1),
            )
        return losses

    def list_scores(data: ListwiseData) -> np.ndarray:
        return projection_list_scores(head, data, load_clips)

    history = fit_lists(
        head, train, val, load_clips, params, step, list_scores, progress, desc="projection"
    )
    return head, history
