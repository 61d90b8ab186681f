"""Audio queries embedded exactly as ``audio_features`` embedded the bundle's corpus.

Needs the serving extra ``expressive-retrieval[audio]`` (torch, transformers, soundfile,
soxr), imported only when audio is embedded, so the base serving install stays torch-free.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from expressive_retrieval.audio.decode import AudioError, AudioSegments, Segmentation
from expressive_retrieval.audio.embedding import AudioEmbedder, embed_recording


class AudioQueries:
    """Decodes, segments and embeds query audio with a bundle's ``extraction`` record.

    The model is loaded once per location and refused unless its weights' sha256 is the
    recorded one (``ModelMismatchError``).
    """

    def __init__(self, extraction: dict[str, Any]) -> None:
        self.extraction = extraction
        rule = extraction["segmentation"]
        self.segmentation = Segmentation(
            int(rule["sample_rate"]),
            float(rule["segment_seconds"]),
            float(rule["min_last_segment_seconds"]),
        )
        self._embedders: dict[tuple[str, str], AudioEmbedder] = {}
        self._lock = threading.Lock()

    def embedder(self, model: str | Path | None, device: str) -> AudioEmbedder:
        recorded = self.extraction["model"]
        location = str(model if model is not None else recorded["name_or_path"])
        with self._lock:
            if (location, device) not in self._embedders:
                self._embedders[location, device] = AudioEmbedder(
                    location,
                    device,
                    bool(recorded["trust_remote_code"]),
                    expected_sha256=recorded["weights_sha256"],
                )
            return self._embedders[location, device]

    def embed(
        self,
        audio: str | Path | np.ndarray,
        sample_rate: int | None,
        model: str | Path | None,
        device: str,
        batch_segments: int,
    ) -> np.ndarray:
        """``[n_seg, L, D]`` float16 segments of ``audio``.

        Raises:
            AudioError: unreadable, corrupt, NaN or too short audio.
            ModelMismatchError: the model's weights are not the recorded ones.
        """
        embedder = self.embedder(model, device)
        if embedder.sample_rate != self.segmentation.sample_rate:
            raise AudioError(
                f"the model expects {embedder.sample_rate} Hz, the corpus was embedded at "
                f"{self.segmentation.sample_rate} Hz"
            )
        segments = AudioSegments(audio, self.segmentation, sample_rate)
        return embed_recording(embedder, segments, batch_segments)
