"""The artifact bundle ``<path>/<bundle_version>/``, written whole or not at all.

Its layout is the contract of docs/design.md, "Bundle".
"""

from __future__ import annotations

import json
import logging
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, Version
from kedro.io.core import DatasetError, generate_timestamp
from kedro_datasets._typing import JSONPreview

import expressive_retrieval
from expressive_retrieval.serving import Retriever, load_bundle
from expressive_retrieval.serving.bundle import BundleContents, read_manifest, write_bundle

logger = logging.getLogger(__name__)


def _git_commit() -> str:
    """The checked-out commit (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        run = {"capture_output": True, "text": True, "check": True, "timeout": 10}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty.stdout.strip() else "")


class BundleDataset(AbstractDataset[BundleContents, Retriever]):
    """Saves ``BundleContents`` as the bundle folder ``<path>/<bundle_version>``; loads a
    verified serving ``Retriever``.

    The bundle version is the run's save version (``versioned: true``) or a fresh
    timestamp. Files go to a hidden staging folder, which is loaded back through the
    serving API (every checksum, the index against its manifest, shapes) and only then
    renamed into place; an existing bundle is never overwritten, and staging folders
    left by a killed export are removed (and logged) by the next one. Loading takes the
    ``--load-versions`` version, else the newest bundle.
    """

    def __init__(
        self, path: str, version: Version | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self._path = Path(path)
        self._version = version
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "version": self._version}

    def _versions(self) -> list[str]:
        if not self._path.is_dir():
            return []
        return sorted(
            p.name for p in self._path.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def _load_folder(self) -> Path:
        """The ``--load-versions`` bundle, else the newest."""
        version = self._version.load if self._version and self._version.load else None
        versions = self._versions()
        if version is None and not versions:
            raise DatasetError(f"no bundle under {self._path}; run `kedro run --pipelines=export`")
        return self._path / (version or versions[-1])

    def load(self) -> Retriever:
        return load_bundle(self._load_folder())

    def preview(self) -> JSONPreview:
        """The bundle's manifest, its file list reduced to a count, for kedro-viz."""
        manifest = read_manifest(self._load_folder())
        files = manifest.pop("files")
        return JSONPreview(json.dumps({**manifest, "num_files": len(files)}))

    def save(self, data: BundleContents) -> None:
        version = (self._version.save if self._version else None) or generate_timestamp()
        provenance = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": _git_commit(),
            "package_version": expressive_retrieval.__version__,
        }
        contents = BundleContents(data.files, {**data.metadata, **provenance})
        target = write_bundle(self._path, version, contents, check=load_bundle)
        logger.info("Bundle %s written to %s", version, target)

    def _exists(self) -> bool:
        return bool(self._versions())
