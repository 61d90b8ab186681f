"""Listwise softmax cross-entropy on graded relevance (ListNet)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ListwiseRankingLoss(nn.Module):
    """ListNet top-one cross-entropy between the scores and graded relevance.

    The target distribution of a list is its gains ``2^rel − 1`` normalised to sum 1; the
    predicted one is ``softmax(scores / temperature)`` over the list's valid candidates.
    Lists without a positive (all gains 0) have no target and contribute nothing; the loss
    is the mean over the lists that have one (0 when none does). Scores of the oracle are
    in [0, 1], hence the small default temperature.

    Reference: Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach",
    ICML 2007. ApproxNDCG (Qin et al., 2010) would optimise nDCG more directly; not
    implemented.

    Args:
        temperature: divides the scores before the softmax (> 0).
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, scores: Tensor, relevance: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.compute_loss(scores, relevance, mask, self.temperature)

    @staticmethod
    def compute_loss(
        scores: Tensor, relevance: Tensor, mask: Tensor | None = None, temperature: float = 0.1
    ) -> Tensor:
        """Scalar loss.

        Args:
            scores: ``[Bq, C]`` predicted scores (higher = more relevant).
            relevance: ``[Bq, C]`` graded relevance (0..3).
            mask: ``[Bq, C]`` bool, False marks padding; ``None`` = all valid.
            temperature: softmax temperature.
        """
        valid = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.bool()
        gains = torch.where(valid, torch.exp2(relevance.to(scores.dtype)) - 1, 0.0)
        total = gains.sum(dim=-1, keepdim=True)
        has_target = total.squeeze(-1) > 0
        target = gains / total.clamp_min(1e-12)
        logits = (scores / temperature).masked_fill(~valid, torch.finfo(scores.dtype).min)
        log_p = torch.log_softmax(logits, dim=-1)
        per_list = -torch.where(target > 0, target * log_p, 0.0).sum(dim=-1)
        return (per_list * has_target).sum() / has_target.sum().clamp_min(1)
