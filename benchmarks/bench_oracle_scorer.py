"""``oracle_scorer`` on the default catalogue: training time, quality, scoring throughput.

Targets (issue 3): nDCG@10 clip→clip at least 2x frozen cosine and above it for
clip→track, on the validation split (the oracle pipeline leaves the test split to
evaluation); training within 90 s on 2 cores; throughput in candidate pairs per second
(the figure the projection retriever is compared against).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import measured, write_result
from benchmarks.scratch import ScratchProject
from expressive_retrieval.data.segments import clip_refs
from expressive_retrieval.models import OracleConfig, OracleScorer


def _throughput(project: ScratchProject, repeats: int = 3) -> dict[str, float]:
    """Pairs/s of one query against every clip, and of every clip against every clip."""
    catalog = project.catalog()
    config = OracleConfig.from_dict(catalog.load("oracle_config"))
    model = OracleScorer.from_state(config, catalog.load("oracle_model")).eval()
    clips = catalog.load("clips")
    candidates = catalog.load("segments").clips(clip_refs(clips))
    best = {"one_query_pairs_per_s": 0.0, "all_pairs_cached_per_s": 0.0, "encode_clips_per_s": 0.0}
    for _ in range(repeats):
        started = time.perf_counter()
        model.score(candidates[0], candidates)
        best["one_query_pairs_per_s"] = max(
            best["one_query_pairs_per_s"], len(candidates) / (time.perf_counter() - started)
        )
        started = time.perf_counter()
        encoded = model.encode_clips(candidates)
        best["encode_clips_per_s"] = max(
            best["encode_clips_per_s"], len(candidates) / (time.perf_counter() - started)
        )
        started = time.perf_counter()
        model.score_many(encoded, encoded)
        best["all_pairs_cached_per_s"] = max(
            best["all_pairs_cached_per_s"], len(candidates) ** 2 / (time.perf_counter() - started)
        )
    return {k: round(v) for k, v in best.items()} | {
        "num_clips": len(candidates),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = ScratchProject(Path(tmp) / "default", {"oracle_scorer": {"progress": False}})
        measured(
            "benchmarks.scratch:run_pipelines",
            root=str(project.root),
            pipelines=["synthetic_data", "labels_and_splits"],
        )
        run = measured(
            "benchmarks.scratch:run_pipelines",
            root=str(project.root),
            pipelines=["oracle_scorer"],
        )
        metadata = project.load("oracle_training_metadata")
        report = project.load("oracle_eval_report")
        # The oracle's own report covers the validation split (test is evaluation's).
        val = report["splits"]["val"]["systems"]
        quality = {
            task: {
                "oracle_ndcg@10": round(val["oracle"][task]["ndcg@10"], 4),
                "cosine_ndcg@10": round(val["cosine"][task]["ndcg@10"], 4),
                "ratio": round(val["oracle"][task]["ndcg@10"] / val["cosine"][task]["ndcg@10"], 3),
            }
            for task in ("clip_to_clip", "clip_to_track")
        }
        faithfulness = report["splits"]["val"]["aspect_faithfulness"]["per_aspect"]
        throughput = _throughput(project)
    write_result(
        "oracle_scorer",
        {
            "pipeline_wall_s": run["wall_s"],
            "training_wall_s": metadata["wall_time_s"],
            "epochs_run": metadata["epochs_run"],
            "gate": report["gate"]["status"],
            "val": quality,
            "val_faithfulness": {a: round(v["diagonal"], 3) for a, v in faithfulness.items()},
            "val_faithfulness_margin": {a: round(v["margin"], 3) for a, v in faithfulness.items()},
            "throughput": throughput,
            "targets": {"clip_to_clip_ratio_min": 2.0, "training_wall_s_max": 90},
            "passed": bool(
                quality["clip_to_clip"]["ratio"] >= 2.0
                and quality["clip_to_track"]["ratio"] > 1.0
                and metadata["wall_time_s"] <= 90
                and all(np.asarray([v["margin"] for v in faithfulness.values()]) > 0)
            ),
        },
    )


if __name__ == "__main__":
    main()
