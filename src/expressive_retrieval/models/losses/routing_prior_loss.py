"""Keeps each aspect's layer routing near the discovery evidence."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from expressive_retrieval.vectors.evidence import layer_priors

_LOG_FLOOR = 1e-12


class RoutingPriorLoss(nn.Module):
    """Mean over aspects of ``KL(prior_a ‖ routing_a)`` over layers.

    ``prior`` is the discovery evidence ``layer_scores`` read by ``layer_priors`` (an
    aspect without positive evidence has a uniform prior, as ``LayerRouting`` starts it). The forward
    KL penalises routing that starves a layer the evidence relies on, and lets the routing
    concentrate within the evidence's support. It is the confidence penalty of Pereyra et
    al., "Regularizing Neural Networks by Penalizing Confident Output Distributions",
    ICLR workshop 2017 (KL from the uniform distribution), with the evidence as reference.
    """

    def forward(self, routing: Tensor, prior: Tensor) -> Tensor:
        return self.compute_loss(routing, prior)

    @staticmethod
    def compute_loss(routing: Tensor, prior: Tensor) -> Tensor:
        """Scalar loss (0 when every row of ``routing`` equals the normalised prior).

        Args:
            routing: ``[A, L]`` routing weights, rows summing to 1 (``LayerRouting.weights``).
            prior: ``[A, L]`` evidence per aspect and layer, read by ``layer_priors``.
        """
        if routing.shape != prior.shape or routing.ndim != 2:
            raise ValueError(
                f"routing and prior must both be [A, L], got {tuple(routing.shape)} "
                f"and {tuple(prior.shape)}"
            )
        evidence = prior.detach().to(torch.float64).cpu().numpy()
        p = torch.from_numpy(layer_priors(evidence)).to(routing.dtype)
        log_ratio = torch.log(p.clamp_min(_LOG_FLOOR)) - torch.log(routing.clamp_min(_LOG_FLOOR))
        return torch.where(p > 0, p * log_ratio, 0.0).sum(dim=-1).mean()
