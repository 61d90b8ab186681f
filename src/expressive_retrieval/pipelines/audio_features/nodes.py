"""Nodes of ``audio_features``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.audio.decode import AudioError, Segmentation
from expressive_retrieval.audio.embedding import AudioEmbedder
from expressive_retrieval.audio.extraction import (
    FeatureCache,
    TrackFeatures,
    extraction_record,
    settings_of,
)
from expressive_retrieval.audio.proxies import PROXY_COLUMNS
from expressive_retrieval.audio.recordings import REQUIRED_COLUMNS, check_recordings
from expressive_retrieval.audio.shards import embedder as shard_embedder
from expressive_retrieval.audio.shards import extract_shard
from expressive_retrieval.data.contract import InputContractError, Violation
from expressive_retrieval.data.contract.discovery import DISCOVERY_SCHEMA_VERSION
from expressive_retrieval.scale import (
    ScaleSettings,
    ShardsFailed,
    map_shards,
    plan_shards,
    staging_folder,
)
from expressive_retrieval.scale.files import stamp

logger = logging.getLogger(__name__)


def _features(
    paths: dict[str, Path],
    model: AudioEmbedder,
    segmentation: Segmentation,
    params: dict[str, Any],
    settings: ScaleSettings,
) -> dict[str, TrackFeatures]:
    """Every track's features, per shard of tracks; every bad recording at once."""
    cache = FeatureCache(params["files"]["cache"], settings_of(model, segmentation))
    context = {
        "model": params["model"],  # as given: recorded in extraction, and the process's key
        "device": params["device"],
        "trust_remote_code": params["trust_remote_code"],
        "weights_sha256": model.weights_sha256,
        "segmentation": asdict(segmentation),
        "batch_segments": params["batch_segments"],
        "cache": str(cache.root.resolve()),
        "progress": params["progress"],
    }
    names = list(paths)
    shards = plan_shards(
        cache.key,
        names,
        settings.shard_tracks,
        lambda start, stop: [[t, str(paths[t].resolve())] for t in names[start:stop]],
        {t: stamp(str(p)) for t, p in paths.items()},
    )
    staging = staging_folder(settings.staging, "audio_features", cache.key)
    try:
        map_shards("audio_features", extract_shard, shards, staging, context, settings)
    except ShardsFailed as error:
        if any(f.kind != AudioError.__name__ for f in error.failures):
            raise
        raise InputContractError(
            [
                Violation(str(paths[f.item]), "audio.decode", (f.item,), f"{f.message} ({f.label})")
                for f in error.failures
            ]
        ) from error
    return {track_id: cache.entry(track_id) for track_id in names}


def extract_audio_features(
    recordings: pd.DataFrame, params: dict[str, Any], scale: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Callable[[], np.ndarray]], pd.DataFrame, dict, dict]:
    """Decode, embed and measure every recording: the four raw entries and ``extraction``.

    Args:
        recordings: ``track_id``, ``artist_id``, ``work_id``, ``path`` (relative to the audio
            folder); other columns are carried into ``tracks``.
        params: ``params:audio_features``.
        scale: ``params:scale``: where the shards of tracks are embedded (docs/scale.md).

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
    embedder = shard_embedder(params["model"], params["device"], params["trust_remote_code"])
    segmentation = Segmentation(
        embedder.sample_rate, params["segment_seconds"], params["min_last_segment_seconds"]
    )
    features = _features(paths, embedder, segmentation, params, ScaleSettings.from_params(scale))
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
