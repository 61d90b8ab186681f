"""Corpus-parallel steps: map a task over shards of tracks, in process or on Dask.

A step splits its corpus into shards (``plan_shards``), and ``map_shards`` runs one task
per shard on the executor that ``ScaleSettings`` chooses: the calling process, an
in-process ``LocalCluster`` or any Dask cluster (``scheduler_address``). A task reads its
inputs by path or fsspec URL and writes its outputs as files in the step's staging
folder; each finished shard leaves a manifest with their sha256, so a re-run skips it.
"""

from expressive_retrieval.scale.runner import ShardResult, map_shards, staging_folder
from expressive_retrieval.scale.settings import ScaleSettings
from expressive_retrieval.scale.shards import ItemFailed, Shard, ShardsFailed, naming, plan_shards

__all__ = [
    "ItemFailed",
    "ScaleSettings",
    "Shard",
    "ShardResult",
    "ShardsFailed",
    "map_shards",
    "naming",
    "plan_shards",
    "staging_folder",
]
