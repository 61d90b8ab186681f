"""``evaluation``: wall time and peak RSS of the whole pipeline on the default catalogue.

Target (issue 12): within 20 s on 2 cores, intervals and paired tests included; the widths
of the 95% intervals on nDCG@10 are recorded. The evaluation reads trained models, so it runs
on a copy of this checkout's ``data/`` when that holds a complete default run (``make
run``); otherwise the upstream pipelines are run first in the scratch project (not timed).
It then runs again with pooling forced (``pooling.above_clips: 0``, issue 17): the time of
each path and the largest difference of any reported metric between them. Last, a probe of
the pooled path alone at 10x the default test split (``SCALE_CLIPS``, synthetic vectors and
features, no trained model: the oracle's share is its pool size times its pairs per second).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from benchmarks.harness import measured, write_result
from benchmarks.scratch import REPO, ScratchProject

UPSTREAM = ["synthetic_data", "labels_and_splits", "oracle_scorer", "projection_retriever"]
TARGET_S = 20
SCALE_CLIPS = 3460  # 10x the default test split


def pooling_at_scale(num_clips: int, num_aspects: int = 5, seed: int = 0) -> dict:
    """Seconds of each pooled step on a synthetic split of ``num_clips`` (5 clips a track):
    pooling four vector systems and an index row, scoring them on the pool, their metrics."""
    import time

    import numpy as np
    import pandas as pd

    from expressive_retrieval.evaluation.pooling import judge_pool, system_scores
    from expressive_retrieval.evaluation.retrieval import per_query_report, split_view
    from expressive_retrieval.evaluation.scorers import FoundScorer, VectorScorer

    rng = np.random.default_rng(seed)
    ids = [f"c{i:07d}" for i in range(num_clips)]
    tracks = [f"t{i // 5:06d}" for i in range(num_clips)]
    clips = pd.DataFrame({"clip_id": ids, "track_id": tracks, "split": "test"})
    names = [f"f{a}" for a in range(num_aspects)]
    features = pd.DataFrame(rng.normal(size=(num_clips, num_aspects)), columns=names)
    relevance = {
        "aspects": names,
        "features": names,
        "feature_aspect": list(range(num_aspects)),
        "center": [0.0] * num_aspects,
        "scale": [1.0] * num_aspects,
        "bandwidth": 1.0,
        "thresholds": [0.5, 0.7, 0.85],
        "weights": [1.0] * num_aspects,
    }
    view = split_view(clips, features.assign(clip_id=ids), relevance, "test", pooled=True)
    weights = [1.0] * num_aspects
    scorers = {
        f"vectors_{i}": VectorScorer(
            rng.normal(size=(num_clips, num_aspects * 32)).astype(np.float32), num_aspects, weights
        )
        for i in range(4)
    }
    found = np.argsort(rng.random((num_clips, num_clips)), axis=1)[:, :1000]
    scorers["index"] = FoundScorer(found, rng.random(found.shape), num_clips)
    track_scoring = {"how": "topk_mean", "k": 2}
    started = time.perf_counter()
    judged = judge_pool(view, scorers, 100, 50, track_scoring)
    pooled = time.perf_counter()
    scores = {name: system_scores(judged, s, track_scoring) for name, s in scorers.items()}
    scored = time.perf_counter()
    for s in scores.values():
        per_query_report(judged, s.clip, s.track, s.retrieved, s.track_retrieved)
    return {
        "num_clips": num_clips,
        "pool_s": round(pooled - started, 1),
        "score_s": round(scored - pooled, 1),
        "metrics_s": round(time.perf_counter() - scored, 1),
        "mean_pool_size": judged.pooling["mean_pool_size"],
    }


def _latest_report(root: Path) -> dict:
    folder = root / "data/08_reporting/evaluation/evaluation_report.json"
    latest = sorted(folder.iterdir())[-1]
    return json.loads((latest / "evaluation_report.json").read_text())


def _largest_difference(report: dict, other: dict) -> dict[str, dict[str, float]]:
    """Per task and system, the largest absolute difference of a reported metric."""
    return {
        task: {
            name: round(
                max(
                    abs(value - other["tasks"][task]["systems"][name][m])
                    for m, value in metrics.items()
                ),
                6,
            )
            for name, metrics in block["systems"].items()
        }
        for task, block in report["tasks"].items()
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "default"
        ScratchProject(root, {"oracle_scorer": {"progress": False}})
        source = REPO / "data"
        reused = (source / "07_model_output/projection_retriever/clip_vectors.npy").is_dir()
        if reused:
            shutil.copytree(
                source,
                root / "data",
                ignore=shutil.ignore_patterns("kedro_viz", "09_export", "evaluation"),
            )
        else:
            measured("benchmarks.scratch:run_pipelines", root=str(root), pipelines=UPSTREAM)
        run = measured("benchmarks.scratch:run_pipelines", root=str(root), pipelines=["evaluation"])
        report = _latest_report(root)
        ScratchProject(root, create=False).set_params(
            {"evaluation": {"pooling": {"above_clips": 0}}}
        )
        pooled_run = measured(
            "benchmarks.scratch:run_pipelines", root=str(root), pipelines=["evaluation"]
        )
        pooled = _latest_report(root)
    scale = measured("benchmarks.bench_evaluation:pooling_at_scale", num_clips=SCALE_CLIPS)
    ndcg = {
        task: {name: round(m["ndcg@10"], 4) for name, m in block["systems"].items()}
        for task, block in report["tasks"].items()
    }
    write_result(
        "evaluation",
        {
            "data": "copy of data/" if reused else "fresh default run",
            "wall_s": run["wall_s"],
            "peak_rss_mb": run["peak_rss_mb"],
            "num_queries": {t: b["num_queries"] for t, b in report["tasks"].items()},
            "ndcg@10": ndcg,
            "ndcg@10_interval_width": {
                task: {
                    name: round(b["ndcg@10"]["high"] - b["ndcg@10"]["low"], 4)
                    for name, b in systems.items()
                }
                for task, systems in report["intervals"].items()
            },
            "interval_unit": report["uncertainty"],
            "real_differences": [f for f in report["findings"] if f.endswith("a real difference.")],
            "gates": {name: gate["status"] for name, gate in report["gates"].items()},
            "scoring_seconds": {k: v["scoring_seconds"] for k, v in report["timing"].items()},
            "pooled": {
                "wall_s": pooled_run["wall_s"],
                "peak_rss_mb": pooled_run["peak_rss_mb"],
                "judging": {t: b["judging"] for t, b in pooled["tasks"].items()},
                "oracle_scoring_seconds": pooled["timing"]["oracle"]["scoring_seconds"],
                "max_abs_metric_difference": _largest_difference(report, pooled),
                "at_10x_probe": scale,
            },
            "targets": {"wall_s_max": TARGET_S},
            "passed": run["wall_s"] <= TARGET_S,
        },
    )


if __name__ == "__main__":
    main()
