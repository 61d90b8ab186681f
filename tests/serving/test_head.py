"""The numpy head computes what the torch ``ProjectionHead`` computes, without torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from expressive_retrieval.models import ProjectionConfig, ProjectionHead
from expressive_retrieval.models.serialization import state_dict_for_safetensors
from expressive_retrieval.serving.head import NumpyProjectionHead, as_float32, erf, gelu


def test_float16_converts_exactly_as_astype_for_every_bit_pattern() -> None:
    halves = np.arange(2**16, dtype=np.uint16).view(np.float16).reshape(256, 256)
    strided = halves[::2, 1::3]  # as a memmap slice
    ours, theirs = as_float32(strided), strided.astype(np.float32)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))  # NaNs too


def test_erf_and_gelu_match_the_exact_functions() -> None:
    x = np.linspace(-8, 8, 20001)
    assert np.abs(erf(x) - np.array([math.erf(v) for v in x])).max() < 2e-7
    # Against float64 GELU (torch's float32 GELU itself is off by up to 1e-6 near x = -3.5).
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float32)])
    np.testing.assert_allclose(gelu(x.astype(np.float32)), exact, rtol=1e-6, atol=3e-7)


@pytest.mark.parametrize(("layers", "dim", "segments"), [(5, 32, 4), (13, 768, 6)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_numpy_head_matches_the_torch_head(layers: int, dim: int, segments: int, dtype) -> None:
    rng = np.random.default_rng(layers)
    config = ProjectionConfig(
        num_layers=layers,
        dim=dim,
        aspects=["tempo", "dynamics", "timbre"],
        clip_segments=segments,
        layer_scores=rng.random((3, layers)).tolist(),
        default_weights=[1.0, 1.0, 1.0],
    )
    head = ProjectionHead(config, seed=1).eval()
    with torch.no_grad():
        head.input_mean.copy_(torch.from_numpy(rng.normal(1.0, 0.5, (layers, dim))))
        head.input_scale.copy_(torch.from_numpy(rng.uniform(0.3, 3.0, (layers, dim))))
        head.routing.logits.copy_(torch.from_numpy(rng.normal(0, 2, (3, layers))))
    clips = (1.0 + rng.standard_normal((7, segments, layers, dim))).astype(dtype)
    state = {name: t.numpy() for name, t in state_dict_for_safetensors(head).items()}
    ours = NumpyProjectionHead(config.to_dict(), state).embed(clips)
    assert ours.dtype == np.float32 and ours.shape == (7, config.vector_dim)
    np.testing.assert_allclose(ours, head.embed_numpy(clips), atol=1e-5)


def test_numpy_head_refuses_wrong_weights_and_shapes() -> None:
    config = ProjectionConfig(
        num_layers=2, dim=4, aspects=["a"], clip_segments=3, layer_scores=[[1, 1]],
        default_weights=[1.0],
    )  # fmt: skip
    state = {n: t.numpy() for n, t in state_dict_for_safetensors(ProjectionHead(config)).items()}
    head = NumpyProjectionHead(config.to_dict(), state)
    with pytest.raises(ValueError, match=r"clips must be \[B, 3, 2, 4\]"):
        head.embed(np.zeros((1, 2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="expected tensors"):
        NumpyProjectionHead(config.to_dict(), {k: v for k, v in state.items() if k != "input_mean"})
    state["pool_out.bias"] = np.zeros((1, 99), np.float32)
    with pytest.raises(ValueError, match=r"pool_out\.bias"):
        NumpyProjectionHead(config.to_dict(), state)
