"""The projection retriever head: one vector per clip, one inner-product index.

docs/design.md, "Models".

Fast and distilled, the counterpart of the pairwise oracle. ``embed`` maps a clip
``[S, L, D]`` to ``A`` unit-norm sub-vectors of ``sub_dim`` each:

* the ``SegmentEncoder`` front end it shares with the oracle: per-(layer, dim) input
  standardisation, per-aspect layer routing initialised from discovery evidence, a
  per-aspect, per-segment projection ``AspectLinear(D → hidden) → GELU``;
* cross-segment pooling by ``segment_statistics`` (mean, std and least-squares slope over
  the ``S`` segments, so a tempo drift or a phrase arc is reachable);
* a per-aspect MLP ``3·hidden → hidden → GELU → sub_dim``, L2-normalised per aspect.

The flat vector concatenates the sub-vectors (``A · sub_dim``). Scaling a query's
sub-vector ``a`` by ``w_a / Σw`` (``weight_query_vectors``) makes its inner product with
any flat clip vector equal ``Σ_a (w_a / Σw) · cos_a``, so one inner-product index serves
every aspect weighting.

Track vectors (``config.track_aggregation = "mean"``, see ``track_vectors``): per aspect,
the mean of the track's clips' sub-vectors re-normalised to unit length — the direction
closest, in summed cosine, to all of the track's clips — so tracks are searched with the
same weighted query vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from expressive_retrieval.models.encoder import (
    EncoderConfig,
    SegmentEncoder,
    as_float_tensor,
    seeded,
    segment_statistics,
)
from expressive_retrieval.models.routing import AspectLinear
from expressive_retrieval.vectors.aspects import weight_query_vectors

TRACK_AGGREGATIONS = ("mean",)
_NORM_EPS = 1e-12


@dataclass
class ProjectionConfig(EncoderConfig):
    """Everything needed to rebuild a ``ProjectionHead`` (saved as ``config.json``)."""

    sub_dim: int = 16
    track_aggregation: str = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sub_dim < 1:
            raise ValueError(f"sub_dim must be >= 1, got {self.sub_dim}")
        if self.track_aggregation not in TRACK_AGGREGATIONS:
            raise ValueError(
                f"track_aggregation must be one of {TRACK_AGGREGATIONS}, "
                f"got {self.track_aggregation!r}"
            )

    @property
    def vector_dim(self) -> int:
        """Width of a flat clip vector: ``A · sub_dim``."""
        return len(self.aspects) * self.sub_dim


class ProjectionHead(SegmentEncoder):
    """Segment embeddings → per-aspect unit sub-vectors, for inner-product retrieval.

    Args:
        config: shapes, aspects, discovery evidence and defaults.
        seed: initialises the parameters without touching the global torch RNG.
    """

    config: ProjectionConfig
    # One pass over the large input; serving/head.py computes exactly this form.
    fold_standardisation = True

    def __init__(self, config: ProjectionConfig, seed: int = 0) -> None:
        num_aspects, hidden = len(config.aspects), config.hidden
        with seeded(seed):
            super().__init__(config)
            self.pool_hidden = AspectLinear(num_aspects, 3 * hidden, hidden)
            self.pool_out = AspectLinear(num_aspects, hidden, config.sub_dim)

    def embed(self, clips: Tensor) -> Tensor:
        """Per-aspect unit sub-vectors: ``[B, S, L, D]`` → ``[B, A, sub_dim]``."""
        return self.embed_features(self.segment_features(clips))

    def embed_features(self, hidden: Tensor) -> Tensor:
        """``embed`` from segment features ``[B, S, A, H]`` (``segment_features``' output)."""
        pooled = segment_statistics(hidden.transpose(-2, -3))  # [B, A, 3H]
        out = self.pool_out(nn.functional.gelu(self.pool_hidden(pooled)))
        return nn.functional.normalize(out, dim=-1, eps=_NORM_EPS)

    @torch.no_grad()
    def embed_numpy(self, clips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Flat float32 vectors ``[B, A·sub_dim]`` of float16/32 clips ``[B, S, L, D]``.

        Embeds ``batch_size`` clips at a time (``clips`` may be a memory map). Small chunks
        are faster on CPU: at MERT-95M shapes a chunk of 64 clips is 15 MB of float32, one
        of 256 is 61 MB, which the allocator maps afresh each time.
        """
        chunks = [
            self.embed(as_float_tensor(clips[i : i + batch_size])).flatten(1).numpy()
            for i in range(0, len(clips), batch_size)
        ]
        if not chunks:
            return np.zeros((0, self.config.vector_dim), dtype=np.float32)
        return np.concatenate(chunks)

    @staticmethod
    def aspect_similarities(queries: Tensor, candidates: Tensor) -> Tensor:
        """Cosine per aspect.

        Args:
            queries: ``[Q, A, k]``.
            candidates: ``[N, A, k]`` shared by every query, or ``[Q, C, A, k]`` (one list
                per query).

        Returns:
            ``[Q, N, A]`` (or ``[Q, C, A]``).
        """
        q = nn.functional.normalize(queries, dim=-1, eps=_NORM_EPS)
        c = nn.functional.normalize(candidates, dim=-1, eps=_NORM_EPS)
        if c.ndim == 3:
            return torch.einsum("qak,nak->qna", q, c)
        if c.ndim == 4 and c.shape[0] == q.shape[0]:
            return torch.einsum("qak,qcak->qca", q, c)
        raise ValueError(f"candidates must be [N, A, k] or [Q, C, A, k], got {tuple(c.shape)}")

    def combine(self, per_aspect: Tensor) -> Tensor:
        """Default-weight total ``Σ_a w_a s_a``: ``[..., A]`` → ``[...]``."""
        return per_aspect @ self.default_weights

    def query_vectors(
        self,
        embeddings: Tensor | np.ndarray,
        weights: Tensor | np.ndarray | list[float] | None = None,
    ) -> Tensor | np.ndarray:
        """``weight_query_vectors`` of ``[Q, A·k]`` or ``[Q, A, k]`` embeddings → ``[Q, A·k]``.

        ``weights``: ``[A]``, ``[Q, A]`` or ``None`` (``config.default_weights``). Returns a
        tensor for a tensor input, else a numpy array (float32).
        """
        as_numpy = np.asarray(embeddings.detach() if isinstance(embeddings, Tensor) else embeddings)
        flat = as_numpy.reshape(len(as_numpy), -1)
        if weights is None:
            weights = self.config.default_weights
        elif isinstance(weights, Tensor):
            weights = weights.detach().numpy()
        vectors = weight_query_vectors(flat, weights, self.num_aspects)
        return torch.from_numpy(vectors) if isinstance(embeddings, Tensor) else vectors
