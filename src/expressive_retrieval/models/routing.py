"""Per-aspect building blocks: layer routing from discovery evidence, per-aspect maps (§5)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerRouting(nn.Module):
    """A learned softmax over layers for every aspect, initialised from discovery evidence.

    The evidence ``layer_scores[a]`` (non-negative, any scale) is normalised to a
    distribution ``p_a`` and the logits start at ``log(p_a + eps) / temperature``, so at
    initialisation ``weights()[a] ∝ (p_a + eps) ** (1 / temperature)``: ``temperature = 1``
    reproduces the evidence, smaller values sharpen it, and ``eps`` keeps every layer
    reachable by gradient. An aspect with all-zero evidence starts uniform.

    Args:
        layer_scores: ``[A, L]`` non-negative evidence per aspect and layer.
        temperature: sharpness of the initial routing (> 0).
        eps: floor added to the normalised evidence before the log (> 0).
    """

    def __init__(self, layer_scores: Tensor, temperature: float = 1.0, eps: float = 1e-3) -> None:
        super().__init__()
        scores = torch.as_tensor(layer_scores, dtype=torch.float32)
        if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
            raise ValueError(
                f"layer_scores must be [A, L] with A, L > 0, got {tuple(scores.shape)}"
            )
        if not torch.isfinite(scores).all() or (scores < 0).any():
            raise ValueError("layer_scores must be finite and non-negative")
        if temperature <= 0 or eps <= 0:
            raise ValueError(f"temperature and eps must be > 0, got {temperature}, {eps}")
        total = scores.sum(dim=1, keepdim=True)
        uniform = torch.full_like(scores, 1.0 / scores.shape[1])
        share = torch.where(total > 0, scores / total.clamp_min(1e-12), uniform)
        self.logits = nn.Parameter(torch.log(share + eps) / temperature)

    @property
    def num_aspects(self) -> int:
        return self.logits.shape[0]

    @property
    def num_layers(self) -> int:
        return self.logits.shape[1]

    def weights(self) -> Tensor:
        """Routing weights ``[A, L]``; each row sums to 1."""
        return torch.softmax(self.logits, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Route ``[..., S, L, D]`` segment embeddings to per-aspect ``[..., A, S, D]``."""
        if x.shape[-2] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers at dim -2, got {tuple(x.shape)}")
        # [A, L] @ [..., S, L, D] broadcasts to [..., S, A, D]; a batched matmul is ~3x
        # faster than the equivalent einsum on CPU.
        return torch.matmul(self.weights(), x).transpose(-2, -3)


class AspectLinear(nn.Module):
    """A separate affine map per aspect, applied in one batched call (no loop over aspects).

    Args:
        num_aspects: ``A``.
        in_features: input width.
        out_features: output width.
    """

    def __init__(self, num_aspects: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = in_features**-0.5
        self.weight = nn.Parameter(torch.empty(num_aspects, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_aspects, out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., A, in]`` → ``[..., A, out]``; aspect ``a`` uses only its own weights."""
        return torch.einsum("...ai,aio->...ao", x, self.weight) + self.bias
