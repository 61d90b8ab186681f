"""Projection retriever cost: corpus projection vs raw reads, memory at 1x/10x, cost per candidate.

Targets (issue 4): projecting the corpus takes at most 2x just reading its segments
(same run); peak RSS of projection + indexing at 10x the catalogue at most 1.1x that at
1x; scoring a candidate at least 1000x cheaper than with the oracle. Throughput does not
depend on trained weights, so freshly initialised models at the default shapes are used.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import measured, write_result
from benchmarks.random_models import uniform_config
from benchmarks.scratch import ScratchProject, base_parameters
from expressive_retrieval.data.segments import SegmentStore, clip_refs
from expressive_retrieval.datasets import VectorsDataset
from expressive_retrieval.models import OracleConfig, OracleScorer, ProjectionConfig, ProjectionHead
from expressive_retrieval.pipelines.projection_retriever.nodes import project_corpus
from expressive_retrieval.vectors.index import build_index, search

DEFAULT_GROUPS = base_parameters("synthetic_data")["synthetic_data"]["num_groups"]
PARAMS = base_parameters("projection_retriever")["projection_retriever"]


def project_and_index(root: str) -> dict[str, float]:
    """Project every clip (streamed), write the vectors, build a Flat index (measured)."""
    project = ScratchProject(Path(root), create=False)
    catalog = project.catalog()
    clips, segments = catalog.load("clips"), catalog.load("segments")
    layout = catalog.load("dataset_version")["embedding"]
    head = ProjectionHead(uniform_config(ProjectionConfig, layout["L"], layout["D"]))
    state, config, scale = head.state_dict(), head.config.to_dict(), catalog.load("params:scale")
    blocks, _ = project_corpus(state, config, segments, clips, PARAMS, scale)
    path = Path(root) / "bench_vectors.npy"
    VectorsDataset(str(path)).save(blocks)
    vectors = VectorsDataset(str(path)).load()
    index = build_index(vectors, vectors.shape[1], "Flat")
    return {"clips": len(clips), "ntotal": int(index.ntotal)}


def read_vs_project(root: str) -> dict[str, float]:
    """Seconds to read every clip's segments, and to read and project them (same run)."""
    catalog = ScratchProject(Path(root), create=False).catalog()
    clips, store = catalog.load("clips"), catalog.load("segments")
    layout = catalog.load("dataset_version")["embedding"]
    head = ProjectionHead(uniform_config(ProjectionConfig, layout["L"], layout["D"])).eval()
    refs, chunk = clip_refs(clips), PARAMS["corpus"]["chunk_size"]
    timings = {"read_s": [], "project_s": []}
    for _ in range(3):
        started = time.perf_counter()
        for block in store.iter_clip_chunks(refs, chunk):
            block.sum(dtype=np.float32)  # touch every value, as projection must
        timings["read_s"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for block in store.iter_clip_chunks(refs, chunk):
            head.embed_numpy(block)
        timings["project_s"].append(time.perf_counter() - started)
    best = {k: min(v) for k, v in timings.items()}
    return best | {"clips": len(refs), "clips_per_s": len(refs) / best["project_s"]}


def cost_per_candidate(store: SegmentStore, clips, num_layers: int, dim: int) -> dict[str, float]:
    """Oracle pairs/s (candidates encoded, as a fresh corpus needs) vs index candidates/s."""
    candidates = store.clips(clip_refs(clips))
    oracle = OracleScorer(uniform_config(OracleConfig, num_layers, dim)).eval()
    started = time.perf_counter()
    oracle.score(candidates[0], candidates)
    oracle_rate = len(candidates) / (time.perf_counter() - started)
    # Projection: the query is embedded once; candidates are scored by exact inner product.
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((200_000, 80)).astype(np.float32)
    index = build_index(corpus, 80, "Flat")
    queries = rng.standard_normal((64, 80)).astype(np.float32)
    started = time.perf_counter()
    search(index, queries, 10)
    projection_rate = len(queries) * len(corpus) / (time.perf_counter() - started)
    return {
        "oracle_candidates_per_s": round(oracle_rate),
        "projection_candidates_per_s": round(projection_rate),
        "ratio": round(projection_rate / oracle_rate),
    }


def main() -> None:
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 10):
            root = Path(tmp) / f"x{scale}"
            ScratchProject(root, {"synthetic_data": {"num_groups": DEFAULT_GROUPS * scale}})
            measured(
                "benchmarks.scratch:run_pipelines",
                root=str(root),
                pipelines=["synthetic_data", "labels_and_splits"],
            )
            runs[f"{scale}x"] = measured(
                "benchmarks.bench_projection_retriever:project_and_index", root=str(root)
            )
        rates = read_vs_project(str(Path(tmp) / "x1"))
        catalog = ScratchProject(Path(tmp) / "x1", create=False).catalog()
        layout = catalog.load("dataset_version")["embedding"]
        cost = cost_per_candidate(
            catalog.load("segments"), catalog.load("clips"), layout["L"], layout["D"]
        )
    rss_ratio = runs["10x"]["peak_rss_mb"] / runs["1x"]["peak_rss_mb"]
    project_ratio = rates["project_s"] / rates["read_s"]
    write_result(
        "projection_retriever",
        {
            "corpus_projection": {
                **{k: round(v, 3) for k, v in rates.items()},
                "project_over_read": round(project_ratio, 3),
            },
            "projection_and_index_runs": runs,
            "peak_rss_ratio_10x_over_1x": round(rss_ratio, 3),
            "cost_per_candidate": cost,
            "targets": {
                "project_over_read_max": 2.0,
                "peak_rss_ratio_max": 1.1,
                "cost_ratio_min": 1000,
            },
            "passed": bool(project_ratio <= 2.0 and rss_ratio <= 1.1 and cost["ratio"] >= 1000),
        },
    )


if __name__ == "__main__":
    main()
