"""The versioned text-folder dataset: round trip, versions kept apart, unsafe names refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import Version

from expressive_retrieval.datasets import TextFilesDataset

FILES = {"clip_to_clip/cosine.trec": "q1 Q0 c1 1 0.5 cosine\n", "summary.md": "# ünïcode\n"}


def test_round_trip_and_versions_are_kept(tmp_path: Path) -> None:
    first = TextFilesDataset(str(tmp_path / "runs"), version=Version(None, "v1"))
    first.save(FILES)
    second = TextFilesDataset(str(tmp_path / "runs"), version=Version(None, "v2"))
    second.save({"other.txt": "x"})

    assert TextFilesDataset(str(tmp_path / "runs"), version=Version("v1", None)).load() == FILES
    assert TextFilesDataset(str(tmp_path / "runs"), version=Version(None, None)).load() == {
        "other.txt": "x"
    }
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", ""])
def test_names_outside_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(Exception, match="relative path"):
        TextFilesDataset(str(tmp_path / "runs")).save({name: "x"})
