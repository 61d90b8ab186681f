"""``serving``: what the consumer gets — install size, verified bundle load, query latency.

* ``install``: the wheel installed without extras into a fresh virtual environment: time
  (pip's cache warm), size of what it adds, and the packages it pulls in.
* ``default_bundle``: the newest bundle under ``data/09_export`` (``make run`` writes it):
  verified ``load_bundle`` in a fresh process; single-query latency p50/p99 of embed +
  search (clips, and tracks) on one thread, queries being the test clips' real segments;
  batched throughput (embed + search, batches of 256, 2 threads).
* ``million``: the same model over a 1M-clip corpus (``bench_ann``'s clustered vectors)
  behind the shipped ANN configuration, as a complete bundle: load, latency, throughput.

Targets (issue 6): verified load of the default bundle < 2 s; single-query p99 (embed +
search) < 20 ms at 1M vectors with the shipped ANN configuration, on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import measured, write_result
from benchmarks.scratch import REPO

EXPORT = REPO / "data" / "09_export"
SEGMENTS = REPO / "data" / "01_raw" / "segments"
ANN = {"factory": "IVF2048,PQ80x4fs,RFlat", "search_params": {"nprobe": 256, "k_factor_rf": 32}}
MILLION, CLIPS_PER_TRACK, TRAIN_SIZE = 1_000_000, 20, 100_000
QUERIES, BATCH, K, THREADS = 300, 256, 10, 2
TARGET_LOAD_S, TARGET_P99_MS = 2.0, 20.0


def _size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def install() -> dict[str, Any]:
    """Wheel build and fresh-venv install: seconds, MB added, packages."""
    from benchmarks.wheel import build_wheel, run, serving_venv

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        wheel = build_wheel(root / "wheel")
        run(sys.executable, "-m", "venv", root / "empty")
        started = time.perf_counter()
        python = serving_venv(root / "venv", wheel)
        seconds = time.perf_counter() - started
        packages = json.loads(run(python, "-m", "pip", "list", "--format=json"))
        site = next((root / "venv" / "lib").glob("python*/site-packages"))
        sizes = {p.name: _size_mb(p) for p in site.iterdir() if p.is_dir()}
        return {
            "wheel_kb": round(wheel.stat().st_size / 1024, 1),
            "install_s_cached": round(seconds, 1),
            "venv_mb": _size_mb(root / "venv"),
            "added_mb": round(_size_mb(root / "venv") - _size_mb(root / "empty"), 1),
            "largest_mb": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:5]),
            "packages": {p["name"]: p["version"] for p in packages},
        }


def _query_segments(bundle: Path) -> list[np.ndarray]:
    """Real segments ``[S, L, D]`` of up to ``QUERIES`` test clips of the default catalogue."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(bundle / "projection_retriever" / "clip_ids.parquet").read().to_pylist()
    test = [row for row in table if row["split"] == "test"][:QUERIES]
    if not SEGMENTS.is_dir():
        raise RuntimeError(f"{SEGMENTS} is missing: run `make run` first")
    return [
        np.load(SEGMENTS / f"{row['track_id']}.npy", mmap_mode="r")[
            row["segment_start"] : row["segment_end"]
        ]
        for row in test
    ]


def load_time(bundle: str, repeats: int = 5) -> dict[str, float]:
    """Import time, first verified load, median of ``repeats`` more (in a fresh process:
    this module imports only numpy, so ``import_s`` is the serving API's own)."""
    started = time.perf_counter()
    from expressive_retrieval.serving import load_bundle

    imported = time.perf_counter() - started
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        load_bundle(bundle, verify=True)
        times.append(time.perf_counter() - started)
    return {
        "import_s": round(imported, 3),
        "first_load_s": round(times[0], 3),
        "load_s_median": round(float(np.median(times[1:])), 3),
    }


def query_costs(bundle: str, queries_from: str) -> dict[str, Any]:
    """Single-query p50/p99 ms (1 thread) and batched queries/s (``THREADS``), embed included."""
    import faiss

    from expressive_retrieval.serving import load_bundle

    retriever = load_bundle(bundle)
    queries = _query_segments(Path(queries_from))
    weights = np.random.default_rng(0).dirichlet(np.ones(len(retriever.aspects)), len(queries))
    out: dict[str, Any] = {"queries": len(queries), "k": K}
    for kind, search in (("clips", retriever.search_clips), ("tracks", retriever.search_tracks)):
        faiss.omp_set_num_threads(1)
        search(queries[0], k=K)  # warm up
        times = []
        for query, w in zip(queries, weights, strict=True):
            started = time.perf_counter()
            search(query, k=K, weights=w)
            times.append(time.perf_counter() - started)
        p50, p99 = np.percentile(np.array(times) * 1000, [50, 99])
        faiss.omp_set_num_threads(THREADS)
        batch = getattr(retriever, f"search_{kind}_batch")
        started = time.perf_counter()
        for i in range(0, len(queries), BATCH):
            batch(queries[i : i + BATCH], k=K, weights=weights[i : i + BATCH])
        rate = len(queries) / (time.perf_counter() - started)
        out[kind] = {
            "latency_ms": {"p50": round(float(p50), 3), "p99": round(float(p99), 3)},
            "batched_qps": round(rate, 1),
        }
    started = time.perf_counter()
    embedded = len(retriever.embed_batch(queries[:BATCH]))
    out["embed_only_batched_qps"] = round(embedded / (time.perf_counter() - started), 1)
    return out


