"""``serving``: what the consumer gets — install size, verified bundle load, query latency.

* ``install``: the wheel installed without extras into a fresh virtual environment: time
  (pip's cache warm), size of what it adds, and the packages it pulls in.
* ``default_bundle``: the newest bundle under ``data/09_export`` (``make run`` writes it):
  verified ``load_bundle`` in a fresh process; single-query latency p50/p99 of embed +
  search (clips, and tracks) on one thread, queries being the test clips' real segments;
  batched throughput (embed + search, batches of 256, 2 threads).
* ``million``: the same model over a 1M-clip corpus (``bench_ann``'s generated clips
  through the trained head, 10 alike per track: 100k tracks) behind the large-corpus index
  of ``conf/base`` (``index.large`` at 1M), as a complete bundle: load with
  ``verify=False`` and ``True``; clip and track latency; clip recall@10 against exact
  search and track recall@10 against exhaustive track scoring for several
  ``candidates``; throughput of one ``Retriever`` shared by 1, 2, 4 and 8 threads.
* ``s3``: publish the default bundle to a local S3 server (SeaweedFS), load it (download
  into an empty cache, verify), and load it again from the cache.

Targets (issues 6, 16): verified load of the default bundle < 2 s; at 1M clips, clip p99
(embed + search) <= 2 ms and track p99 <= 5 ms with clip and track recall@10 >= 0.95,
single thread; 1M-clip load < 0.5 s with ``verify=False``, <= 2.2 s with ``verify=True``;
throughput at 4 threads >= 3x one thread (needs 4 or more cores: ``cpu_count`` is
recorded, and the target is not judged on fewer).
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
from benchmarks.scratch import REPO, base_parameters

EXPORT = REPO / "data" / "09_export"
SEGMENTS = REPO / "data" / "01_raw" / "segments"
MILLION, CLIPS_PER_TRACK, TRAIN_SIZE = 1_000_000, 10, 100_000
QUERIES, BATCH, K, THREADS = 300, 256, 10, 2
RECALL_QUERIES, CANDIDATES = 100, (None, 200, 400, 800, 3200)
THREAD_COUNTS, THREAD_QUERIES = (1, 2, 4, 8), 400
TARGET_LOAD_S, TARGET_CLIP_P99_MS, TARGET_TRACK_P99_MS, TARGET_RECALL = 2.0, 2.0, 5.0, 0.95
TARGET_MILLION_LOAD_S = {"verify_false": 0.5, "verify_true": 2.2}
TARGET_THREAD_SPEEDUP, THREAD_CORES = 3.0, 4


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


def load_time(bundle: str, repeats: int = 5, verify: bool = True) -> dict[str, float]:
    """Import time, first load, median of ``repeats`` more (in a fresh process: this
    module imports only numpy, so ``import_s`` is the serving API's own)."""
    started = time.perf_counter()
    from expressive_retrieval.serving import load_bundle

    imported = time.perf_counter() - started
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        load_bundle(bundle, verify=verify)
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
        _warm(search, queries)
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


def _percentiles(seconds: list[float]) -> dict[str, float]:
    p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}


def _warm(search: Any, queries: list[Any]) -> None:
    """Answer every query once: the index's vectors are memory-mapped, and the first
    queries after a load page them in (timed runs measure the steady state)."""
    for query in queries:
        search(query, k=K)


