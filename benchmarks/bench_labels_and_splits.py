"""``labels_and_splits`` by catalogue size, with exact and nearest-neighbour candidates.

Sizes are synthetic ``num_groups`` (6 tracks each) at 1x, 10x and 40x the 30-group base
(180 / 1,800 / 7,200 tracks; set ``BENCH_LABELS_SCALES=1,10,40,100`` for 18,000 tracks,
about 9 GB of segments and half an hour to generate). Each size runs the pipeline with
``pairs.candidate_search: exact`` and ``ann`` (exact only up to ``BENCH_LABELS_EXACT_UP_TO``,
default 10x: it is the quadratic one), and measures the recall of the ``ann`` candidate
sets against the exact ones on the train split.

Targets: issue 2, 1x under 30 s (exact); issue 17,
``ann`` at 100x at most 10 min and 2 GB peak RSS, growing at most 15x from 10x to 100x,
candidate recall at least 0.95.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.harness import measured, write_result
from benchmarks.scratch import ScratchProject

BASE_GROUPS = 30
SEARCHES = ("exact", "ann")


def candidate_recall(root: str, split: str = "train") -> dict[str, float]:
    """Recall of the ``ann`` nearest and hard-negative sets against ``exact`` on ``split``."""
    from expressive_retrieval.data.candidates import find_candidates, split_clips
    from expressive_retrieval.data.relevance import RelevanceModel
    from expressive_retrieval.evaluation.baselines import mean_pooled_vectors

    project = ScratchProject(Path(root), create=False)
    clips, version = project.load("clips"), project.load("dataset_version")
    catalog = project.catalog()
    params, seed = catalog.load("params:labels_and_splits"), catalog.load("params:seed")
    model = RelevanceModel.from_dict(version["relevance"])
    features = project.load("clip_aspect_features").set_index("clip_id").loc[clips["clip_id"]]
    z = model.standardize(features)
    frozen = mean_pooled_vectors(project.load("segments"), clips, version["embedding"]["D"])
    rows = np.flatnonzero(clips["split"].to_numpy() == split)
    queries = np.arange(len(rows))
    found = {}
    for search in SEARCHES:
        cfg = params["pairs"] | {"candidate_search": search}
        index = split_clips(rows, z, frozen, clips["track_id"].to_numpy(), model, cfg, seed)
        found[search] = list(
            find_candidates(index, queries, model, cfg, seed, params["pair_block"])
        )

    def recall(kind: str) -> float:
        pairs = zip(found["ann"], found["exact"], strict=True)
        hits = sum(len(np.intersect1d(getattr(a, kind), getattr(e, kind))) for a, e in pairs)
        return round(hits / max(1, sum(len(getattr(e, kind)) for e in found["exact"])), 4)

    return {
        "split": split,
        "clips": len(rows),
        "nearest": recall("nearest"),
        "hard": recall("hard"),
    }


def main() -> None:
    scales = [int(s) for s in os.environ.get("BENCH_LABELS_SCALES", "1,10,40").split(",")]
    exact_up_to = int(os.environ.get("BENCH_LABELS_EXACT_UP_TO", "10"))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            root = Path(tmp) / f"x{scale}"
            project = ScratchProject(root, {"synthetic_data": {"num_groups": BASE_GROUPS * scale}})
            generate = measured(
                "benchmarks.scratch:run_pipelines", root=str(root), pipelines=["synthetic_data"]
            )
            run = {"tracks": BASE_GROUPS * scale * 6, "synthetic_data_wall_s": generate["wall_s"]}
            for search in SEARCHES if scale <= exact_up_to else ("ann",):
                project.set_params({"labels_and_splits": {"pairs": {"candidate_search": search}}})
                labels = measured(
                    "benchmarks.scratch:run_pipelines",
                    root=str(root),
                    pipelines=["labels_and_splits"],
                )
                run[search] = {"wall_s": labels["wall_s"], "peak_rss_mb": labels["peak_rss_mb"]}
            if scale <= exact_up_to:
                run["recall"] = measured(
                    "benchmarks.bench_labels_and_splits:candidate_recall", root=str(root)
                )["value"]
            runs[f"{scale}x"] = run
    ann = {scale: run["ann"] for scale, run in runs.items()}
    growth = (
        round(ann["100x"]["wall_s"] / ann["10x"]["wall_s"], 2)
        if {"10x", "100x"} <= set(ann)
        else None
    )
    recalls = [r["recall"] for r in runs.values() if "recall" in r]
    write_result(
        "labels_and_splits",
        {
            "runs": runs,
            "ann_wall_growth_10x_to_100x": growth,
            "targets": {
                "exact_wall_s_1x_max": 30,
                "ann_wall_s_100x_max": 600,
                "ann_peak_rss_mb_100x_max": 2048,
                "ann_wall_growth_10x_to_100x_max": 15,
                "candidate_recall_min": 0.95,
            },
            "passed": runs["1x"]["exact"]["wall_s"] < 30
            and all(min(r["nearest"], r["hard"]) >= 0.95 for r in recalls)
            and (
                "100x" not in ann
                or (
                    ann["100x"]["wall_s"] <= 600
                    and ann["100x"]["peak_rss_mb"] <= 2048
                    and growth is not None
                    and growth <= 15
                )
            ),
        },
    )


if __name__ == "__main__":
    main()