def million_bundle(source: str, folder: str) -> dict[str, Any]:
    """The ``source`` bundle with its corpus replaced by 1M clustered vectors and the ANN index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.bench_ann import DIM, aspect_space, aspect_vectors
    from expressive_retrieval.serving.bundle import FILES, MANIFEST_FILE, PROJECTION, write_manifest
    from expressive_retrieval.vectors.aspects import track_vectors
    from expressive_retrieval.vectors.index import (
        VECTORS_CONTENT,
        build_index,
        vectors_digest,
        write_index,
    )

    target = Path(folder)
    shutil.copytree(source, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    (target / MANIFEST_FILE).unlink()
    vectors = aspect_vectors(aspect_space(), MILLION, seed=1)
    np.save(target / FILES["clip_vectors"], vectors)
    track = np.arange(MILLION) // CLIPS_PER_TRACK
    track_names = [f"trk{t:06d}" for t in range(track[-1] + 1)]
    start = (np.arange(MILLION) % CLIPS_PER_TRACK) * 3
    splits = np.array(["train"] * 5 + ["val", "test"])[track % 7]
    pq.write_table(
        pa.table(
            {
                "clip_id": [f"{track_names[t]}:{s}" for t, s in zip(track, start, strict=True)],
                "track_id": [track_names[t] for t in track],
                "segment_start": start,
                "segment_end": start + 6,
                "split": splits,
            }
        ),
        target / FILES["clip_ids"],
    )
    np.save(target / FILES["track_vectors"], track_vectors(vectors, track, len(track_names), 5))
    pq.write_table(pa.table({"track_id": track_names}), target / FILES["track_ids"])
    started = time.perf_counter()
    index = build_index(vectors, DIM, ANN["factory"], ANN["search_params"], TRAIN_SIZE)
    built = time.perf_counter() - started
    ids = {"kind": "row", "ids_file": "clip_ids.parquet", "id_column": "clip_id"}
    checksums = {VECTORS_CONTENT: vectors_digest(vectors)}
    write_index(index, target / PROJECTION, checksums, ids, ANN["factory"], ANN["search_params"])
    manifest["serving"]["index"] = {**ANN, "ntotal": MILLION}
    manifest["serving"]["vector_dim"] = DIM
    keep = {k: v for k, v in manifest.items() if k not in {"files", "schema_version"}}
    keep["bundle_version"] = f"{manifest['bundle_version']}-1M"
    write_manifest(target, keep)
    return {"index_build_s": round(built, 1), "bundle_mb": _size_mb(target)}


def main() -> None:
    bundles = sorted(p for p in EXPORT.glob("*") if p.is_dir() and not p.name.startswith("."))
    if not bundles:
        raise SystemExit(f"no bundle under {EXPORT}: run `make run` first")
    default = str(bundles[-1])
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {"default_bundle": {"path": default}}
    result["install"] = measured("benchmarks.bench_serving:install")["value"]
    result["default_bundle"]["load"] = measured(
        "benchmarks.bench_serving:load_time", bundle=default
    )["value"]
    costs = measured("benchmarks.bench_serving:query_costs", bundle=default, queries_from=default)
    result["default_bundle"]["queries"] = costs["value"]
    with tempfile.TemporaryDirectory() as folder:
        big = str(Path(folder) / "bundle")
        built = measured("benchmarks.bench_serving:million_bundle", source=default, folder=big)
        load = measured("benchmarks.bench_serving:load_time", bundle=big, repeats=2)
        costs = measured("benchmarks.bench_serving:query_costs", bundle=big, queries_from=default)
        result["million"] = {
            "vectors": MILLION,
            "clips_per_track": CLIPS_PER_TRACK,
            "index": ANN,
            **built["value"],
            "load": load["value"],
            "peak_rss_mb_loaded_and_querying": costs["peak_rss_mb"],
            "queries": costs["value"],
        }
    load_s = result["default_bundle"]["load"]["first_load_s"]
    p99 = result["million"]["queries"]["clips"]["latency_ms"]["p99"]
    result["load_average"] = {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)}
    result["targets"] = {
        "default_bundle_verified_load_s_max": TARGET_LOAD_S,
        "million_single_query_p99_ms_max": TARGET_P99_MS,
    }
    result["passed"] = bool(load_s < TARGET_LOAD_S and p99 < TARGET_P99_MS)
    write_result("serving", result)


if __name__ == "__main__":
    main()