def recall(bundle: str, space_path: str) -> dict[str, Any]:
    """Clip search against exact search, and track search against exhaustive track
    scoring (every clip scored, aggregated per track as the bundle's ``track_scoring``)
    for each ``candidates`` setting: recall@``K`` and single-thread latency of the search
    alone. Queries are held-out clips generated like the corpus (``bench_ann``'s
    ``aspect_vectors``, another seed), with random aspect weights."""
    import faiss

    from benchmarks.bench_ann import aspect_vectors, load_space
    from expressive_retrieval.serving import load_bundle
    from expressive_retrieval.vectors.aspects import weight_query_vectors
    from expressive_retrieval.vectors.track_scores import aggregate_to_tracks

    faiss.omp_set_num_threads(1)
    retriever = load_bundle(bundle, verify=False)
    vectors = aspect_vectors(load_space(space_path), RECALL_QUERIES, seed=7)
    _warm(retriever.search_tracks, list(vectors))
    rng = np.random.default_rng(1)
    weights = rng.dirichlet(np.ones(len(retriever.aspects)), len(vectors))
    weighted = weight_query_vectors(vectors, weights, len(retriever.aspects))
    corpus = np.asarray(retriever.clip_vectors)
    exact_clips, exact_tracks = [], []
    for query in weighted:
        clip_scores = corpus @ query
        exact_clips.append(set(np.argpartition(-clip_scores, K)[:K].tolist()))
        scores = aggregate_to_tracks(
            clip_scores[None], retriever._track_of, len(retriever.track_ids),
            **retriever.track_scoring,
        )[0]  # fmt: skip
        exact_tracks.append(set(np.argpartition(-scores, K)[:K].tolist()))
    clip_rows = {row: i for i, row in enumerate(retriever.clip_ids.to_pylist())}

    def measure(search: Any, truths: list[set[int]], code: Any) -> dict[str, float]:
        found, times = [], []
        for vector, w, truth in zip(vectors, weights, truths, strict=True):
            started = time.perf_counter()
            hits = search(vector, w)
            times.append(time.perf_counter() - started)
            found.append(len({code(h) for h in hits} & truth) / K)
        return {"recall_at_k": round(float(np.mean(found)), 4), **_percentiles(times)}

    out: dict[str, Any] = {"queries": len(vectors), "k": K}
    out["clips"] = measure(
        lambda v, w: retriever.search_clips(v, k=K, weights=w), exact_clips,
        lambda h: clip_rows[h.id],
    )  # fmt: skip
    out["tracks"] = {
        "default" if candidates is None else str(candidates): measure(
            lambda v, w, c=candidates: retriever.search_tracks(v, k=K, weights=w, candidates=c),
            exact_tracks,
            lambda h: int(np.searchsorted(retriever.track_ids, h.id)),
        )
        for candidates in CANDIDATES
    }
    return out


def thread_throughput(bundle: str, queries_from: str) -> dict[str, Any]:
    """Queries/s (embed + clip search, and embed + track search) of one ``Retriever``
    shared by 1, 2, 4 and 8 threads, each thread answering one query at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    from expressive_retrieval.serving import load_bundle

    faiss.omp_set_num_threads(1)  # parallelism from the request threads only
    retriever = load_bundle(bundle, verify=False)
    segments = _query_segments(Path(queries_from))
    queries = [segments[i % len(segments)] for i in range(THREAD_QUERIES)]
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "queries": len(queries)}
    for kind in ("clips", "tracks"):
        search = getattr(retriever, f"search_{kind}")
        _warm(search, queries)
        rates = {}
        for threads in THREAD_COUNTS:
            # OpenMP's thread count is per thread: set it in each worker too.
            with ThreadPoolExecutor(
                threads, initializer=faiss.omp_set_num_threads, initargs=(1,)
            ) as pool:
                started = time.perf_counter()
                list(pool.map(lambda q, s=search: s(q, k=K), queries))
                rates[str(threads)] = round(len(queries) / (time.perf_counter() - started), 1)
        out[kind] = {
            "qps": rates,
            "speedup": {n: round(r / rates["1"], 2) for n, r in rates.items()},
        }
    return out


def s3_round_trip(bundle: str) -> dict[str, Any]:
    """Publish ``bundle`` to a local SeaweedFS S3 server, load it into an empty cache
    (download + full verify + load), then load it again from the cache (full verify)."""
    import s3fs

    from benchmarks.s3_server import SeaweedS3
    from expressive_retrieval.serving import load_bundle
    from expressive_retrieval.serving.remote import publish_bundle

    with tempfile.TemporaryDirectory() as folder:
        server = SeaweedS3(Path(folder) / "server").start()
        try:
            os.environ.update(server.env)
            s3fs.S3FileSystem().mkdir("bundles")
            started = time.perf_counter()
            landed = publish_bundle(bundle, "s3://bundles/expressive-retrieval")
            published = time.perf_counter() - started
            cache = Path(folder) / "cache"
            times = {}
            for name in ("download_and_load_s", "cached_load_s"):
                started = time.perf_counter()
                load_bundle("s3://bundles/expressive-retrieval", latest=True, cache_dir=cache)
                times[name] = round(time.perf_counter() - started, 3)
        finally:
            server.stop()
    return {
        "bundle_mb": _size_mb(Path(bundle)),
        "publish_s": round(published, 3),
        **times,
        "bundle_sha256": landed["bundle_sha256"],
    }


def million_bundle(source: str, folder: str, space_path: str) -> dict[str, Any]:
    """The ``source`` bundle with its corpus replaced by 1M generated clips (``bench_ann``'s
    projected mixes of real clips, ``CLIPS_PER_TRACK`` alike per track) and the ANN index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.bench_ann import aspect_vectors, load_space
    from expressive_retrieval.serving.bundle import FILES, MANIFEST_FILE, PROJECTION, write_manifest
    from expressive_retrieval.vectors.aspects import track_vectors
    from expressive_retrieval.vectors.index import (
        VECTORS_CONTENT,
        build_index,
        large_index_config,
        vectors_digest,
        write_index,
    )

    target = Path(folder)
    shutil.copytree(source, target)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    (target / MANIFEST_FILE).unlink()
    space = load_space(space_path)
    vectors = aspect_vectors(space, MILLION, seed=1, group=CLIPS_PER_TRACK)
    dim, aspects = vectors.shape[1], len(space["config"]["aspects"])
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
    np.save(
        target / FILES["track_vectors"], track_vectors(vectors, track, len(track_names), aspects)
    )
    pq.write_table(pa.table({"track_id": track_names}), target / FILES["track_ids"])
    started = time.perf_counter()
    large = base_parameters("projection_retriever")["projection_retriever"]["index"]["large"]
    factory, search_params = large_index_config(MILLION, dim, large)
    index = build_index(vectors, dim, factory, search_params, TRAIN_SIZE)
    built = time.perf_counter() - started
    ids = {"kind": "row", "ids_file": "clip_ids.parquet", "id_column": "clip_id"}
    checksums = {VECTORS_CONTENT: vectors_digest(vectors)}
    write_index(index, target / PROJECTION, checksums, ids, factory, search_params)
    ann = {"factory": factory, "search_params": search_params}
    manifest["serving"]["index"] = {**ann, "ntotal": MILLION}
    manifest["serving"]["vector_dim"] = dim
    keep = {k: v for k, v in manifest.items() if k not in {"files", "schema_version"}}
    keep["bundle_version"] = f"{manifest['bundle_version']}-1M"
    write_manifest(target, keep)
    return {"index": ann, "index_build_s": round(built, 1), "bundle_mb": _size_mb(target)}


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
    result["s3"] = measured("benchmarks.bench_serving:s3_round_trip", bundle=default)["value"]
    with tempfile.TemporaryDirectory() as folder:
        from benchmarks.bench_ann import prepare_space

        space = str(prepare_space(Path(folder)))
        big = str(Path(folder) / "bundle")
        built = measured(
            "benchmarks.bench_serving:million_bundle", source=default, folder=big, space_path=space
        )
        loads = {
            f"verify_{str(verify).lower()}": measured(
                "benchmarks.bench_serving:load_time", bundle=big, repeats=2, verify=verify
            )["value"]
            for verify in (False, True)
        }
        costs = measured("benchmarks.bench_serving:query_costs", bundle=big, queries_from=default)
        recall = measured("benchmarks.bench_serving:recall", bundle=big, space_path=space)
        threads = measured(
            "benchmarks.bench_serving:thread_throughput", bundle=big, queries_from=default
        )
        result["million"] = {
            "vectors": MILLION,
            "clips_per_track": CLIPS_PER_TRACK,
            **built["value"],
            "load": loads,
            "peak_rss_mb_loaded_and_querying": costs["peak_rss_mb"],
            "queries": costs["value"],
            "recall": recall["value"],
            "threads": threads["value"],
        }
    result["load_average"] = {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)}
    result["targets"] = _targets(result)
    result["passed"] = all(t["passed"] is not False for t in result["targets"].values())
    write_result("serving", result)


