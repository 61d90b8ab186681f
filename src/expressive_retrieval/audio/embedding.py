"""Hidden states of a Hugging Face audio model (MERT, HuBERT, wav2vec 2.0) per segment.

A segment's embedding is ``[L, D]``: every hidden state (``output_hidden_states=True``:
the feature projection plus each transformer layer, so ``L = num_hidden_layers + 1``)
averaged over time frames, stored as float16. torch and transformers are imported when an
embedder is made, so that the torch-free serving install can import this package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from expressive_retrieval.audio.decode import AudioSegments
from expressive_retrieval.audio.optional import require
from expressive_retrieval.vectors.integrity import IntegrityError, sha256_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")
POOLING = "mean over time frames of every hidden state (output_hidden_states=True)"


class ModelMismatchError(IntegrityError):
    """The model's weights are not those the corpus was embedded with."""


def weights_sha256(folder: str | Path) -> tuple[str, dict[str, str]]:
    """One sha256 over a model folder's weight files (``name sha256`` lines), and each file's."""
    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(Path(folder).rglob("*"))
        if path.is_file() and path.name.endswith(WEIGHT_SUFFIXES)
    }
    if not files:
        raise FileNotFoundError(f"{folder}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    listing = "".join(f"{name} {digest}\n" for name, digest in files.items())
    return hashlib.sha256(listing.encode()).hexdigest(), files


def model_folder(model: str | Path) -> Path:
    """A local model folder as is; otherwise a hub id, fetched (or found in the hub cache)."""
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model)))
    except Exception as error:
        raise FileNotFoundError(
            f"model {model!r} is neither a local folder nor a reachable hub id ({error}); "
            "download it where a network exists and point audio_features.model at the folder"
        ) from error


class AudioEmbedder:
    """A frozen audio model that turns mono segments into ``[L, D]`` float16 embeddings.

    Args:
        model: a local folder (``save_pretrained`` layout, with ``preprocessor_config.json``)
            or a hub id where a network exists.
        device: ``"auto"`` (cuda when available, else cpu), ``"cpu"``, ``"cuda"``, ...
        trust_remote_code: let transformers run the model folder's own Python code. MERT
            checkpoints need it (their model class is not part of transformers); keep it
            false for any folder you have not read.
        expected_sha256: refuse the model unless its weights hash to this (``extraction``).

    Raises:
        ModelMismatchError: the weights differ from ``expected_sha256``.
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        trust_remote_code: bool = False,
        expected_sha256: str | None = None,
    ) -> None:
        *_, torch, transformers = require(
            "soundfile", "soxr", "torch", "transformers", purpose="embedding audio"
        )
        folder = model_folder(model)
        self.name = str(model)
        self.weights_sha256, self.weight_files = weights_sha256(folder)
        if expected_sha256 is not None and self.weights_sha256 != expected_sha256:
            raise ModelMismatchError(
                f"{folder}: weights sha256 {self.weights_sha256} differs from the "
                f"{expected_sha256} the corpus was embedded with; use that model"
            )
        self._torch = torch
        self.device = (
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(
            folder, trust_remote_code=trust_remote_code
        )
        self.model = transformers.AutoModel.from_pretrained(
            folder, trust_remote_code=trust_remote_code
        )
        self.model.eval().to(self.device)
        self.trust_remote_code = trust_remote_code
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.num_layers = int(self.model.config.num_hidden_layers) + 1
        self.dim = int(self.model.config.hidden_size)

    def embed(self, segments: Sequence[np.ndarray]) -> np.ndarray:
        """``[B, L, D]`` float16 for B mono float32 segments of one length at ``sample_rate``."""
        if len({len(s) for s in segments}) > 1:
            raise ValueError("one batch holds segments of one length (no padding)")
        inputs = self.feature_extractor(
            [np.asarray(s, dtype=np.float32) for s in segments],
            sampling_rate=self.sample_rate,
            return_tensors="pt",
        )
        with self._torch.inference_mode():
            output = self.model(inputs["input_values"].to(self.device), output_hidden_states=True)
            pooled = self._torch.stack(output.hidden_states, dim=1).mean(dim=2)
        return pooled.float().cpu().numpy().astype(np.float16)

    def describe(self) -> dict[str, Any]:
        """The model part of ``extraction``."""
        return {
            "name_or_path": self.name,
            "weights_sha256": self.weights_sha256,
            "weight_files": self.weight_files,
            "class": type(self.model).__name__,
            "trust_remote_code": self.trust_remote_code,
            "feature_extractor": json.loads(self.feature_extractor.to_json_string()),
            "pooling": POOLING,
        }


def _batches(segments: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive segments, ``size`` at a time; a shorter last segment goes alone."""
    batch: list[np.ndarray] = []
    for segment in segments:
        if batch and (len(batch) == size or len(segment) != len(batch[0])):
            yield batch
            batch = []
        batch.append(segment)
    if batch:
        yield batch


def embed_recording(
    embedder: AudioEmbedder,
    segments: AudioSegments,
    batch_segments: int,
    each_batch: Callable[[list[np.ndarray]], None] | None = None,
) -> np.ndarray:
    """``[n, L, D]`` float16 of a recording's segments, ``batch_segments`` per model call.

    ``each_batch`` sees every batch of audio segments too (the pipeline measures proxies).
    """
    embedded = []
    for batch in _batches(segments, batch_segments):
        embedded.append(embedder.embed(batch))
        if each_batch is not None:
            each_batch(batch)
    return np.concatenate(embedded)
