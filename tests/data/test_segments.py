"""``SegmentStore``: memory maps are released when a pass (``with store:``) ends."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from expressive_retrieval.data.segments import SegmentStore, npy_header


def _mapped(path: Path) -> bool:
    """Whether this process currently maps ``path`` (Linux: /proc/self/maps)."""
    gc.collect()
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


@pytest.fixture
def store(tmp_path: Path) -> SegmentStore:
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", np.ones((3, 2, 4), dtype=np.float16))
    return SegmentStore(tmp_path)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
def test_a_pass_unmaps_its_files_when_it_ends(store: SegmentStore) -> None:
    with store:
        assert store.clip("a", 0, 2).shape == (2, 2, 4)
        assert _mapped(store.path("a"))
    assert not _mapped(store.path("a"))
    with store:  # reusable after a pass
        store.open("b")
    assert not _mapped(store.path("b"))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
def test_a_failed_pass_unmaps_its_files_too(store: SegmentStore) -> None:
    with pytest.raises(KeyError), store:
        store.open("a")
        raise KeyError("a node failed mid-pass")
    assert not _mapped(store.path("a"))


def test_npy_header_reads_shape_and_dtype_without_the_data(store: SegmentStore) -> None:
    assert npy_header(store.path("a")) == ((3, 2, 4), np.dtype(np.float16))
    assert store.shape("b") == (3, 2, 4)
