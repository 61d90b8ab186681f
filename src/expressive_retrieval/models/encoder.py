"""The front end both models share: standardise → layer routing → per-aspect projection.

``SegmentEncoder`` turns clips ``[B, S, L, D]`` into per-segment, per-aspect features
``[B, S, A, H]``:

* per-(layer, dim) input standardisation, fitted on training clips
  (``set_input_statistics``); unlike a LayerNorm it keeps each segment's magnitude, which
  can carry an aspect;
* per-aspect layer routing (``LayerRouting``), initialised from discovery evidence;
* a per-aspect, per-segment projection ``AspectLinear(D → hidden) → GELU``.

``OracleScorer`` and ``ProjectionHead`` extend it with their own heads. They extend
rather than wrap it so that their state-dict keys (``routing.logits``, ``project_in.*``,
``input_mean``, ``input_scale``) stay those of every saved model and bundle, which the
numpy serving head also reads. ``EncoderConfig`` holds the fields and rules the two
configs share.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from expressive_retrieval.models.routing import AspectLinear, LayerRouting

_STD_EPS = 1e-5


@dataclass
class EncoderConfig:
    """The shapes, aspects, evidence and defaults of a ``SegmentEncoder`` model.

    Subclasses add their head's fields; ``to_dict`` / ``from_dict`` are ``config.json``.
    """

    num_layers: int
    dim: int
    aspects: list[str]
    clip_segments: int
    layer_scores: list[list[float]]
    default_weights: list[float]
    hidden: int = 64
    routing_temperature: float = 1.0

    def __post_init__(self) -> None:
        num_aspects = len(self.aspects)
        if num_aspects == 0 or len(set(self.aspects)) != num_aspects:
            raise ValueError(f"aspects must be non-empty and unique, got {self.aspects}")
        if min(self.num_layers, self.dim, self.clip_segments, self.hidden) < 1:
            raise ValueError("num_layers, dim, clip_segments and hidden must be >= 1")
        if len(self.layer_scores) != num_aspects or any(
            len(row) != self.num_layers for row in self.layer_scores
        ):
            raise ValueError(
                f"layer_scores must be [A={num_aspects}][L={self.num_layers}], got "
                f"{[len(row) for row in self.layer_scores]}"
            )
        weights = np.asarray(self.default_weights, dtype=np.float64)
        if weights.shape != (num_aspects,) or not np.isfinite(weights).all():
            raise ValueError(f"default_weights must be {num_aspects} finite floats")
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("default_weights must be non-negative with a positive sum")
        if self.routing_temperature <= 0:
            raise ValueError("routing_temperature must be > 0")

    @property
    def head_layer_scores(self) -> list[list[float]]:
        """The evidence of each routed head ``[heads][L]``: one head per aspect here."""
        return self.layer_scores

    def to_dict(self) -> dict:
        """A JSON-ready dict (plain lists, ints, floats, strings)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Self:
        """Inverse of ``to_dict``; unknown keys are refused."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**d)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw initial parameters from ``seed`` without touching the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def as_float_tensor(clips: np.ndarray | Tensor) -> Tensor:
    """float32 tensor from float16/32 arrays or memory maps (torch widens half fastest)."""
    if isinstance(clips, Tensor):
        return clips.float()
    return torch.from_numpy(np.ascontiguousarray(clips)).float()


def segment_statistics(x: Tensor) -> Tensor:
    """Cross-segment mean, std and least-squares slope: ``[..., S, H]`` → ``[..., 3H]``."""
    segments = x.shape[-2]
    t = torch.arange(segments, dtype=x.dtype, device=x.device) - (segments - 1) / 2
    mean = x.mean(dim=-2)
    centred = x - mean.unsqueeze(-2)
    std = torch.sqrt(centred.pow(2).mean(dim=-2) + _STD_EPS)
    slope = torch.einsum("s,...sh->...h", t, centred) / t.pow(2).sum().clamp_min(1e-12)
    return torch.cat([mean, std, slope], dim=-1)


class SegmentEncoder(nn.Module):
    """Standardise → route → project: clips ``[B, S, L, D]`` → features ``[B, S, A, H]``.

    ``A`` counts routed heads: one per aspect, or one per (member, aspect) of an ensemble
    (``EncoderConfig.head_layer_scores``).

    A subclass calls ``super().__init__(config)`` inside ``seeded(seed)`` and then builds its
    head, so every parameter comes from one seeded stream.

    Attributes:
        fold_standardisation: route ``x / σ`` and subtract the routed ``m / σ`` (one pass
            over the large input, about twice as fast on CPU) instead of routing
            ``(x − m) / σ``. Equal in exact arithmetic, not in float rounding: each model
            keeps the form it was trained with, so its saved weights reproduce its scores.
    """

    fold_standardisation: ClassVar[bool] = False

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        heads = config.head_layer_scores
        self.routing = LayerRouting(torch.tensor(heads), temperature=config.routing_temperature)
        self.project_in = AspectLinear(len(heads), config.dim, config.hidden)
        self.register_buffer("input_mean", torch.zeros(config.num_layers, config.dim))
        self.register_buffer("input_scale", torch.ones(config.num_layers, config.dim))
        default = torch.tensor(config.default_weights, dtype=torch.float32)
        self.register_buffer("default_weights", default / default.sum(), False)

    @classmethod
    def from_state(cls, config: EncoderConfig, state: Mapping[str, Tensor]) -> Self:
        """Rebuild a trained model from its config and a (safetensors) state dict."""
        model = cls(config)
        model.load_state_dict(dict(state), strict=True)
        return model

    @property
    def num_aspects(self) -> int:
        return len(self.config.aspects)

    def set_input_statistics(self, mean: Tensor | np.ndarray, std: Tensor | np.ndarray) -> None:
        """Standardise inputs with per-(layer, dim) ``mean`` and ``std`` ``[L, D]``.

        A ``std`` below 1e-6 (a constant feature) is replaced by 1.
        """
        shape = tuple(self.input_mean.shape)
        mean_t = torch.as_tensor(mean, dtype=torch.float32)
        std_t = torch.as_tensor(std, dtype=torch.float32)
        if tuple(mean_t.shape) != shape or tuple(std_t.shape) != shape:
            raise ValueError(f"input statistics must be [L, D]={shape}, got {tuple(mean_t.shape)}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
            raise ValueError("input statistics must be finite")
        self.input_mean.copy_(mean_t)
        self.input_scale.copy_(torch.where(std_t < 1e-6, 1.0, std_t))

    def segment_features(self, clips: Tensor) -> Tensor:
        """Per-segment, per-aspect features: ``[B, S, L, D]`` → ``[B, S, A, H]``."""
        return nn.functional.gelu(self.segment_preactivations(clips))

    def segment_preactivations(self, clips: Tensor) -> Tensor:
        """``segment_features`` before its activation: an affine map of the clips, so a
        convex mix of clips maps to the same mix of their pre-activations."""
        c = self.config
        expected = (c.clip_segments, c.num_layers, c.dim)
        if clips.ndim != 4 or tuple(clips.shape[1:]) != expected:
            raise ValueError(
                f"clips must be [B, {', '.join(map(str, expected))}], got {tuple(clips.shape)}"
            )
        if self.fold_standardisation:
            inverse_scale = 1.0 / self.input_scale
            offset = self.routing.weights() @ (self.input_mean * inverse_scale)  # [A, D]
            routed = self.routing(clips * inverse_scale) - offset.unsqueeze(-2)
        else:
            routed = self.routing((clips - self.input_mean) / self.input_scale)  # [B, A, S, D]
        return self.project_in(routed.transpose(-2, -3))
