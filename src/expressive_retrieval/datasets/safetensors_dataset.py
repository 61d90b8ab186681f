"""Model weights as safetensors, with a recorded sha256 verified before every load."""

from __future__ import annotations

import json
from pathlib import Path

from kedro_datasets._typing import JSONPreview
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from expressive_retrieval.datasets._local_versioned import LocalVersionedDataset
from expressive_retrieval.vectors.integrity import verify_file, write_sidecar


class SafetensorsDataset(LocalVersionedDataset[dict[str, Tensor], dict[str, Tensor]]):
    """A ``{name: tensor}`` state dict stored as safetensors (never pickle).

    Saving writes ``<file>`` atomically plus ``<file>.sha256``; loading refuses a file
    whose checksum does not match.
    """

    def load(self) -> dict[str, Tensor]:
        path = Path(self._get_load_path())
        verify_file(path)
        return load_file(path)

    def preview(self) -> JSONPreview:
        """``{tensor: {shape, dtype}}`` from the file's header, for kedro-viz."""
        header = {}
        with safe_open(str(self._get_load_path()), framework="numpy") as weights:
            names = weights.keys()
            for name in names:
                tensor = weights.get_slice(name)
                header[name] = {"shape": tensor.get_shape(), "dtype": tensor.get_dtype()}
        return JSONPreview(json.dumps(header))

    def save(self, data: dict[str, Tensor]) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        save_file({k: v.detach().contiguous().cpu() for k, v in data.items()}, partial)
        partial.rename(path)
        write_sidecar(path)
