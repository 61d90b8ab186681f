"""Nodes of ``audio_features``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from expressive_retrieval.audio.decode import AudioError, Segmentation
from expressive_retrieval.audio.embedding import AudioEmbedder
from expressive_retrieval.audio.extraction import (
    FeatureCache,
    TrackFeatures,
    extract_track,
    extraction_record,
    settings_of,
)
from expressive_retrieval.audio.proxies import PROXY_COLUMNS
from expressive_retrieval.audio.recordings import REQUIRED_COLUMNS, check_recordings
from expressive_retrieval.data.contract import InputContractError, Violation
from expressive_retrieval.data.contract.discovery import DISCOVERY_SCHEMA_VERSION
from expressive_retrieval.vectors.integrity import sha256_file

logger = logging.getLogger(__name__)


def _features(
    paths: dict[str, Path],
    embedder: AudioEmbedder,
    segmentation: Segmentation,
    params: dict[str, Any],
) -> dict[str, TrackFeatures]:
    """Every track's features, from the cache or measured now; all failures at once."""
    cache = FeatureCache(params["files"]["cache"], settings_of(embedder, segmentation))
    features, failures, reused = {}, [], 0
    for track_id, path in tqdm(
        paths.items(), desc="audio_features", disable=not params["progress"]
    ):
        digest = sha256_file(path)
        cached = cache.get(track_id, digest)
        if cached is not None:
            features[track_id], reused = cached, reused + 1
            continue
        try:
            segments, proxies, duration = extract_track(
                path, embedder, segmentation, params["batch_segments"]
            )
        except AudioError as error:
            failures.append(Violation(str(path), "audio.decode", (track_id,), str(error)))
            continue
        features[track_id] = cache.put(track_id, digest, segments, proxies, duration)
    logger.info("audio_features: %d tracks measured, %d reused", len(features) - reused, reused)
    if failures:
        raise InputContractError(failures)
    return features


def extract_audio_features(
    recordings: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Callable[[], np.ndarray]], pd.DataFrame, dict, dict]:
    """Decode, embed and measure every recording: the four raw entries and ``extraction``.

    Args:
        recordings: ``track_id``, ``artist_id``, ``work_id``, ``path`` (relative to the audio
            folder); other columns are carried into ``tracks``.
        params: ``params:audio_features``.

    Returns:
        ``tracks`` (with the measured ``duration_s`` and ``audio_sha256``), ``segments``
        (loaded one track at a time from the cache as the dataset writes them),
        ``proxy_targets``, ``discovery`` (no aspects: probes supply the evidence) and
        ``extraction``.

    Raises:
        InputContractError: a bad table or bad audio, naming the track and file; nothing
            is written then (finished tracks stay in the cache for the next run).
    """
    files = params["files"]
    if not params.get("model"):
        raise ValueError("audio_features.model is not set: point it at a model folder")
    paths = check_recordings(
        recordings, files["recordings"], files["folder"], params["min_last_segment_seconds"]
    )
    embedder = AudioEmbedder(params["model"], params["device"], params["trust_remote_code"])
    segmentation = Segmentation(
        embedder.sample_rate, params["segment_seconds"], params["min_last_segment_seconds"]
    )
    features = _features(paths, embedder, segmentation, params)
    tracks = recordings.copy()
    tracks["track_id"] = tracks["track_id"].astype(str)
    tracks["duration_s"] = [features[t].duration_s for t in tracks["track_id"]]
    tracks["audio_sha256"] = [features[t].audio_sha256 for t in tracks["track_id"]]
    first = [*REQUIRED_COLUMNS[:3], "duration_s"]
    tracks = tracks[first + [c for c in tracks.columns if c not in first]]
    proxy_targets = pd.concat(
        [
            pd.DataFrame(
                {
                    "track_id": track_id,
                    "segment_idx": np.arange(len(f.proxies), dtype=np.int64),
                    **dict(zip(PROXY_COLUMNS, f.proxies.T, strict=True)),
                }
            )
            for track_id, f in features.items()
        ],
        ignore_index=True,
    )
    discovery = {
        "schema_version": DISCOVERY_SCHEMA_VERSION,
        "embedding": {
            "model": embedder.name,
            "num_layers": embedder.num_layers,
            "dim": embedder.dim,
        },
        "aspects": {},
    }
    segments = {
        track_id: partial(np.load, f.segments_path, allow_pickle=False)
        for track_id, f in features.items()
    }
    return tracks, segments, proxy_targets, discovery, extraction_record(embedder, segmentation)
