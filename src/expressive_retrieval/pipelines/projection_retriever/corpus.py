"""Corpus projection as a shard task: a worker reads segment files and the head's weights
by path or URL and writes the shard's vectors as one part file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from safetensors.torch import load

from expressive_retrieval.models import ProjectionConfig, ProjectionHead
from expressive_retrieval.scale import Shard, naming
from expressive_retrieval.scale.files import join, load_npy, save_npy


@lru_cache(maxsize=2)
def _head(weights: str, config: str) -> ProjectionHead:
    """The head, loaded once per process (``weights`` names content: staging is keyed by it)."""
    import fsspec

    with fsspec.open(weights, "rb") as handle:
        state = load(handle.read())
    return ProjectionHead.from_state(ProjectionConfig.from_dict(json.loads(config)), state).eval()


def project_shard(shard: Shard, staging: str, context: Mapping[str, Any]) -> list[str]:
    """Vectors of the shard's clips (``payload``: ``[track_id, start, stop]`` rows), in
    chunks of ``chunk_size`` clips, saved as ``staging/part-<index>.npy``.

    ``context``: ``segments`` (folder or URL of ``<track_id>.npy``), ``weights`` (the
    head's safetensors), ``config`` (its config, JSON) and ``chunk_size``.
    """
    head = _head(context["weights"], context["config"])
    chunk, blocks = context["chunk_size"], []
    opened: tuple[str, np.ndarray] | None = None
    for first in range(0, len(shard.payload), chunk):
        clips = []
        for track_id, start, stop in shard.payload[first : first + chunk]:
            with naming(track_id):
                if opened is None or opened[0] != track_id:
                    opened = track_id, load_npy(join(context["segments"], f"{track_id}.npy"))
                clip = np.array(opened[1][start:stop])
                if len(clip) != stop - start:
                    raise ValueError(
                        f"segments {start}:{stop} asked, the file holds {len(opened[1])}"
                    )
                if clips and clip.shape != clips[0].shape:
                    raise ValueError(f"clip of shape {clip.shape}, not {clips[0].shape}")
                clips.append(clip)
        blocks.append(head.embed_numpy(np.stack(clips)))
    part = join(staging, f"part-{shard.index:05d}.npy")
    save_npy(part, np.concatenate(blocks))
    return [part]
