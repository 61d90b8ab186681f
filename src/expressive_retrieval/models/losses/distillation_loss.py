"""Distillation of the oracle's list scores into the retriever (Margin-MSE or listwise KL)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

DISTILLATION_KINDS = ("margin_mse", "listwise_kl")


class DistillationLoss(nn.Module):
    """Match a student's scores of each list to a teacher's.

    Both kinds compare ``s / T`` and ``t / T``: scores in the units in which the ranking
    loss turns them into logits, so one loss weight suits both kinds.

    * ``margin_mse`` (Hofstätter et al., "Improving Efficient Neural Ranking Models with
      Cross-Architecture Knowledge Distillation", arXiv:2010.02666, 2020): the squared
      difference between student and teacher *margins* ``s_i − s_j`` and ``t_i − t_j``,
      over every ordered pair ``i ≠ j`` of a list's valid candidates (the paper uses one
      positive–negative pair; a graded list has no single positive, so all pairs). With
      ``d = s − t`` the mean over pairs is ``2 · Σ_i (d_i − mean d)² / (n − 1)``, computed
      in ``O(C)``. Only differences count, so an offset between the lists is free: adding a
      constant to a list's scores changes nothing.
    * ``listwise_kl`` (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015,
      applied to lists): ``KL(softmax(t / T) ‖ softmax(s / T))`` over a list's valid
      candidates.

    The loss is the mean over lists with at least two valid candidates (0 when none has).

    Args:
        kind: ``"margin_mse"`` or ``"listwise_kl"``.
        temperature: divides both scores before they are compared (> 0).
    """

    def __init__(self, kind: str = "listwise_kl", temperature: float = 1.0) -> None:
        super().__init__()
        if kind not in DISTILLATION_KINDS:
            raise ValueError(f"kind must be one of {DISTILLATION_KINDS}, got {kind!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.kind, self.temperature = kind, temperature

    def forward(self, student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.compute_loss(student, teacher, mask, self.kind, self.temperature)

    @staticmethod
    def compute_loss(
        student: Tensor,
        teacher: Tensor,
        mask: Tensor | None = None,
        kind: str = "listwise_kl",
        temperature: float = 1.0,
    ) -> Tensor:
        """Scalar loss.

        Args:
            student: ``[..., C]`` student scores (with gradients): one list per leading
                index, e.g. ``[Bq, C]`` or ``[Bq, A, C]`` (a list per query and aspect).
            teacher: ``[..., C]`` teacher scores (no gradient flows into them).
            mask: ``[..., C]`` bool, False marks padding; ``None`` = all valid.
            kind: ``"margin_mse"`` or ``"listwise_kl"``.
            temperature: divides both scores before they are compared.
        """
        valid = torch.ones_like(student, dtype=torch.bool) if mask is None else mask.bool()
        student = student / temperature
        teacher = torch.where(valid, teacher.detach().to(student.dtype), 0.0) / temperature
        counts = valid.sum(dim=-1)
        has_pairs = counts >= 2
        if kind == "margin_mse":
            diff = torch.where(valid, student - teacher, 0.0)
            centred = diff - diff.sum(dim=-1, keepdim=True) / counts.clamp_min(1).unsqueeze(-1)
            spread = torch.where(valid, centred, 0.0).pow(2).sum(dim=-1)
            per_list = 2 * spread / (counts - 1).clamp_min(1)
        elif kind == "listwise_kl":
            lowest = torch.finfo(student.dtype).min
            log_p_teacher = torch.log_softmax(teacher.masked_fill(~valid, lowest), dim=-1)
            log_p_student = torch.log_softmax(student.masked_fill(~valid, lowest), dim=-1)
            terms = log_p_teacher.exp() * (log_p_teacher - log_p_student)
            per_list = torch.where(valid, terms, 0.0).sum(dim=-1)
        else:
            raise ValueError(f"kind must be one of {DISTILLATION_KINDS}, got {kind!r}")
        return (per_list * has_pairs).sum() / has_pairs.sum().clamp_min(1)
