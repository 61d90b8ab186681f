"""A FAISS index folder (``index.faiss`` + ``index_manifest.json``), verified on every load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import faiss
from kedro_datasets._typing import JSONPreview

from expressive_retrieval.datasets._local_versioned import LocalVersionedDataset
from expressive_retrieval.vectors.index import (
    IndexArtifact,
    read_index,
    read_manifest,
    write_index,
)


class FaissIndexDataset(LocalVersionedDataset[IndexArtifact, tuple[faiss.Index, dict[str, Any]]]):
    """Saves an ``IndexArtifact``; loads ``(index, manifest)`` after checking the sha256.

    ``filepath`` names a folder. Versioned, each version is the folder
    ``<filepath>/<version>/<basename(filepath)>/`` holding the two files; it is written
    under a temporary name and renamed, so only complete versions are ever listed.
    """

    def load(self) -> tuple[faiss.Index, dict[str, Any]]:
        return read_index(Path(self._get_load_path()), verify=True)

    def preview(self) -> JSONPreview:
        """The index manifest (factory, size, search parameters, checksums), for kedro-viz."""
        return JSONPreview(json.dumps(read_manifest(Path(self._get_load_path()))))

    def save(self, data: IndexArtifact) -> None:
        folder = Path(self._get_save_path())
        staging = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        write_index(
            data.index, staging, data.checksums, data.id_mapping, data.factory, data.search_params
        )
        if folder.exists():  # unversioned: replace the previous index
            shutil.rmtree(folder)
        staging.rename(folder)
