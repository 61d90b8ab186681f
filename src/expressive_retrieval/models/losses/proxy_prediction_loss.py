"""Auxiliary prediction of each clip's standardised proxy features."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ProxyPredictionLoss(nn.Module):
    """MSE between predicted and standardised proxy features, over observed targets only.

    Keeps each aspect's encoding informative about its own measured proxies (tempo,
    loudness, ...), an auxiliary task in the sense of Caruana, "Multitask Learning",
    Machine Learning 28, 1997.
    """

    def forward(self, predicted: Tensor, targets: Tensor) -> Tensor:
        return self.compute_loss(predicted, targets)

    @staticmethod
    def compute_loss(predicted: Tensor, targets: Tensor) -> Tensor:
        """Scalar loss: mean squared error over the finite entries of ``targets`` (0 if none).

        Args:
            predicted: ``[B, F]`` predictions.
            targets: ``[B, F]`` standardised targets; NaN = missing.
        """
        observed = torch.isfinite(targets)
        errors = (predicted - torch.where(observed, targets, 0.0)).pow(2)
        return (errors * observed).sum() / observed.sum().clamp_min(1)
