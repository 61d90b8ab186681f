"""Inner-product FAISS indexes over retrieval vectors: build, search, save and verified load.

Retrieval vectors concatenate unit per-aspect sub-vectors; a query scales each sub-vector
by its aspect weight, so one inner-product index serves every weighting. Kedro-free (the
serving API imports it); numpy in, numpy out, large corpora as iterators over blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from expressive_retrieval.vectors.integrity import IntegrityError, sha256_file, verify_file

INDEX_FILE = "index.faiss"
MANIFEST_FILE = "index_manifest.json"
METRIC = "inner_product"
BLOCK_ROWS = 65_536
VECTORS_CONTENT = "clip_vectors.content"  # manifest checksum key of the indexed vectors

Vectors = Iterable[np.ndarray] | np.ndarray


@dataclass(frozen=True)
class IndexArtifact:
    """An index plus what its manifest records: the payload ``FaissIndexDataset`` saves.

    ``id_mapping`` says how index rows map to ids, e.g. ``{"kind": "row", "ids_file":
    "clip_ids.parquet", "id_column": "clip_id"}``; ``checksums`` holds the sha256 of the
    vectors/ids files the index was built from, by file name.
    """

    index: faiss.Index
    factory: str
    search_params: dict[str, float] = field(default_factory=dict)
    id_mapping: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)


def _as_block(block: np.ndarray, dim: int) -> np.ndarray:
    """``block`` as a float32 C-contiguous ``[n, dim]`` array."""
    block = np.asarray(block)
    if block.ndim != 2 or block.shape[1] != dim:
        raise ValueError(f"expected vectors of shape [n, {dim}], got {list(block.shape)}")
    return np.ascontiguousarray(block, dtype=np.float32)


def _blocks(vectors: Vectors, dim: int) -> Iterator[np.ndarray]:
    """Float32 ``[n, dim]`` blocks of an array (sliced) or of an iterable of blocks."""
    if isinstance(vectors, np.ndarray):
        array = vectors
        vectors = (array[i : i + BLOCK_ROWS] for i in range(0, len(array), BLOCK_ROWS))
    return (_as_block(block, dim) for block in vectors)


def _training_sample(
    vectors: Vectors, dim: int, train_size: int, seed: int
) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """Training vectors, and the blocks to add afterwards (all of ``vectors``)."""
    if isinstance(vectors, np.ndarray):
        rows = len(vectors)
        chosen = np.random.default_rng(seed).choice(rows, min(rows, train_size), replace=False)
        return _as_block(vectors[np.sort(chosen)], dim), _blocks(vectors, dim)
    # A stream can be read once: train on its head, then add the head and the rest.
    blocks, head, count = _blocks(vectors, dim), [], 0
    for block in blocks:
        head.append(block)
        count += len(block)
        if count >= train_size:
            break
    if not head:
        raise ValueError("cannot train an index on an empty stream of vectors")
    return np.concatenate(head)[:train_size], itertools.chain(head, blocks)


# Training samples below this size train on one thread: OpenMP's start-up and spinning then
# cost far more than the work (IVF64,PQ80x4fs on 1,149 vectors: 0.26 s on one thread, 20 s
# on two while other processes hold the cores).
SMALL_TRAINING = 20_000


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """FAISS's OpenMP thread count for the block, restored after it."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def build_index(
    vectors: Vectors,
    dim: int,
    factory: str = "Flat",
    search_params: dict[str, float] | None = None,
    train_size: int = 100_000,
    seed: int = 0,
    metric: int = faiss.METRIC_INNER_PRODUCT,
) -> faiss.Index:
    """An inner-product index from ``faiss.index_factory`` holding ``vectors`` as rows 0..n-1.

    ``vectors`` is a ``[n, dim]`` array (possibly memory-mapped) or an iterable of
    ``[n_i, dim]`` blocks, so the corpus never has to be one array. Indexes that need
    training (IVF, PQ, ...) train on at most ``train_size`` vectors: a uniform sample
    drawn with ``seed`` from an array, or the first ``train_size`` vectors of a stream
    (a stream is read once, so it should come in an order that does not bias its head,
    e.g. shuffled shards). ``search_params`` (``{"nprobe": 16}``, ``{"efSearch": 64}``)
    are then applied. ``metric`` may name another FAISS metric (``faiss.METRIC_L2``).
    """
    index = faiss.index_factory(dim, factory, metric)
    if index.is_trained:
        blocks = _blocks(vectors, dim)
    else:
        sample, blocks = _training_sample(vectors, dim, train_size, seed)
        with _threads(1 if len(sample) < SMALL_TRAINING else faiss.omp_get_max_threads()):
            index.train(sample)
    for block in blocks:
        index.add(block)
    apply_search_params(index, search_params or {})
    return index


