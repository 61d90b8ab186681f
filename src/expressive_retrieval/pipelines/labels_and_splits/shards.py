"""Label candidate search as a shard task: a worker reads one split's clips from the
staging folder by path or URL, labels a range of its queries and writes the pairs and
triples as part files."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from expressive_retrieval.data.candidates import SplitClips, label_queries, split_clips
from expressive_retrieval.data.relevance import RelevanceModel
from expressive_retrieval.data.splits import SPLITS
from expressive_retrieval.scale import Shard
from expressive_retrieval.scale.files import join, load_npy, save_npy

_BUILDING = threading.Lock()  # threads of one worker build a split once, not each


@lru_cache(maxsize=len(SPLITS))
def _split(staging: str, name: str, model: str, cfg: str, seed: int) -> SplitClips:
    """One split's clips (and ``ann`` indexes), built once per process (``staging`` names
    content: its folder is keyed by every input)."""
    z, frozen, tracks = (load_npy(join(staging, f"{a}.npy")) for a in ("z", "frozen", "tracks"))
    members = np.asarray(load_npy(join(staging, f"members-{name}.npy")))
    relevance = RelevanceModel.from_dict(json.loads(model))
    return split_clips(members, z, frozen, tracks, relevance, json.loads(cfg), seed)


def forget_splits() -> None:
    """Drop the splits this process built (a threaded cluster runs in the Kedro process)."""
    _split.cache_clear()


def label_shard(shard: Shard, staging: str, context: Mapping[str, Any]) -> list[str]:
    """Pairs and triples of the shard's queries (``payload``: ``[split, start, stop]``,
    positions in the split), saved as ``staging/part-<index>-<column>.npy``.

    ``context``: ``model`` (the relevance model, JSON), ``cfg`` (the ``pairs`` parameters,
    JSON), ``seed`` and ``pair_block``. The staging folder holds ``z.npy``, ``frozen.npy``,
    ``tracks.npy`` (a code per clip) and ``members-<split>.npy`` (the split's clip rows).
    """
    name, start, stop = shard.payload
    model, cfg, seed = context["model"], context["cfg"], context["seed"]
    with _BUILDING:
        split = _split(staging, name, model, cfg, seed)
    pairs, triples = label_queries(
        split,
        np.arange(start, stop),
        RelevanceModel.from_dict(json.loads(model)),
        json.loads(cfg),
        seed,
        context["pair_block"],
    )
    written = []
    for column, array in (pairs | {"triples": triples}).items():
        written.append(join(staging, f"part-{shard.index:05d}-{column}.npy"))
        save_npy(written[-1], array)
    return written


def read_parts(files: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A shard's pair columns and triples, from the files ``label_shard`` wrote (any order)."""
    arrays = {url.rsplit("-", 1)[-1].removesuffix(".npy"): load_npy(url) for url in files}
    triples = arrays.pop("triples")
    return arrays, triples
