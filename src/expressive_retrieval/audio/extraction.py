"""One recording → its segment embeddings and proxies, cached per track so runs resume.

A cached track is reused when its audio sha256 and the extraction settings (model weights,
segmentation, proxy version, library versions) are those of the cache entry; anything
else is measured again. One track's work holds one batch of segments of audio at a time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from expressive_retrieval.audio.decode import AudioSegments, Segmentation
from expressive_retrieval.audio.embedding import AudioEmbedder, embed_recording
from expressive_retrieval.audio.proxies import PROXY_COLUMNS, PROXY_VERSION, measure_proxies

SCHEMA_VERSION = 1
LIBRARIES = ("numpy", "soundfile", "soxr", "librosa", "pyloudnorm", "torch", "transformers")


@dataclass(frozen=True)
class TrackFeatures:
    """What one recording yields: segments file, proxies ``[n, P]``, decoded duration, and
    the sha256 of the audio file it came from."""

    segments_path: Path
    proxies: np.ndarray
    duration_s: float
    audio_sha256: str


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in LIBRARIES}


def settings_of(embedder: AudioEmbedder, segmentation: Segmentation) -> dict[str, Any]:
    """Everything that changes a track's features; the cache key is its sha256."""
    return {
        "weights_sha256": embedder.weights_sha256,
        "segmentation": segmentation.to_dict(),
        "proxy_version": PROXY_VERSION,
        "libraries": library_versions(),
    }


def extraction_record(embedder: AudioEmbedder, segmentation: Segmentation) -> dict[str, Any]:
    """The ``extraction`` raw entry: how the embeddings and proxies were made."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": embedder.describe(),
        "segmentation": segmentation.to_dict(),
        "L": embedder.num_layers,
        "D": embedder.dim,
        "dtype": "float16",
        "proxies": {"version": PROXY_VERSION, "columns": list(PROXY_COLUMNS)},
        "libraries": library_versions(),
    }


class FeatureCache:
    """``root/<track_id>/{segments.npy, proxies.npy, meta.json}``; meta is written last."""

    def __init__(self, root: str | Path, settings: dict[str, Any]) -> None:
        self.root = Path(root)
        self.key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    def _read(self, track_id: str) -> TrackFeatures | None:
        """The track's entry when it was written with these settings, else None."""
        folder = self.root / track_id
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("settings") != self.key:
            return None
        proxies = np.load(folder / "proxies.npy", allow_pickle=False)
        return TrackFeatures(
            folder / "segments.npy", proxies, float(meta["duration_s"]), meta["audio_sha256"]
        )

    def get(self, track_id: str, audio_sha256: str) -> TrackFeatures | None:
        """The track's entry when it holds this audio and these settings, else None."""
        found = self._read(track_id)
        return found if found is not None and found.audio_sha256 == audio_sha256 else None

    def entry(self, track_id: str) -> TrackFeatures:
        """The track's entry as a worker wrote it, whatever its audio.

        Raises:
            FileNotFoundError: no entry, or one made with other settings (a worker with
                other library versions or another model folder).
        """
        found = self._read(track_id)
        if found is None:
            raise FileNotFoundError(
                f"{self.root / track_id}: no features made with this run's settings (are the "
                "workers' library versions and model folder those of this process?)"
            )
        return found

    def files(self, track_id: str) -> list[str]:
        """The entry's files, meta last."""
        folder = self.root / track_id
        return [str(folder / name) for name in ("segments.npy", "proxies.npy", "meta.json")]

    def put(
        self,
        track_id: str,
        audio_sha256: str,
        segments: np.ndarray,
        proxies: np.ndarray,
        duration_s: float,
    ) -> TrackFeatures:
        """Write one track's entry under a temporary name and swap it in whole."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{track_id}.{uuid.uuid4().hex}.tmp"
        staging.mkdir()
        np.save(staging / "segments.npy", segments, allow_pickle=False)
        np.save(staging / "proxies.npy", proxies, allow_pickle=False)
        meta = {"settings": self.key, "audio_sha256": audio_sha256, "duration_s": duration_s}
        (staging / "meta.json").write_text(json.dumps(meta))
        folder = self.root / track_id
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        return TrackFeatures(folder / "segments.npy", proxies, duration_s, audio_sha256)


def extract_track(
    source: str | Path,
    embedder: AudioEmbedder,
    segmentation: Segmentation,
    batch_segments: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Embeddings ``[n, L, D]`` float16, proxies ``[n, P]`` and the decoded duration (s).

    Raises:
        AudioError: the audio is unreadable, corrupt, has NaN samples or no segment.
    """
    segments = AudioSegments(source, segmentation)
    measured: list[list[float]] = []

    def measure(batch: list[np.ndarray]) -> None:
        rows = [measure_proxies(s, segmentation.sample_rate) for s in batch]
        measured.extend([row[c] for c in PROXY_COLUMNS] for row in rows)

    embeddings = embed_recording(embedder, segments, batch_segments, measure)
    return embeddings, np.asarray(measured, dtype=np.float64), segments.duration_s
