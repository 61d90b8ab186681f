"""Shared base of the local, versioned artifact datasets."""

from __future__ import annotations

import glob
import os
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from kedro.io import AbstractVersionedDataset, Version
from kedro.io.core import DatasetError

SaveT = TypeVar("SaveT")
LoadT = TypeVar("LoadT")


class LocalVersionedDataset(AbstractVersionedDataset[SaveT, LoadT], Generic[SaveT, LoadT]):
    """A versioned artifact on the local filesystem; ``exists`` means the load path exists."""

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

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).exists()
        except DatasetError:  # no version saved yet
            return False
