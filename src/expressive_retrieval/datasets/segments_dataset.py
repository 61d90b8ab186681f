"""The ``segments`` catalog entry: a folder of ``<track_id>.npy`` arrays."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset
from kedro_datasets._typing import TablePreview

from expressive_retrieval.data.segments import SegmentStore, npy_header

SegmentArrays = Mapping[str, np.ndarray | Callable[[], np.ndarray]]


class SegmentsDataset(AbstractDataset[SegmentArrays, SegmentStore]):
    """Loads a lazy, memory-mapped :class:`SegmentStore`; saves a mapping of arrays.

    Saving accepts arrays or zero-argument callables returning arrays, so a producer can
    stream a corpus larger than memory one track at a time. The folder is written under a
    temporary name and swapped in whole: a failed save never leaves a mixed folder.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def load(self) -> SegmentStore:
        if not self._path.is_dir():
            raise FileNotFoundError(
                f"segments: folder {self._path} does not exist; it must hold one "
                "<track_id>.npy per track (see docs/input_contract.md)"
            )
        return SegmentStore(self._path)

    def preview(self, nrows: int = 10) -> TablePreview:
        """Shape and dtype of the first ``nrows`` tracks' arrays (headers only), for kedro-viz."""
        store = SegmentStore(self._path)
        rows = []
        for track_id in store.track_ids()[:nrows]:
            shape, dtype = npy_header(store.path(track_id))
            rows.append([track_id, *shape, str(dtype)])
        columns = ["track_id", "num_segments", "L", "D", "dtype"]
        return TablePreview({"index": list(range(len(rows))), "columns": columns, "data": rows})

    def save(self, data: SegmentArrays) -> None:
        staging = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex}.tmp")
        staging.mkdir(parents=True)
        try:
            for track_id, array in data.items():
                path = SegmentStore(staging).path(track_id)
                np.save(path, array() if callable(array) else array, allow_pickle=False)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        retired = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex}.old")
        if self._path.exists():
            self._path.rename(retired)
        staging.rename(self._path)
        shutil.rmtree(retired, ignore_errors=True)

    def _exists(self) -> bool:
        return self._path.is_dir()
