"""Does distillation help? Distilled vs plain projection over seeds, and the pipeline's time.

Targets (issue 4): on the default catalogue's test split, the distilled projection's
clip→clip nDCG@10 is at least 95% of the oracle's and above the plain ``projection``
(same code and budget, distillation off); ``projection_retriever`` (teacher scores, both
heads, corpus vectors, index) runs within 60 s. The figures come from the evaluation
report (the one place the test split is scored), with its paired interval of distilled -
plain per seed; the mean over several training seeds shows what the seed adds. The data,
labels and oracle stay fixed.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import measured, write_result
from benchmarks.scratch import ScratchProject
from expressive_retrieval.evaluation.retrieval import TASKS

SEEDS = (20261126, 1, 2)
SYSTEMS = ("projection_distilled", "projection", "oracle")


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "values": [round(v, 4) for v in values],
    }


def main() -> None:
    quiet = {"progress": False}
    with tempfile.TemporaryDirectory() as tmp:
        project = ScratchProject(
            Path(tmp) / "default",
            {
                "oracle_scorer": quiet,
                "projection_retriever": quiet,
                "evaluation": {"gates": {"fail_on_gate": False}},
            },
        )
        measured(
            "benchmarks.scratch:run_pipelines",
            root=str(project.root),
            pipelines=["synthetic_data", "labels_and_splits", "oracle_scorer"],
        )
        runs = []
        for seed in SEEDS:
            project.set_params({"seed": seed})
            run = measured(
                "benchmarks.scratch:run_pipelines",
                root=str(project.root),
                pipelines=["projection_retriever"],
            )
            measured(
                "benchmarks.scratch:run_pipelines",
                root=str(project.root),
                pipelines=["evaluation"],
            )
            report = project.load("evaluation_report")
            runs.append(
                {
                    "seed": seed,
                    "pipeline_wall_s": run["wall_s"],
                    "training_wall_s": {
                        name: project.load(f"{name}_training_metadata")["wall_time_s"]
                        for name in ("projection", "projection_ablation")
                    },
                    **{
                        system: {
                            task: report["tasks"][task]["systems"][system]["ndcg@10"]
                            for task in TASKS
                        }
                        for system in SYSTEMS
                    },
                    "distilled_minus_plain": {
                        task: next(
                            c
                            for c in report["comparisons"][task]
                            if (c["a"], c["b"]) == ("projection_distilled", "projection")
                        )
                        for task in TASKS
                    },
                }
            )
    ndcg = {
        system: {task: _summary([run[system][task] for run in runs]) for task in TASKS}
        for system in SYSTEMS
    }
    distilled = ndcg["projection_distilled"]["clip_to_clip"]["mean"]
    plain = ndcg["projection"]["clip_to_clip"]["mean"]
    oracle = ndcg["oracle"]["clip_to_clip"]["mean"]
    wall = max(run["pipeline_wall_s"] for run in runs)
    write_result(
        "distillation",
        {
            "seeds": list(SEEDS),
            "test_ndcg@10": ndcg,
            "distilled_over_oracle": round(distilled / oracle, 3),
            "distilled_minus_plain": round(distilled - plain, 4),
            "runs": runs,
            "max_pipeline_wall_s": wall,
            "targets": {
                "distilled_over_oracle_min": 0.95,
                "distilled_minus_plain_min": 0.0,
                "pipeline_wall_s_max": 60,
            },
            "passed": bool(distilled >= 0.95 * oracle and distilled > plain and wall <= 60),
        },
    )


if __name__ == "__main__":
    main()
