"""Embedding and measuring recordings as a shard task (``audio_features`` on Dask).

A worker builds the model once from its folder (checking its weights' sha256), then
extracts each track of the shard into the shared per-track ``FeatureCache``; a track
already there for the same audio and settings is reused, so a failed shard re-runs only
its unfinished tracks.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from tqdm.auto import tqdm

from expressive_retrieval.audio.decode import AudioError, Segmentation
from expressive_retrieval.audio.embedding import AudioEmbedder, ModelMismatchError
from expressive_retrieval.audio.extraction import FeatureCache, extract_track, settings_of
from expressive_retrieval.scale import ItemFailed, Shard, naming
from expressive_retrieval.vectors.integrity import sha256_file


@lru_cache(maxsize=1)
def embedder(model: str, device: str, trust_remote_code: bool) -> AudioEmbedder:
    """The model of this process, loaded once for the node and every shard it runs."""
    return AudioEmbedder(model, device, trust_remote_code)


def extract_shard(shard: Shard, staging: str, context: Mapping[str, Any]) -> list[str]:
    """Features of the shard's tracks (``payload``: ``[track_id, audio path]`` rows) in the
    feature cache; returns the cache files. Every bad recording of the shard is reported.

    ``context``: ``model``, ``device``, ``trust_remote_code``, ``weights_sha256``,
    ``segmentation`` (``Segmentation`` fields), ``batch_segments``, ``cache`` (folder),
    ``progress``.
    """
    model = embedder(context["model"], context["device"], context["trust_remote_code"])
    if model.weights_sha256 != context["weights_sha256"]:
        raise ModelMismatchError(
            f"{context['model']}: weights sha256 {model.weights_sha256} on this worker, "
            f"{context['weights_sha256']} where the run started; give workers the same model"
        )
    segmentation = Segmentation(**context["segmentation"])
    cache = FeatureCache(context["cache"], settings_of(model, segmentation))
    written, failures = [], []
    rows = tqdm(shard.payload, desc=shard.label, disable=not context["progress"], leave=False)
    for track_id, path in rows:
        with naming(track_id):
            digest = sha256_file(path)
            if cache.get(track_id, digest) is None:
                try:
                    found = extract_track(path, model, segmentation, context["batch_segments"])
                except AudioError as error:
                    failures.append((track_id, type(error).__name__, str(error)))
                    continue
                cache.put(track_id, digest, *found)
        written += cache.files(track_id)
    if failures:
        raise ItemFailed(tuple(failures))
    return written
