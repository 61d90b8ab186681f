"""A FAISS index folder (``index.faiss`` + ``index_manifest.json``), verified on every load."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import faiss
from kedro.io import AbstractVersionedDataset, Version
from kedro.io.core import DatasetError

from expressive_retrieval.index import MANIFEST_FILE, IndexArtifact, read_index, write_index


class FaissIndexDataset(
    AbstractVersionedDataset[IndexArtifact, tuple[faiss.Index, dict[str, Any]]]
):
    """Saves an ``IndexArtifact``; loads ``(index, manifest)`` after checking the sha256.

    ``filepath`` names a folder. Versioned, each version is the folder
    ``<filepath>/<version>/<basename(filepath)>/`` holding the two files; it is written
    under a temporary name and renamed, so only complete versions are ever listed.
    """

    def __init__(
        self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        super().__init__(
            filepath=PurePosixPath(filepath),
            version=version,
            exists_function=os.path.exists,
            glob_function=glob.glob,
        )
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}

    def load(self) -> tuple[faiss.Index, dict[str, Any]]:
        return read_index(Path(self._get_load_path()), verify=True)

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

    def _exists(self) -> bool:
        try:
            return (Path(self._get_load_path()) / MANIFEST_FILE).is_file()
        except DatasetError:  # no version saved yet
            return False
