"""A dataset that may be absent: loads ``None`` when its data does not exist."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import parse_dataset_definition


class OptionalDataset(AbstractDataset[Any, Any]):
    """Wraps another dataset; ``load`` gives ``None`` where it has nothing to load.

    Used for ``extraction`` (only corpora embedded by ``audio_features`` have one, and
    ``export`` bundles it when present) and for ``twins`` and ``twin_segments`` (only the
    synthetic catalogue has them; evaluation measures selectivity when present).

    Args:
        dataset: the wrapped dataset's definition (``type`` plus its arguments).
    """

    def __init__(self, dataset: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        dataset_class, kwargs = parse_dataset_definition(dict(dataset))
        self._dataset = dataset_class(**kwargs)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}

    def load(self) -> Any:
        return self._dataset.load() if self._dataset.exists() else None

    def save(self, data: Any) -> None:
        self._dataset.save(data)

    def _exists(self) -> bool:
        return self._dataset.exists()
