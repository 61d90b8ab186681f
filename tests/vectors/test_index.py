"""FAISS index build/search/recall, and verified save/load (plain and as a Kedro dataset)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest
from kedro.io import DatasetError, Version

from expressive_retrieval.datasets import FaissIndexDataset
from expressive_retrieval.vectors.index import (
    INDEX_FILE,
    MANIFEST_FILE,
    IndexArtifact,
    apply_search_params,
    build_index,
    exact_search,
    index_config,
    read_index,
    recall_at_k,
    search,
    write_index,
)
from expressive_retrieval.vectors.integrity import IntegrityError, sha256_file

K = 10
IDS = {"kind": "row", "ids_file": "clip_ids.parquet", "id_column": "clip_id"}
ASPECTS, SUB_DIM, CENTRES = 5, 16, 50
DIM = ASPECTS * SUB_DIM


def _clustered(n: int, seed: int) -> np.ndarray:
    """``[n, DIM]``: per aspect, unit sub-vectors scattered around a few shared centres."""
    centres = np.random.default_rng(0).standard_normal((ASPECTS, CENTRES, SUB_DIM))
    rng = np.random.default_rng(seed)
    picks = rng.integers(CENTRES, size=(n, ASPECTS))
    sub = centres[np.arange(ASPECTS), picks] + 0.15 * rng.standard_normal((n, ASPECTS, SUB_DIM))
    sub /= np.linalg.norm(sub, axis=-1, keepdims=True)
    return sub.reshape(n, DIM).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Small indexes: one thread avoids OpenMP stalls when other processes hold the cores."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return _clustered(5_000, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    weights = np.random.default_rng(3).dirichlet(np.ones(ASPECTS), 200).astype(np.float32)
    vectors = _clustered(200, seed=2).reshape(200, ASPECTS, SUB_DIM)
    return (vectors * weights[:, :, None]).reshape(200, DIM)


@pytest.fixture(scope="module")
def truth(corpus: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return exact_search(corpus, queries, K)


def _saved(folder: Path, corpus: np.ndarray) -> dict:
    index = build_index(corpus, DIM, "IVF64,Flat", {"nprobe": 16})
    return write_index(
        index, folder, {"clip_vectors.npy": "ab" * 32}, IDS, "IVF64,Flat", {"nprobe": 16}
    )


def test_exact_search_streams_blocks_like_a_flat_index(corpus, queries, truth) -> None:
    blocks = (corpus[i : i + 999] for i in range(0, len(corpus), 999))  # last block: 5 < k
    scores, ids = exact_search(blocks, queries, K)
    flat_scores, flat_ids = search(build_index(corpus, DIM), queries, K)
    np.testing.assert_array_equal(ids, flat_ids)
    np.testing.assert_allclose(scores, flat_scores, rtol=1e-5)
    np.testing.assert_array_equal(ids, truth[1])
    assert scores.dtype == np.float32 and ids.dtype == np.int64


def test_exact_search_pads_a_corpus_smaller_than_k(queries) -> None:
    _, ids = exact_search(np.eye(3, DIM, dtype=np.float32), queries[:2], 5)
    assert (ids[:, 3:] == -1).all() and set(ids[0, :3]) == {0, 1, 2}


@pytest.mark.parametrize(
    ("factory", "params"),
    [("Flat", {}), ("HNSW32", {"efSearch": 128}), ("IVF64,Flat", {"nprobe": 32})],
)
def test_ann_recall_against_exact(corpus, queries, truth, factory, params) -> None:
    index = build_index(corpus, DIM, factory, params)
    assert index.ntotal == len(corpus) and index.metric_type == faiss.METRIC_INNER_PRODUCT
    _, ids = search(index, queries, K)
    assert recall_at_k(ids, truth[1]) >= (1.0 if factory == "Flat" else 0.9)


def test_nprobe_trades_speed_for_recall(corpus, queries, truth) -> None:
    index = build_index(corpus, DIM, "IVF64,Flat", {"nprobe": 1})
    one_list = recall_at_k(search(index, queries, K)[1], truth[1])
    apply_search_params(index, {"nprobe": 64})  # every list: exhaustive
    assert one_list < 0.7 and recall_at_k(search(index, queries, K)[1], truth[1]) == 1.0


@pytest.mark.parametrize("factory", ["Flat", "IVF64,Flat"])
def test_streamed_build_equals_array_build(corpus, queries, factory) -> None:
    """A stream trains on its head; with ``train_size`` >= n both train on everything."""
    blocks = iter(np.array_split(corpus, 7))
    streamed = build_index(blocks, DIM, factory, {}, train_size=len(corpus))
    whole = build_index(corpus, DIM, factory, {}, train_size=len(corpus))
    for got, expected in zip(search(streamed, queries, K), search(whole, queries, K), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_stream_training_uses_only_its_head_but_adds_everything(corpus) -> None:
    index = build_index(iter(np.array_split(corpus, 10)), DIM, "IVF16,Flat", train_size=600)
    assert index.ntotal == len(corpus)


def test_search_params_reach_wrapped_indexes(corpus) -> None:
    index = build_index(corpus[:2_000], DIM, "PCA40,IVF16,Flat", {"nprobe": 5})
    assert faiss.extract_index_ivf(index).nprobe == 5
    hnsw = build_index(corpus[:500], DIM, "HNSW16", {"efSearch": 77})
    assert faiss.downcast_index(hnsw).hnsw.efSearch == 77
    with pytest.raises(ValueError, match="'efSearch' does not apply"):
        apply_search_params(index, {"efSearch": 10})


def test_wrong_dimensions_are_refused(corpus) -> None:
    index = build_index(corpus[:100], DIM)
    with pytest.raises(ValueError, match=r"queries must have shape \[Q, 80\]"):
        search(index, corpus[:3, :64], K)
    with pytest.raises(ValueError, match=r"queries must have shape"):
        search(index, corpus[0], K)
    with pytest.raises(ValueError, match=r"expected vectors of shape \[n, 80\]"):
        build_index([corpus[:10], corpus[:10, :40]], DIM)


def test_recall_at_k_counts_shared_ids() -> None:
    exact = np.array([[1, 2, 3], [4, 5, -1]])
    ann = np.array([[3, 9, 1], [5, 4, 7]])
    assert recall_at_k(ann, exact) == pytest.approx(4 / 5)


@pytest.mark.parametrize(
    ("factory", "params"),
    [
        ("IVF32,Flat", {"nprobe": 8}),
        ("HNSW16", {"efSearch": 48}),
        ("IVF32,PQ80x4fs,RFlat", {"nprobe": 8, "k_factor_rf": 8}),
    ],
)
def test_write_read_round_trip(tmp_path, corpus, queries, factory, params) -> None:
    corpus = corpus[:2_000]
    original = build_index(corpus, DIM, factory, params)
    vectors_sha = {"clip_vectors.npy": "ab" * 32}
    manifest = write_index(original, tmp_path, vectors_sha, IDS, factory, params)
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_FILE, MANIFEST_FILE]
    assert manifest == json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["checksums"] == {INDEX_FILE: sha256_file(tmp_path / INDEX_FILE), **vectors_sha}
    assert manifest["factory"] == factory and manifest["search_params"] == params
    assert (manifest["metric"], manifest["ntotal"], manifest["dim"]) == (
        "inner_product",
        len(corpus),
        DIM,
    )
    assert manifest["id_mapping"] == IDS and manifest["faiss_version"] == faiss.__version__
    loaded, read_manifest = read_index(tmp_path)
    assert read_manifest == manifest
    for got, expected in zip(search(loaded, queries, K), search(original, queries, K), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_read_index_applies_the_manifest_search_params(tmp_path, corpus) -> None:
    index = build_index(corpus[:2_000], DIM, "IVF32,Flat", {"nprobe": 1})
    write_index(index, tmp_path, None, IDS, "IVF32,Flat", {"nprobe": 12})
    assert faiss.extract_index_ivf(read_index(tmp_path)[0]).nprobe == 12


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("tamper", [_flip_byte, _truncate, Path.unlink])
def test_tampered_index_is_refused_before_faiss_reads_it(
    tmp_path, corpus, monkeypatch, tamper
) -> None:
    _saved(tmp_path, corpus)
    tamper(tmp_path / INDEX_FILE)

    def must_not_read(*_args: object) -> None:
        raise AssertionError("faiss.read_index called on an unverified file")

    monkeypatch.setattr(faiss, "read_index", must_not_read)
    with pytest.raises(IntegrityError, match=INDEX_FILE):
        read_index(tmp_path)


def test_missing_or_wrong_manifest_is_refused(tmp_path, corpus) -> None:
    manifest = _saved(tmp_path, corpus)
    path = tmp_path / MANIFEST_FILE
    path.write_text(json.dumps({**manifest, "checksums": {INDEX_FILE: "0" * 64}}))
    with pytest.raises(IntegrityError, match="does not match"):
        read_index(tmp_path)
    path.write_text(json.dumps({**manifest, "ntotal": 7}))
    with pytest.raises(IntegrityError, match="manifest records 7"):
        read_index(tmp_path)
    path.write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        read_index(tmp_path)
    path.unlink()
    with pytest.raises(IntegrityError, match=f"{MANIFEST_FILE}: index manifest is missing"):
        read_index(tmp_path)


def _artifact(vectors: np.ndarray) -> IndexArtifact:
    return IndexArtifact(build_index(vectors, DIM, "HNSW16"), "HNSW16", {"efSearch": 32}, IDS)


def test_kedro_dataset_versions_and_verifies(tmp_path, corpus) -> None:
    filepath = str(tmp_path / "projection_retriever" / "index")
    for version, size in [("2024-01-01T00.00.00.000Z", 100), ("2024-01-02T00.00.00.000Z", 200)]:
        FaissIndexDataset(filepath, Version(None, version)).save(_artifact(corpus[:size]))
    latest = Path(filepath) / "2024-01-02T00.00.00.000Z" / "index"
    assert sorted(p.name for p in latest.iterdir()) == [INDEX_FILE, MANIFEST_FILE]
    assert len(list(Path(filepath).iterdir())) == 2  # no staging folders left behind

    dataset = FaissIndexDataset(filepath, Version(None, None))
    assert dataset.exists()
    index, manifest = dataset.load()
    assert index.ntotal == manifest["ntotal"] == 200
    assert faiss.downcast_index(index).hnsw.efSearch == 32

    _flip_byte(latest / INDEX_FILE)
    with pytest.raises(DatasetError, match="truncated or altered") as error:
        FaissIndexDataset(filepath, Version(None, None)).load()
    assert isinstance(error.value.__cause__, IntegrityError)
    older = FaissIndexDataset(filepath, Version("2024-01-01T00.00.00.000Z", None)).load()
    assert older[0].ntotal == 100


def test_kedro_dataset_unversioned_overwrites(tmp_path, corpus) -> None:
    dataset = FaissIndexDataset(str(tmp_path / "index"))
    assert not dataset.exists()
    dataset.save(_artifact(corpus[:50]))
    dataset.save(_artifact(corpus[:60]))
    assert dataset.load()[0].ntotal == 60


def test_index_type_follows_corpus_size() -> None:
    params = {
        "exact_up_to": 1000,
        "exact": {"factory": "Flat", "search_params": {}},
        "large": {
            "factory": "IVF{nlist},PQ{dim}x4fs,RFlat",
            "probe_share": 0.125,
            "min_probes": 16,
            "search_params": {"k_factor_rf": 32},
        },
    }
    assert index_config(1000, 80, params) == ("Flat", {})
    assert index_config(1_000_000, 80, params) == (
        "IVF2048,PQ80x4fs,RFlat",
        {"nprobe": 256, "k_factor_rf": 32},
    )
    assert index_config(1149, 80, params) == (
        "IVF64,PQ80x4fs,RFlat",
        {"nprobe": 16, "k_factor_rf": 32},
    )
    capped = {**params, "large": {**params["large"], "min_probes": 99}}
    assert index_config(1001, 80, capped)[1]["nprobe"] == 64  # never more than the lists
