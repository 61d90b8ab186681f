"""Hidden states per segment from a transformers model folder, and its weights' identity."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.random_models import save_tiny_model
from expressive_retrieval.audio.decode import AudioSegments, Segmentation
from expressive_retrieval.audio.embedding import (
    AudioEmbedder,
    ModelMismatchError,
    embed_recording,
    weights_sha256,
)
from tests.audio.signals import RATE, note_train


def test_every_hidden_layer_per_segment_as_float16(tiny_model: Path) -> None:
    embedder = AudioEmbedder(tiny_model, device="cpu")
    assert (embedder.sample_rate, embedder.num_layers, embedder.dim) == (RATE, 3, 32)
    rule = Segmentation(RATE, 1.0, 0.5)
    segments = AudioSegments(note_train(3.6, 120), rule, RATE)
    embedded = embed_recording(embedder, segments, batch_segments=2)
    assert embedded.shape == (4, 3, 32) and embedded.dtype == np.float16
    assert np.isfinite(embedded).all() and np.ptp(embedded[:, -1], axis=0).max() > 0
    one_by_one = embed_recording(embedder, AudioSegments(note_train(3.6, 120), rule, RATE), 1)
    np.testing.assert_allclose(one_by_one, embedded, atol=2e-3)  # batching changes nothing


def test_other_weights_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    digest, files = weights_sha256(tiny_model)
    assert list(files) == ["model.safetensors"]
    other = save_tiny_model(tmp_path / "other", seed=1)
    assert weights_sha256(other)[0] != digest
    with pytest.raises(ModelMismatchError, match="differs"):
        AudioEmbedder(other, device="cpu", expected_sha256=digest)
    copy = shutil.copytree(tiny_model, tmp_path / "copy")  # the same weights elsewhere
    assert AudioEmbedder(copy, device="cpu", expected_sha256=digest).weights_sha256 == digest
