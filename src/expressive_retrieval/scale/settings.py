"""The ``scale`` parameters: where corpus-parallel steps run."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

BACKENDS = ("auto", "inprocess", "dask")


@dataclass(frozen=True)
class ScaleSettings:
    """How a corpus-parallel step runs (``conf/base/parameters_scale.yml``).

    ``backend``: ``inprocess`` runs the shards one after another in the calling process;
    ``dask`` on a cluster (``scheduler_address``, else an in-process ``LocalCluster`` of
    ``workers`` with ``threads_per_worker``, worker processes when ``processes``); ``auto`` on Dask when ``scheduler_address`` is set or the
    step covers at least ``dask_from_tracks`` tracks, in process otherwise.
    """

    backend: str = "auto"
    workers: int = 2
    threads_per_worker: int = 1
    processes: bool = False
    scheduler_address: str | None = None
    shard_tracks: int = 64
    dask_from_tracks: int = 5000
    staging: str = "data/02_intermediate/scale"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"scale.backend must be one of {BACKENDS}, got {self.backend!r}")
        if min(self.workers, self.threads_per_worker, self.shard_tracks) < 1:
            raise ValueError("scale.workers, threads_per_worker and shard_tracks must be >= 1")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ScaleSettings:
        """Settings from ``params:scale``; an unknown key is refused by name."""
        unknown = sorted(set(params) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"scale: unknown keys {unknown} (conf/base/parameters_scale.yml)")
        return cls(**params)

    def uses_dask(self, num_tracks: int) -> bool:
        """Whether a step over ``num_tracks`` tracks runs on Dask."""
        if self.backend != "auto":
            return self.backend == "dask"
        return self.scheduler_address is not None or num_tracks >= self.dask_from_tracks