def index_config(
    num_vectors: int, dim: int, params: dict[str, Any]
) -> tuple[str, dict[str, float]]:
    """The index ``(factory, search_params)`` for a corpus of ``num_vectors``.

    Up to ``params["exact_up_to"]`` vectors: ``params["exact"]`` (an exact ``Flat`` index
    by default). Above it: ``params["large"]``, whose ``factory`` may name ``{nlist}``
    (inverted lists: ``2·sqrt(num_vectors)`` rounded to a power of two, as ``benchmarks/
    bench_ann.py`` measured at 1M) and ``{dim}``, and whose ``probe_share`` of the lists,
    but at least ``min_probes`` (default 1), is searched (``nprobe``), with its other
    ``search_params``.
    """
    if num_vectors <= params["exact_up_to"]:
        return params["exact"]["factory"], dict(params["exact"]["search_params"])
    return large_index_config(num_vectors, dim, params["large"])


def inverted_lists(num_vectors: int) -> int:
    """IVF lists for ``num_vectors``: ``2·sqrt(num_vectors)`` rounded to a power of two."""
    return 2 ** max(0, round(math.log2(2 * math.sqrt(max(num_vectors, 1)))))


def large_index_config(
    num_vectors: int, dim: int, large: dict[str, Any]
) -> tuple[str, dict[str, float]]:
    """``large`` (see ``index_config``) filled in for a corpus of ``num_vectors``."""
    nlist = inverted_lists(num_vectors)
    factory = large["factory"].format(nlist=nlist, dim=dim)
    nprobe = min(nlist, max(large.get("min_probes", 1), round(nlist * large["probe_share"])))
    return factory, {"nprobe": nprobe, **large["search_params"]}


def apply_search_params(index: faiss.Index, params: dict[str, float]) -> None:
    """Set search-time parameters (``nprobe``, ``efSearch``, ...), wrapped indexes included."""
    space = faiss.ParameterSpace()
    for name, value in params.items():
        try:
            space.set_index_parameter(index, name, float(value))
        except RuntimeError as error:
            raise ValueError(
                f"search parameter {name!r} does not apply to a {type(index).__name__} index"
            ) from error


SEARCH_BLOCK = 256  # queries per FAISS search call (memory bound)


