"""Per-aspect regression of aspect scores onto aspect target similarities."""

from __future__ import annotations

import torch
from torch import Tensor, nn

LOSS_KINDS = ("mse", "smooth_l1")


class AspectRegressionLoss(nn.Module):
    """MSE (or smooth L1) between per-aspect scores ``s_a`` and targets ``target_<aspect>``.

    Ties each aspect's sub-score to its own aspect's similarity, which is what makes the
    aspect weights meaningful (aspect faithfulness, docs/design.md, "Evaluation"). Averaged
    over observed entries: valid candidates with a finite target.

    Reference: the per-aspect supervision follows multi-aspect similarity learning,
    e.g. Veit et al., "Conditional Similarity Networks", CVPR 2017.

    Args:
        kind: ``"mse"`` or ``"smooth_l1"``.
        beta: smooth-L1 transition point.
    """

    def __init__(self, kind: str = "mse", beta: float = 0.1) -> None:
        super().__init__()
        if kind not in LOSS_KINDS:
            raise ValueError(f"kind must be one of {LOSS_KINDS}, got {kind!r}")
        self.kind, self.beta = kind, beta

    def forward(self, aspect_scores: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.compute_loss(aspect_scores, targets, mask, self.kind, self.beta)

    @staticmethod
    def compute_loss(
        aspect_scores: Tensor,
        targets: Tensor,
        mask: Tensor | None = None,
        kind: str = "mse",
        beta: float = 0.1,
    ) -> Tensor:
        """Scalar loss.

        Args:
            aspect_scores: ``[Bq, C, A]`` per-aspect scores in [0, 1].
            targets: ``[Bq, C, A]`` target similarities in [0, 1]; NaN = unknown.
            mask: ``[Bq, C]`` bool, False marks padding; ``None`` = all valid.
            kind: ``"mse"`` or ``"smooth_l1"``.
            beta: smooth-L1 transition point.
        """
        observed = torch.isfinite(targets)
        if mask is not None:
            observed = observed & mask.bool().unsqueeze(-1)
        filled = torch.where(observed, targets, aspect_scores.detach())
        if kind == "mse":
            errors = (aspect_scores - filled).pow(2)
        else:
            errors = nn.functional.smooth_l1_loss(
                aspect_scores, filled, reduction="none", beta=beta
            )
        return (errors * observed).sum() / observed.sum().clamp_min(1)