def _targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its measured value and verdict (None: not judged on this machine)."""
    million = result["million"]
    queries, recall = million["queries"], million["recall"]
    speedup = million["threads"]["clips"]["speedup"]["4"]
    cores = million["threads"]["cpu_count"] or 1
    checks = {
        "default_bundle_verified_load_s": (
            result["default_bundle"]["load"]["first_load_s"],
            "<",
            TARGET_LOAD_S,
        ),
        "million_clip_p99_ms": (queries["clips"]["latency_ms"]["p99"], "<=", TARGET_CLIP_P99_MS),
        "million_track_p99_ms": (queries["tracks"]["latency_ms"]["p99"], "<=", TARGET_TRACK_P99_MS),
        "million_clip_recall_at_10": (recall["clips"]["recall_at_k"], ">=", TARGET_RECALL),
        "million_track_recall_at_10": (
            recall["tracks"]["default"]["recall_at_k"],
            ">=",
            TARGET_RECALL,
        ),
        **{
            f"million_load_s_{name}": (million["load"][name]["load_s_median"], "<=", limit)
            for name, limit in TARGET_MILLION_LOAD_S.items()
        },
        "threads_4_speedup": (speedup, ">=", TARGET_THREAD_SPEEDUP),
    }
    out = {}
    for name, (value, op, limit) in checks.items():
        ok = value < limit if op == "<" else value <= limit if op == "<=" else value >= limit
        judged = name != "threads_4_speedup" or cores >= THREAD_CORES
        out[name] = {"value": value, "target": f"{op} {limit}", "passed": ok if judged else None}
    return out


if __name__ == "__main__":
    main()
