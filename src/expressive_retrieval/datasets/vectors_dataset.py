"""Retrieval vectors as ``.npy`` with a sha256 sidecar, written block by block."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from kedro_datasets._typing import TablePreview

from expressive_retrieval.datasets._local_versioned import LocalVersionedDataset
from expressive_retrieval.vectors.integrity import verify_file, write_sidecar


@dataclass(frozen=True)
class VectorBlocks:
    """A lazily produced ``[num_rows, dim]`` float32 matrix: ``blocks()`` yields row blocks.

    Nodes return this instead of an array so a corpus larger than memory is computed
    while the dataset writes it, one block at a time.
    """

    num_rows: int
    dim: int
    blocks: Callable[[], Iterator[np.ndarray]]


class VectorsDataset(LocalVersionedDataset[np.ndarray | VectorBlocks, np.ndarray]):
    """Saves an array or ``VectorBlocks``; loads a read-only memory map after a checksum."""

    def load(self) -> np.ndarray:
        path = Path(self._get_load_path())
        verify_file(path)
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first ``nrows`` vectors, for kedro-viz (reads those rows only, unverified)."""
        vectors = np.load(Path(self._get_load_path()), mmap_mode="r", allow_pickle=False)
        rows = np.asarray(vectors[:nrows], dtype=np.float64).round(4)
        return TablePreview(
            {
                "index": list(range(len(rows))),
                "columns": [f"v{j}" for j in range(vectors.shape[1])],
                "data": rows.tolist(),
            }
        )

    def save(self, data: np.ndarray | VectorBlocks) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, np.ndarray):
            data = VectorBlocks(len(data), data.shape[1], lambda d=data: iter([d]))
        partial = path.with_name(f".{path.name}.partial")
        out = np.lib.format.open_memmap(
            partial, mode="w+", dtype=np.float32, shape=(data.num_rows, data.dim)
        )
        row = 0
        for block in data.blocks():
            out[row : row + len(block)] = block
            row += len(block)
        if row != data.num_rows:
            raise ValueError(f"vector blocks gave {row} rows, {data.num_rows} were announced")
        out.flush()
        del out
        partial.rename(path)
        write_sidecar(path)
