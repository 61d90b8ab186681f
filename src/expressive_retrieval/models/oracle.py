"""The oracle expressive scorer ``s(q, c, w) = Σ_a w_a · s_a(q, c)`` (docs/design.md, "Models").

Slow, pairwise and aspect-controllable: the quality reference and the distillation teacher.

* ``encode`` (per clip, cacheable): the shared ``SegmentEncoder`` front end (input
  standardisation, per-aspect layer routing, ``Linear_a → GELU``), then ``Linear_a`` to
  ``[A, S, H]``.
* ``score_encoded`` (per pair): for every aspect, features that see both clips together —
  |diff| and product of cross-segment statistics (mean, std and least-squares slope over
  the ``S`` segments; a tempo drift or a phrase arc is only visible there) and soft
  alignment of the query's segments over the candidate's and back (aligned dot products
  and distances, computed from ``S×S`` Gram matrices so the per-pair cost stays small) —
  then an MLP per aspect and a sigmoid: ``s_a ∈ [0, 1]``.
* ``config.cosine_branch`` adds a bi-encoder branch per aspect: an embedding of each
  clip's statistics on its own (an MLP to unit length, as the projection head pools), whose
  cosine, scaled by a learned ``softplus(γ_a)``, is added to the pair MLP's logit. Trained
  with a listwise loss of its own (``member_outputs``), it ranks by a metric, which holds at
  the edges of the training data where the pair MLP's fit does not
  (docs/oracle_scorer.md, "The cosine branch").
* ``predict_proxies``: auxiliary linear head predicting each clip's standardised proxy
  features from its own aspect's statistics, so aspect ``a``'s encoding must carry
  aspect ``a``.

``config.members > 1`` makes the scorer an ensemble over initialisations: ``K`` members,
each with its own routing, projections and pair MLPs (all drawn from one seeded stream),
computed together as ``K·A`` heads in the same batched maps. Each member is trained on its
own losses (``score_members``, ``member_proxies``); ``s_a`` is the mean of the members'
(docs/oracle_scorer.md, "Ensemble").

Tracks are scored through their clips with ``config.track_aggregation`` (``max`` or
``topk_mean`` over a track's best ``track_topk`` clips), as
``expressive_retrieval.vectors.track_scores.aggregate_to_tracks`` computes it.
"""

from __future__ import annotations

import math
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
from expressive_retrieval.vectors.aspects import normalised_weights

TRACK_AGGREGATIONS = ("max", "topk_mean")
NUM_ALIGNMENT_FEATURES = 5


@dataclass
class OracleConfig(EncoderConfig):
    """Everything needed to rebuild an ``OracleScorer`` (saved as ``config.json``).

    ``clip_proxy_features`` columns predicted by the auxiliary head are grouped by aspect in
    ``aspects`` order, ``num_proxy_features[a]`` columns for aspect ``a`` (``None`` = none).
    ``members`` independently initialised scorers are averaged (1 = a single scorer).
    ``cosine_branch`` adds the bi-encoder branch to every head.
    """

    num_proxy_features: list[int] | None = None
    track_aggregation: str = "topk_mean"
    track_topk: int = 2
    members: int = 1
    cosine_branch: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        num_aspects = len(self.aspects)
        if self.num_proxy_features is not None and (
            len(self.num_proxy_features) != num_aspects or min(self.num_proxy_features) < 0
        ):
            raise ValueError(f"num_proxy_features must be {num_aspects} non-negative ints")
        if self.track_aggregation not in TRACK_AGGREGATIONS or self.track_topk < 1:
            raise ValueError(
                f"track_aggregation must be one of {TRACK_AGGREGATIONS} and track_topk >= 1"
            )
        if self.members < 1:
            raise ValueError(f"members must be >= 1, got {self.members}")

    @property
    def head_layer_scores(self) -> list[list[float]]:
        """Every member routes from the same evidence: ``members × A`` heads, member-major."""
        return self.layer_scores * self.members

    @property
    def proxy_counts(self) -> list[int]:
        """Proxy features per aspect (zeros when there is no auxiliary head)."""
        return list(self.num_proxy_features or [0] * len(self.aspects))


def _gram(x: Tensor) -> Tensor:
    """Segment Gram matrices: ``[..., S, H]`` → ``[..., S, S]``."""
    return x @ x.transpose(-1, -2)


