"""Randomly initialised HuBERT-style checkpoints saved like downloaded ones (no network).

Tests use a tiny one; the benchmark also builds one of MERT-v1-95M's size (HuBERT-base:
12 layers of 768, 24 kHz input) to time the real per-segment cost without its weights.
"""

from __future__ import annotations

from pathlib import Path

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
