"""``preview()`` of the custom datasets: what kedro-viz shows (``make viz`` builds with
``--include-previews``), read from headers and first rows, never the whole artifact."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import torch
from kedro.io import Version

from expressive_retrieval.datasets import (
    FaissIndexDataset,
    SafetensorsDataset,
    SegmentsDataset,
    TextFilesDataset,
    VectorsDataset,
)
from expressive_retrieval.vectors.index import IndexArtifact, build_index

# kedro-viz picks its renderer by the name of preview()'s return annotation.
RENDERERS = {"TablePreview", "JSONPreview", "ImagePreview", "PlotlyPreview", "HTMLPreview"}


def _renderer(dataset: object) -> str:
    return inspect.signature(dataset.preview).return_annotation  # a string: postponed


def test_vectors_preview_shows_the_first_rows(tmp_path: Path) -> None:
    vectors = np.arange(40, dtype=np.float32).reshape(10, 4) / 7
    VectorsDataset(str(tmp_path / "v.npy"), version=Version(None, "v1")).save(vectors)
    dataset = VectorsDataset(str(tmp_path / "v.npy"), version=Version(None, None))
    table = dataset.preview(nrows=3)
    assert table["columns"] == ["v0", "v1", "v2", "v3"] and table["index"] == [0, 1, 2]
    np.testing.assert_allclose(table["data"], vectors[:3], atol=1e-4)
    assert _renderer(dataset) in RENDERERS


def test_index_preview_is_its_manifest(tmp_path: Path) -> None:
    vectors = np.eye(4, dtype=np.float32)
    artifact = IndexArtifact(build_index(vectors, 4), "Flat", checksums={"v.npy": "ab" * 32})
    FaissIndexDataset(str(tmp_path / "index"), version=Version(None, "v1")).save(artifact)
    dataset = FaissIndexDataset(str(tmp_path / "index"), version=Version(None, None))
    manifest = json.loads(dataset.preview())
    assert manifest["factory"] == "Flat" and manifest["ntotal"] == 4
    assert _renderer(dataset) in RENDERERS


def test_text_files_preview_shows_the_head_of_each_file(tmp_path: Path) -> None:
    files = {"runs/a.trec": "".join(f"line {i}\n" for i in range(50)), "summary.md": "# ok\n"}
    TextFilesDataset(str(tmp_path / "t"), version=Version(None, "v1")).save(files)
    dataset = TextFilesDataset(str(tmp_path / "t"), version=Version(None, None))
    heads = json.loads(dataset.preview(lines=3))
    assert heads == {"runs/a.trec": "line 0\nline 1\nline 2\n", "summary.md": "# ok\n"}
    assert list(json.loads(dataset.preview(files=1))) == ["runs/a.trec"]
    assert _renderer(dataset) in RENDERERS


def test_weights_preview_lists_tensor_shapes(tmp_path: Path) -> None:
    state = {"routing.logits": torch.zeros(2, 3), "input_mean": torch.zeros(3, 8)}
    SafetensorsDataset(str(tmp_path / "m.safetensors"), version=Version(None, "v1")).save(state)
    dataset = SafetensorsDataset(str(tmp_path / "m.safetensors"), version=Version(None, None))
    assert json.loads(dataset.preview()) == {
        "input_mean": {"shape": [3, 8], "dtype": "F32"},
        "routing.logits": {"shape": [2, 3], "dtype": "F32"},
    }
    assert _renderer(dataset) in RENDERERS


def test_segments_preview_reads_headers(tmp_path: Path) -> None:
    dataset = SegmentsDataset(str(tmp_path / "segments"))
    dataset.save({f"t{i}": np.zeros((3 + i, 2, 4), dtype=np.float16) for i in range(3)})
    table = dataset.preview(nrows=2)
    assert table["columns"] == ["track_id", "num_segments", "L", "D", "dtype"]
    assert table["data"] == [["t0", 3, 2, 4, "float16"], ["t1", 4, 2, 4, "float16"]]
    assert _renderer(dataset) in RENDERERS
