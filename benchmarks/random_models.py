"""Untrained models for benchmarks and tests (no network, no training).

Randomly initialised HuBERT-style checkpoints saved like downloaded ones: tests use a tiny
one; the benchmark also builds one of MERT-v1-95M's size (HuBERT-base: 12 layers of 768,
24 kHz input) to time the real per-segment cost without its weights. And head configs that
weigh every layer alike, for projection heads that only need the right shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_ASPECTS = ("tempo", "dynamics", "articulation", "phrasing", "timbre")


def uniform_config(
    cls: type,
    num_layers: int,
    dim: int,
    aspects: tuple[str, ...] | list[str] = DEFAULT_ASPECTS,
    clip_segments: int = 6,
    **extra: Any,
) -> Any:
    """A head config (``cls``: ``ProjectionConfig`` or ``OracleConfig``) with every layer
    weighed alike and default weights of 1."""
    return cls(
        num_layers=num_layers,
        dim=dim,
        aspects=list(aspects),
        clip_segments=clip_segments,
        layer_scores=[[1.0] * num_layers] * len(aspects),
        default_weights=[1.0] * len(aspects),
        **extra,
    )


TINY = {"hidden": 32, "layers": 2, "heads": 2, "conv_dim": 16, "sample_rate": 16000}
MERT_95M = {"hidden": 768, "layers": 12, "heads": 12, "conv_dim": 512, "sample_rate": 24000}


def save_random_hubert(
    folder: Path,
    hidden: int,
    layers: int,
    heads: int,
    conv_dim: int,
    sample_rate: int,
    seed: int = 0,
) -> Path:
    """A ``save_pretrained`` folder of a random ``HubertModel`` and its feature extractor."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        conv_dim=(conv_dim,) * 7,
        num_conv_pos_embeddings=16 if hidden < 256 else 128,
        num_conv_pos_embedding_groups=2 if hidden < 256 else 16,
    )
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=sample_rate, do_normalize=True).save_pretrained(folder)
    return Path(folder)


def save_tiny_model(folder: Path, seed: int = 0) -> Path:
    """The tests' model: 2 layers of 32 at 16 kHz (``L = 3``, ``D = 32``)."""
    return save_random_hubert(folder, **TINY, seed=seed)