def _queries(queries: np.ndarray, dim: int, k: int) -> np.ndarray:
    """Validated float32 ``[Q, dim]`` queries."""
    queries = np.asarray(queries)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must have shape [Q, {dim}], got {list(queries.shape)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return np.ascontiguousarray(queries, dtype=np.float32)


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products ``[Q, k]`` float32 and row ids ``[Q, k]`` int64 (-1: none).

    Queries go to FAISS ``SEARCH_BLOCK`` at a time: a refined index keeps ``k`` times its
    refinement factor candidates per query while it searches (``[2000, 32000]`` at
    evaluation's depth and the large configuration), so one call for every query would
    hold memory in proportion to the query count.
    """
    queries = _queries(queries, index.d, k)
    parts = [
        index.search(queries[start : start + SEARCH_BLOCK], k)
        for start in range(0, max(len(queries), 1), SEARCH_BLOCK)
    ]
    return np.concatenate([d for d, _ in parts]), np.concatenate([i for _, i in parts])


def exact_search(
    corpus_blocks: Vectors, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product over a corpus streamed in blocks (ground truth)."""
    queries = _queries(queries, np.asarray(queries).shape[-1], k)
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    start = 0
    for block in _blocks(corpus_blocks, queries.shape[1]):
        flat = faiss.IndexFlatIP(queries.shape[1])
        flat.add(block)
        scores, ids = flat.search(queries, k)
        heap.add_result(scores, np.where(ids >= 0, ids + start, -1))
        start += len(block)
    heap.finalize()
    return heap.D, heap.I


def recall_at_k(ann_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Share of the exact top-k ids (``-1`` padding ignored) found in the ANN top-k."""
    assert ann_ids.shape == exact_ids.shape and ann_ids.ndim == 2, "expected two [Q, k] arrays"
    relevant = exact_ids >= 0
    found = (exact_ids[:, :, None] == ann_ids[:, None, :]).any(axis=2) & relevant
    return float(found.sum() / max(relevant.sum(), 1))


def vectors_digest(vectors: np.ndarray) -> str:
    """sha256 of a ``[n, dim]`` array's float32 rows (a memory map is read block by block)."""
    digest = hashlib.sha256()
    for i in range(0, len(vectors), BLOCK_ROWS):
        digest.update(np.ascontiguousarray(vectors[i : i + BLOCK_ROWS], dtype=np.float32).tobytes())
    return digest.hexdigest()


def write_index(
    index: faiss.Index,
    folder: Path,
    vectors_sha256: dict[str, str] | None,
    ids_info: dict[str, Any],
    factory: str,
    search_params: dict[str, float],
) -> dict[str, Any]:
    """Write ``index.faiss`` and ``index_manifest.json`` into ``folder``; return the manifest.

    Each file goes to a temporary name first and is then renamed; the index is renamed
    before the manifest, so an interrupted write leaves a checksum mismatch (refused on
    load), never a silently wrong index.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index_partial = folder / f".{INDEX_FILE}.partial"
    faiss.write_index(index, str(index_partial))
    manifest = {
        "factory": factory,
        "metric": METRIC,
        "search_params": dict(search_params),
        "ntotal": int(index.ntotal),
        "dim": int(index.d),
        "faiss_version": faiss.__version__,
        "id_mapping": dict(ids_info),
        "checksums": {INDEX_FILE: sha256_file(index_partial), **(vectors_sha256 or {})},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    manifest_partial = folder / f".{MANIFEST_FILE}.partial"
    manifest_partial.write_text(manifest_text(manifest))
    os.replace(index_partial, folder / INDEX_FILE)
    os.replace(manifest_partial, folder / MANIFEST_FILE)
    return manifest


def manifest_text(manifest: dict[str, Any]) -> str:
    """``index_manifest.json``'s exact text for ``manifest``."""
    return json.dumps(manifest, indent=2) + "\n"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed ``index_manifest.json`` of ``folder``."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise IntegrityError(f"{path}: index manifest is missing")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise IntegrityError(f"{path}: index manifest is not valid JSON") from error
    missing = {"metric", "ntotal", "dim", "search_params", "checksums"} - set(manifest)
    if missing or INDEX_FILE not in manifest["checksums"]:
        raise IntegrityError(
            f"{path}: index manifest lacks {sorted(missing) or [f'checksums.{INDEX_FILE}']}"
        )
    return manifest


def read_index(
    folder: Path, verify: bool = True, mmap: bool = False
) -> tuple[faiss.Index, dict[str, Any]]:
    """Load ``folder``'s index and manifest, checking the sha256 before FAISS reads a byte.

    FAISS does not validate its files, so a tampered one could crash the reader; with
    ``verify`` the file's checksum must match the manifest first. The index's metric,
    size and dimension must match the manifest, and its search params are re-applied.
    With ``mmap``, stored vectors (flat and refine codes) are memory-mapped, not read: a
    1M-vector index opens in a fraction of a second; the file must not change meanwhile.

    Raises:
        IntegrityError: the manifest or index file is missing, altered or inconsistent.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    path = folder / INDEX_FILE
    if verify:
        verify_file(path, manifest["checksums"][INDEX_FILE])
    elif not path.is_file():
        raise IntegrityError(f"{path}: file is missing")
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
    if manifest["metric"] != METRIC or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise IntegrityError(f"{path}: not an inner-product index (manifest: {manifest['metric']})")
    found, recorded = (index.ntotal, index.d), (manifest["ntotal"], manifest["dim"])
    if found != recorded:
        raise IntegrityError(
            f"{path}: index holds {found[0]} vectors of dim {found[1]}, "
            f"its manifest records {recorded[0]} of dim {recorded[1]}"
        )
    apply_search_params(index, manifest["search_params"])
    return index, manifest
