"""``RawInputDataset``: a raw file that does not parse loads as ``Unreadable``."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd

from expressive_retrieval.data.contract.violations import Unreadable
from expressive_retrieval.datasets import RawInputDataset


def test_parsed_data_passes_through_and_garbage_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "tracks.parquet"
    dataset = RawInputDataset({"type": "pandas.ParquetDataset", "filepath": str(path)})
    frame = pd.DataFrame({"track_id": ["a", "b"]})
    dataset.save(frame)
    pd.testing.assert_frame_equal(dataset.load(), frame)
    assert inspect.signature(dataset.preview).return_annotation == "TablePreview"
    path.write_bytes(b"not parquet")
    loaded = dataset.load()
    assert isinstance(loaded, Unreadable) and loaded.path == str(path) and loaded.error
    missing = RawInputDataset({"type": "json.JSONDataset", "filepath": str(tmp_path / "no.json")})
    assert isinstance(missing.load(), Unreadable)