def _alignment_features(cross: Tensor, q_gram: Tensor, c_gram: Tensor, width: int) -> Tensor:
    """Soft segment alignment of a query and a candidate, from Gram matrices only.

    Each query segment attends over the candidate's segments (``softmax(q_s·c_t / √H)``) and
    back. The features, all per ``H``, are the mean dot product and the mean squared distance
    of each segment to its aligned counterpart in both directions, and the mean squared
    distance of same-position segments. ``‖q_s − Σ_t p_st c_t‖²`` expands into Gram terms,
    so nothing of size ``[S, H]`` is built per pair.

    Args:
        cross: ``[Bq, C, A, S, S]`` dot products ``q_s·c_t``.
        q_gram: ``[Bq, 1, A, S, S]``; c_gram: ``[Bq or 1, C, A, S, S]``.
        width: ``H``.

    Returns:
        ``[Bq, C, A, NUM_ALIGNMENT_FEATURES]``.
    """
    to_cand = torch.softmax(cross / math.sqrt(width), dim=-1)  # [.., s, t], rows sum to 1
    to_query = torch.softmax(cross / math.sqrt(width), dim=-2).transpose(-1, -2)  # [.., t, s]
    q_norms = q_gram.diagonal(dim1=-2, dim2=-1)  # [.., S]
    c_norms = c_gram.diagonal(dim1=-2, dim2=-1)
    dot_to_cand = (to_cand * cross).sum(-1)  # q_s · (aligned c)_s, [.., S]
    dot_to_query = (to_query * cross.transpose(-1, -2)).sum(-1)
    aligned_cand_norms = ((to_cand @ c_gram) * to_cand).sum(-1)
    aligned_query_norms = ((to_query @ q_gram) * to_query).sum(-1)
    features = [
        dot_to_cand,
        dot_to_query,
        q_norms - 2 * dot_to_cand + aligned_cand_norms,
        c_norms - 2 * dot_to_query + aligned_query_norms,
        q_norms + c_norms - 2 * cross.diagonal(dim1=-2, dim2=-1),
    ]
    return torch.stack([f.mean(-1) for f in features], dim=-1) / width


