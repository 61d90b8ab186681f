"""Read the latest saved version of a versioned artifact, or nothing on a first run."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, Version
from kedro.io.core import VersionNotFoundError, parse_dataset_definition


class LatestVersionDataset(AbstractDataset[None, Any]):
    """Load-only view of the newest version of another (versioned) dataset.

    Used for frozen artifacts: ``previous_splits`` points at the same file as ``splits``,
    so a run can reuse the split that an earlier run froze. Loads ``None`` when no version
    exists yet.

    Args:
        dataset: the wrapped dataset's definition (``type`` plus its arguments), exactly as
            the versioned catalog entry gives it, without ``versioned``.
    """

    def __init__(self, dataset: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        dataset_class, kwargs = parse_dataset_definition(dict(dataset))
        self._dataset = dataset_class(**kwargs, version=Version(None, None))
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}

    def load(self) -> Any:
        try:
            return self._dataset.load()
        except VersionNotFoundError:
            return None

    def save(self, data: None) -> None:
        raise NotImplementedError(f"{type(self).__name__} is read-only")
