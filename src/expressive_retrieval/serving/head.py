"""The projection head's forward pass in numpy: what serving runs, without torch.

The same computation as ``models.projection.ProjectionHead.embed`` (the trainable torch
module; a parity test holds the two within 1e-5), on the weights of its safetensors file:
input standardisation folded into softmax layer routing, a per-aspect per-segment linear
map with exact (erf) GELU, cross-segment mean/std/slope, a per-aspect MLP and L2
normalisation per aspect. Arrays stay aspect-major (``[A, ...]``) so every per-aspect map
is one batched matmul.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

_NORM_EPS = 1e-12
_STD_EPS = 1e-5  # as models.oracle.segment_statistics
# Abramowitz & Stegun 7.1.26: |erf error| <= 1.5e-7, below float32 resolution of GELU.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


# float16 bit patterns → float32 values: a table lookup converts twice as fast as astype.
_HALF_TO_SINGLE = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
_HALF_TO_SINGLE.setflags(write=False)


def as_float32(array: np.ndarray) -> np.ndarray:
    """``array`` as float32 (float16 through ``_HALF_TO_SINGLE``, exactly as ``astype``)."""
    if array.dtype == np.float16:
        return _HALF_TO_SINGLE.take(array.view(np.uint16))
    return np.asarray(array, dtype=np.float32)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (|error| <= 1.5e-7; numpy has none built in)."""
    x = np.asarray(x, dtype=np.float64)
    t = 1.0 / (1.0 + _ERF_P * np.abs(x))
    poly = t * (_ERF_A[0] + t * (_ERF_A[1] + t * (_ERF_A[2] + t * (_ERF_A[3] + t * _ERF_A[4]))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x · Φ(x)`` (torch's default, not the tanh approximation), float32."""
    return (0.5 * x * (1.0 + erf(x * np.float32(1 / np.sqrt(2))))).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _segment_statistics(x: np.ndarray) -> np.ndarray:
    """Mean, std and least-squares slope over segments: ``[..., S, H]`` → ``[..., 3H]``.

    In float64 (the squares of large activations overflow float32 long before the
    activations themselves do).
    """
    x = x.astype(np.float64)
    segments = x.shape[-2]
    t = np.arange(segments, dtype=np.float64) - (segments - 1) / 2
    mean = x.mean(axis=-2)
    centred = x - mean[..., None, :]
    std = np.sqrt((centred**2).mean(axis=-2) + _STD_EPS)
    slope = np.einsum("s,...sh->...h", t, centred) / max(float((t**2).sum()), 1e-12)
    return np.concatenate([mean, std, slope], axis=-1)


def _normalise(x: np.ndarray) -> np.ndarray:
    """Unit rows, in float64 (squared norms of large float32 rows overflow)."""
    x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, _NORM_EPS)


class NumpyProjectionHead:
    """Embeds clips ``[B, S, L, D]`` into flat retrieval vectors ``[B, A·sub_dim]``.

    Args:
        config: the head's ``config.json`` (``num_layers``, ``dim``, ``aspects``,
            ``clip_segments``, ``hidden``, ``sub_dim``).
        state: its safetensors tensors as numpy arrays (``safetensors.numpy.load_file``).

    Raises:
        ValueError: a tensor is missing, unexpected or of the wrong shape.
    """

    def __init__(self, config: Mapping[str, Any], state: Mapping[str, np.ndarray]) -> None:
        num_aspects, layers, dim = len(config["aspects"]), config["num_layers"], config["dim"]
        hidden, sub_dim = config["hidden"], config["sub_dim"]
        expected = {
            "routing.logits": (num_aspects, layers),
            "input_mean": (layers, dim),
            "input_scale": (layers, dim),
            "project_in.weight": (num_aspects, dim, hidden),
            "project_in.bias": (num_aspects, hidden),
            "pool_hidden.weight": (num_aspects, 3 * hidden, hidden),
            "pool_hidden.bias": (num_aspects, hidden),
            "pool_out.weight": (num_aspects, hidden, sub_dim),
            "pool_out.bias": (num_aspects, sub_dim),
        }
        if set(state) != set(expected):
            raise ValueError(
                f"projection weights: expected tensors {sorted(expected)}, got {sorted(state)}"
            )
        for name, shape in expected.items():
            if state[name].shape != shape:
                raise ValueError(f"projection weights: {name} is {state[name].shape}, not {shape}")
        w = {name: np.asarray(t, dtype=np.float32) for name, t in state.items()}
        self.clip_segments, self.num_layers, self.dim = config["clip_segments"], layers, dim
        self.num_aspects, self.vector_dim = num_aspects, num_aspects * sub_dim
        # route((x − m) / σ) = route(x / σ) − route(m / σ): standardisation folds into routing.
        self._routing = _softmax(w["routing.logits"].astype(np.float64)).astype(np.float32)
        self._inverse_scale = (1.0 / w["input_scale"]).astype(np.float32)
        self._offset = self._routing @ (w["input_mean"] * self._inverse_scale)  # [A, D]
        self._layers = [
            (w[f"{name}.weight"], w[f"{name}.bias"][:, None, :])
            for name in ("project_in", "pool_hidden", "pool_out")
        ]
        shared = [self._routing, self._inverse_scale, self._offset]
        for array in shared + [a for layer in self._layers for a in layer]:
            array.setflags(write=False)  # shared by concurrent queries: never written

    def embed(self, clips: np.ndarray) -> np.ndarray:
        """Float32 ``[B, A·sub_dim]`` vectors (unit sub-vectors) of clips ``[B, S, L, D]``."""
        clips = as_float32(np.asarray(clips))
        expected = (self.clip_segments, self.num_layers, self.dim)
        if clips.ndim != 4 or clips.shape[1:] != expected:
            raise ValueError(
                f"clips must be [B, {', '.join(map(str, expected))}], got {clips.shape}"
            )
        batch, segments = clips.shape[:2]
        (w_in, b_in), (w_hidden, b_hidden), (w_out, b_out) = self._layers
        routed = np.matmul(self._routing, clips * self._inverse_scale)  # [B, S, A, D]
        routed = routed.transpose(2, 0, 1, 3).reshape(self.num_aspects, batch * segments, -1)
        routed -= self._offset[:, None, :]
        hidden = gelu(np.matmul(routed, w_in) + b_in)  # [A, B·S, H]
        pooled = _segment_statistics(hidden.reshape(self.num_aspects, batch, segments, -1))
        pooled = pooled.astype(np.float32)  # beyond float32 range: inf, refused by the caller
        out = np.matmul(gelu(np.matmul(pooled, w_hidden) + b_hidden), w_out) + b_out  # [A, B, k]
        return _normalise(out).transpose(1, 0, 2).reshape(batch, -1).astype(np.float32)
