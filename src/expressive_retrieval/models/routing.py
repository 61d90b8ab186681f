"""Per-aspect building blocks: layer routing from discovery evidence, per-aspect maps (§5)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from expressive_retrieval.vectors.evidence import layer_priors


class LayerRouting(nn.Module):
    """A learned softmax over layers for every aspect, initialised from discovery evidence.

    The evidence ``layer_scores[a]`` (any finite scores; <= 0 is no evidence) becomes the
    distribution ``p_a = layer_priors(layer_scores)[a]`` and the logits start at ``log(p_a + eps) / temperature``, so at
    initialisation ``weights()[a] ∝ (p_a + eps) ** (1 / temperature)``: ``temperature = 1``
    reproduces the evidence, smaller values sharpen it, and ``eps`` keeps every layer
    reachable by gradient. An aspect without positive evidence starts uniform.

    Args:
        layer_scores: ``[A, L]`` evidence per aspect and layer (finite).
        temperature: sharpness of the initial routing (> 0).
        eps: floor added to the normalised evidence before the log (> 0).
    """

    def __init__(self, layer_scores: Tensor, temperature: float = 1.0, eps: float = 1e-3) -> None:
        super().__init__()
        if temperature <= 0 or eps <= 0:
            raise ValueError(f"temperature and eps must be > 0, got {temperature}, {eps}")
        scores = torch.as_tensor(layer_scores, dtype=torch.float64).detach().cpu().numpy()
        share = torch.from_numpy(layer_priors(scores)).float()
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
