"""A raw input whose unreadable file becomes a contract violation, not a Kedro traceback."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset
from kedro.io.core import parse_dataset_definition

from expressive_retrieval.data.contract.violations import Unreadable


class RawInputDataset(AbstractDataset[Any, Any]):
    """Loads the wrapped dataset, or :class:`Unreadable` when its file does not parse.

    ``check_raw_inputs`` turns an ``Unreadable`` into the ``<entry>.readable`` rule, naming
    the file and the parser's error; saving (``synthetic_data``) goes to the wrapped dataset.

    Args:
        dataset: the wrapped dataset's definition (``type`` plus its arguments).
    """

    def __init__(self, dataset: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        dataset_class, kwargs = parse_dataset_definition(dict(dataset))
        self._dataset = dataset_class(**kwargs)
        self._path = str(kwargs.get("filepath", kwargs.get("path", "")))
        self.metadata = metadata
        if hasattr(self._dataset, "preview"):  # kedro-viz reads the wrapped preview as is
            self.preview = self._dataset.preview

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}

    def load(self) -> Any:
        try:
            return self._dataset.load()
        except Exception as error:  # any parser's failure is the same contract violation
            cause = error.__cause__ or error
            return Unreadable(self._path, f"{type(cause).__name__}: {cause}")

    def save(self, data: Any) -> None:
        self._dataset.save(data)

    def _exists(self) -> bool:
        return self._dataset.exists()