class OracleScorer(SegmentEncoder):
    """Pairwise, per-aspect expressive similarity.

    Args:
        config: shapes, aspects, discovery evidence and defaults.
        seed: initialises the parameters without touching the global torch RNG.
    """

    config: OracleConfig

    def __init__(self, config: OracleConfig, seed: int = 0) -> None:
        heads, hidden = len(config.head_layer_scores), config.hidden
        counts = config.proxy_counts
        with seeded(seed):
            super().__init__(config)
            self.project_out = AspectLinear(heads, hidden, hidden)
            self.pair_hidden = AspectLinear(heads, 6 * hidden + NUM_ALIGNMENT_FEATURES, hidden)
            self.pair_out = AspectLinear(heads, hidden, 1)
            self.proxy_head = AspectLinear(heads, 3 * hidden, max(counts)) if sum(counts) else None
            if config.cosine_branch:
                self.embed_hidden = AspectLinear(heads, 3 * hidden, hidden)
                self.embed_out = AspectLinear(heads, hidden, hidden)
                # softplus(γ) starts at 1, so the pair MLP leads from the start (at 5 it
                # trained worse: docs/oracle_scorer.md, "The cosine branch")
                self.cosine_scale = nn.Parameter(torch.full((heads,), math.log(math.expm1(1.0))))
        # Output column j of a member's proxies = row-major position of (aspect, feature) in
        # the member's [A, max(counts)] block of the head's output.
        columns = [a * max(counts) + f for a, n in enumerate(counts) for f in range(n)]
        self.register_buffer("proxy_columns", torch.tensor(columns, dtype=torch.long), False)

    @property
    def num_members(self) -> int:
        return self.config.members

    def encode(self, clips: Tensor) -> Tensor:
        """Per-clip encodings: ``[B, S, L, D]`` → ``[B, K·A, S, H]`` (``K`` members)."""
        return self.project_out(self.segment_features(clips)).transpose(-2, -3).contiguous()

    def score_encoded(self, query_enc: Tensor, cand_enc: Tensor) -> Tensor:
        """Per-aspect similarities ``[Bq, C, A]`` in [0, 1]: the members' mean.

        Args:
            query_enc: ``[Bq, K·A, S, H]`` from ``encode``.
            cand_enc: ``[Bq, C, K·A, S, H]``, or ``[1, C, K·A, S, H]`` to score the same
                candidates against every query (one GEMM per head, nothing copied).
        """
        return self.score_members(query_enc, cand_enc).mean(dim=-2)

    def score_members(self, query_enc: Tensor, cand_enc: Tensor) -> Tensor:
        """Each member's per-aspect similarities ``[Bq, C, K, A]`` (``score_encoded``'s args)."""
        return self.member_outputs(query_enc, cand_enc)[0]

    def embed_statistics(self, stats: Tensor) -> Tensor:
        """The cosine branch's unit embeddings: statistics ``[..., K·A, 3H]`` → ``[..., K·A, H]``."""
        hidden = nn.functional.gelu(self.embed_hidden(stats))
        return nn.functional.normalize(self.embed_out(hidden), dim=-1, eps=1e-6)

    def member_outputs(self, query_enc: Tensor, cand_enc: Tensor) -> tuple[Tensor, Tensor | None]:
        """``score_members`` and, with the cosine branch, its cosines on their own.

        Returns:
            Each member's per-aspect similarities ``[Bq, C, K, A]``, and the branch's
            cosines ``[Bq, C, K, A]`` in [-1, 1] (``None`` without the branch).
        """
        if cand_enc.shape[0] == 1:
            cross = torch.einsum("qash,cath->qcast", query_enc, cand_enc[0])
        elif cand_enc.shape[0] == query_enc.shape[0]:
            cross = torch.einsum("qash,qcath->qcast", query_enc, cand_enc)
        else:
            raise ValueError(f"cand_enc batch must be 1 or {query_enc.shape[0]}")
        alignment = _alignment_features(
            cross, _gram(query_enc).unsqueeze(1), _gram(cand_enc), query_enc.shape[-1]
        )
        q_stats = segment_statistics(query_enc).unsqueeze(1)  # [Bq, 1, A, 3H]
        c_stats = segment_statistics(cand_enc)  # [Bq or 1, C, A, 3H]
        shape = (*alignment.shape[:-1], -1)  # [Bq, C, A, ...]
        features = torch.cat(
            [
                (q_stats - c_stats).abs().expand(shape),
                (q_stats * c_stats).expand(shape),
                alignment,
            ],
            dim=-1,
        )
        hidden = nn.functional.gelu(self.pair_hidden(features))
        logits = self.pair_out(hidden).squeeze(-1)  # [Bq, C, K·A]
        cosine = None
        if self.config.cosine_branch:
            q_embedded, c_embedded = self.embed_statistics(q_stats), self.embed_statistics(c_stats)
            cosine = (q_embedded * c_embedded).sum(-1).expand(logits.shape)
            logits = logits + nn.functional.softplus(self.cosine_scale) * cosine
        per_member = (self.num_members, self.num_aspects)
        return (
            torch.sigmoid(logits).unflatten(-1, per_member),
            None if cosine is None else cosine.unflatten(-1, per_member),
        )

    def aspect_weights(
        self, weights: Tensor | np.ndarray | None, num_queries: int | None
    ) -> Tensor:
        """Validated weights normalised to sum 1: ``[A]``, or ``[num_queries, A]`` if given so.

        ``None`` gives ``config.default_weights``; ``num_queries=None`` allows only ``[A]``.
        """
        if weights is None:
            return self.default_weights
        if isinstance(weights, Tensor):
            weights = weights.detach().cpu().numpy()
        try:
            w = normalised_weights(weights, self.num_aspects, num_queries)
        except ValueError as error:
            raise ValueError(f"{error} (aspects {self.config.aspects})") from error
        return torch.as_tensor(w, dtype=torch.float32, device=self.default_weights.device)

    def combine(self, per_aspect: Tensor, weights: Tensor | np.ndarray | None = None) -> Tensor:
        """Total ``Σ_a w_a s_a``: ``[Bq, C, A]`` → ``[Bq, C]``; weights ``[A]``/``[Bq, A]``/None."""
        w = self.aspect_weights(weights, per_aspect.shape[0])
        return (per_aspect * (w if w.ndim == 1 else w.unsqueeze(-2))).sum(dim=-1)

    def forward(
        self, query: Tensor, candidates: Tensor, weights: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Score candidate lists.

        Args:
            query: ``[Bq, S, L, D]``.
            candidates: ``[Bq, C, S, L, D]``.
            weights: ``[A]``, ``[Bq, A]`` or ``None`` (default weights); non-negative.

        Returns:
            Total ``[Bq, C]`` and per-aspect ``[Bq, C, A]`` scores.
        """
        num_queries, num_cands = candidates.shape[:2]
        cand_enc = self.encode(candidates.flatten(0, 1)).unflatten(0, (num_queries, num_cands))
        per_aspect = self.score_encoded(self.encode(query), cand_enc)
        return self.combine(per_aspect, weights), per_aspect

    def predict_proxies(self, enc: Tensor) -> Tensor:
        """Standardised proxy features ``[B, sum(num_proxy_features)]`` from ``enc``: the
        members' mean.

        Aspect ``a``'s features are predicted from aspect ``a``'s encoding only.
        """
        return self.member_proxies(enc).mean(dim=1)

    def member_proxies(self, enc: Tensor) -> Tensor:
        """Each member's proxy predictions ``[B, K, sum(num_proxy_features)]``."""
        if self.proxy_head is None:
            return enc.new_zeros(enc.shape[0], self.num_members, 0)
        predicted = self.proxy_head(segment_statistics(enc))  # [B, K·A, max count]
        per_member = predicted.unflatten(1, (self.num_members, -1)).flatten(2)
        return per_member[..., self.proxy_columns]

    @torch.no_grad()
    def encode_clips(self, clips: np.ndarray | Tensor, batch_size: int = 512) -> Tensor:
        """``encode`` in chunks of ``batch_size`` (``clips`` may be a memory map)."""
        chunks = [
            self.encode(as_float_tensor(clips[i : i + batch_size]))
            for i in range(0, len(clips), batch_size)
        ]
        if not chunks:
            c = self.config
            return torch.zeros(0, len(c.head_layer_scores), c.clip_segments, c.hidden)
        return torch.cat(chunks)

    @torch.no_grad()
    def score(
        self,
        query: np.ndarray | Tensor,
        candidates: np.ndarray | Tensor,
        weights: np.ndarray | Tensor | None = None,
        batch_size: int = 512,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One query ``[S, L, D]`` against ``[N, S, L, D]`` candidates → ``[N]``, ``[N, A]``."""
        w = self.aspect_weights(weights, None)
        query_enc = self.encode_clips(as_float_tensor(query)[None])
        per_aspect = [
            self.score_encoded(query_enc, self.encode_clips(candidates[i : i + batch_size])[None])
            for i in range(0, len(candidates), batch_size)
        ]
        per_aspect_t = torch.cat(per_aspect, dim=1)[0] if per_aspect else torch.zeros(0, len(w))
        return self.combine(per_aspect_t, w).numpy(), per_aspect_t.numpy()

    @torch.no_grad()
    def score_lists(
        self, query_enc: Tensor, cand_enc: Tensor, candidates: np.ndarray, chunk: int = 2048
    ) -> np.ndarray:
        """Each query against its own candidate list, from cached encodings.

        Args:
            query_enc: ``[Q, K·A, S, H]`` from ``encode_clips``.
            cand_enc: ``[N, K·A, S, H]``.
            candidates: ``[Q, P]`` rows of ``cand_enc`` per query, -1 padded (a pad scores 0).
            chunk: pairs scored per block.

        Returns:
            Per-aspect scores ``[Q, P, A]`` (float32).
        """
        num_queries, width = candidates.shape
        per_aspect = torch.zeros(num_queries, width, self.num_aspects)
        block = max(1, chunk // max(width, 1))
        lists = torch.as_tensor(candidates, dtype=torch.long)
        for q0 in range(0, num_queries if width else 0, block):
            rows = lists[q0 : q0 + block]
            scored = self.score_encoded(query_enc[q0 : q0 + block], cand_enc[rows.clamp(min=0)])
            per_aspect[q0 : q0 + block] = scored * (rows >= 0).unsqueeze(-1)
        return per_aspect.numpy()

    @torch.no_grad()
    def score_many(
        self,
        query_enc: Tensor,
        cand_enc: Tensor,
        weights: np.ndarray | Tensor | None = None,
        chunk: int = 2048,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every query against every candidate from cached encodings.

        Args:
            query_enc: ``[Q, K·A, S, H]`` from ``encode``/``encode_clips``.
            cand_enc: ``[N, K·A, S, H]``.
            weights: ``[A]``, ``[Q, A]`` or ``None``.
            chunk: pairs scored per block (bounds the memory of the pair features).

        Returns:
            Total ``[Q, N]`` and per-aspect ``[Q, N, A]`` scores (float32).
        """
        num_queries, num_cands = len(query_enc), len(cand_enc)
        w = self.aspect_weights(weights, num_queries)
        per_aspect = torch.zeros(num_queries, num_cands, self.num_aspects)
        cand_block = max(1, min(num_cands, chunk))
        query_block = max(1, chunk // cand_block)
        for q0 in range(0, num_queries, query_block):
            queries = query_enc[q0 : q0 + query_block]
            for c0 in range(0, num_cands, cand_block):
                block = self.score_encoded(queries, cand_enc[None, c0 : c0 + cand_block])
                per_aspect[q0 : q0 + query_block, c0 : c0 + cand_block] = block
        return self.combine(per_aspect, w).numpy(), per_aspect.numpy()
