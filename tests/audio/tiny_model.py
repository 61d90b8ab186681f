"""A tiny randomly initialised HuBERT model saved like a downloaded checkpoint (no network)."""

from __future__ import annotations

from pathlib import Path

from tests.audio.signals import RATE


def save_tiny_model(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A ``save_pretrained`` folder of a small random ``HubertModel`` at 16 kHz."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=True).save_pretrained(folder)
    return folder
