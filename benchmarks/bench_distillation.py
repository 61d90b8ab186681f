"""Does distillation help, in several worlds? Oracle, distilled and plain projection over seeds.

Targets (issue 13): in every world, on the test split's clip→clip task
(``TARGET_TASK``), the oracle leads the distilled projection and the distilled projection
leads the plain ``projection`` (same code and budget, distillation off) by at least
``MIN_GAIN`` nDCG@10, each with a paired 95% interval that excludes 0. Clip→track is
measured and tabled the same way, without a target.

A world is a catalogue made by ``synthetic_data`` with its own parameters (``WORLDS``);
its data, labels and splits are made once. Per training seed the oracle and both
projection heads are trained and the test split is measured (``evaluation`` up to its
per-query table). The differences are pooled over seeds per independent unit (the split's
groups, ``checks.uncertainty.unit``): each unit's mean per seed, averaged over the seeds;
the project's group bootstrap (``Resampler``) then gives the paired interval of the
difference of the unit means.

``DISTILLATION_WORLDS=a,b`` runs those worlds only (writes ``distillation_a_b.json``, so
worlds can run side by side), ``DISTILLATION_CONF=full`` with the parameter set of
``conf/full`` over base (the full-budget run, ``kedro run --env=full``; adds ``_full``)
and ``DISTILLATION_QUICK=1`` one seed (a smoke check, adds ``_quick``).
``python -m benchmarks.bench_distillation table [json ...]`` prints the markdown table of
the worlds of one or more results (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.harness import RESULTS, measured, write_result
from benchmarks.scratch import (
    REPO,
    ScratchProject,
    base_parameters,
    deep_merge,
    parameter_groups,
)
from expressive_retrieval.evaluation.retrieval import TASKS
from expressive_retrieval.evaluation.uncertainty import Resampler
from tests.real_catalogue import ASPECTS, NO_EVIDENCE

# Each world: parameter overrides of the default project (40 groups, 180 tracks, test split
# 12 groups). ``other_aspects``: another data seed, three aspects with other names, proxies
# and aggregates (the real-shaped test catalogue's), one without discovery evidence (layer
# probes instead). ``25x1024``: MERT-v1-330M's shape, another data seed; bands twice as wide
# in layers, so neighbouring aspects overlap as much as in 13 layers; 10-14 segments per
# track instead of 14-22 (the same 40 groups), as a segment costs 2.6x the default's.
WORLDS: dict[str, dict[str, Any]] = {
    "default": {},
    "other_aspects": {
        "aspects": ASPECTS,
        "synthetic_data": {"seed": 8, "no_discovery": [NO_EVIDENCE]},
    },
    "25x1024": {
        "synthetic_data": {
            "seed": 9,
            "num_layers": 25,
            "dim": 1024,
            "band_width": 2.0,
            "min_segments": 10,
            "max_segments": 14,
        }
    },
}
TRAINING_SEEDS = (20261126, 1, 2)  # the first is the project's own seed
SYSTEMS = ("oracle", "projection_distilled", "projection")
PAIRS = (("oracle", "projection_distilled"), ("projection_distilled", "projection"))
METRIC = "ndcg@10"
MIN_GAIN = 0.03
TARGET_TASK = "clip_to_clip"
TRAINING = ["oracle_scorer", "projection_retriever", "evaluation"]
MEASURED_UP_TO = ["measure_systems_node"]  # writes evaluation_per_query
OVERRIDES = {
    "oracle_scorer": {"progress": False, "gate": {"fail_on_gate": False}},
    "projection_retriever": {"progress": False},
}


def parameter_set(name: str) -> dict[str, Any]:
    """The parameter groups of ``conf/<name>`` (none for ``base``): each replaces base's."""
    if name == "base":
        return {}
    groups = parameter_groups(REPO / "conf" / name)
    if not groups:
        sys.exit(f"DISTILLATION_CONF: no parameters*.yml in {REPO / 'conf' / name}")
    return groups


def unit_scores(per_query: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """``[unit, system]`` table: each unit's mean ``metric`` per seed, averaged over seeds.

    Args:
        per_query: one task's rows with ``seed``, ``unit``, ``system`` and ``metric``
            (NaN: a query left out of every mean).
    """
    per_seed = per_query.groupby(["system", "seed", "unit"])[metric].mean()
    return per_seed.groupby(["system", "unit"]).mean().unstack("system")


def paired_difference(
    units: pd.DataFrame, a: str, b: str, uncertainty: dict[str, Any]
) -> dict[str, Any]:
    """Mean of ``a - b`` over units, its group-bootstrap 95% interval and p-value, the target.

    Args:
        units: ``unit_scores`` (one row per unit).
        uncertainty: ``resamples`` and ``seed`` (``params:checks.uncertainty``).
    """
    resampler = Resampler.draw(
        units.index.to_numpy(), uncertainty["resamples"], uncertainty["seed"]
    )
    diff = resampler.compare(units[a].to_numpy(), units[b].to_numpy())
    met = diff["mean_diff"] >= MIN_GAIN and diff["low"] > 0
    return {"a": a, "b": b, **{k: round(v, 4) for k, v in diff.items()}, "met": bool(met)}


def _per_query(project: ScratchProject, seed: int, unit: str) -> pd.DataFrame:
    """This seed's per-query table of ``SYSTEMS``, each query with its unit."""
    frame = project.load("evaluation_per_query")
    tracks = project.load("clips").set_index("clip_id")["track_id"]
    units = project.load("splits").set_index("track_id")[unit]
    frame = frame[frame["system"].isin(SYSTEMS)]
    return frame.assign(seed=seed, unit=units.loc[tracks.loc[frame["query_clip_id"]]].to_numpy())


def run_world(
    root: Path, overrides: dict[str, Any], seeds: tuple[int, ...], conf: str = "base"
) -> dict[str, Any]:
    """Make one world's data, train and measure per seed, pool the differences over seeds."""
    project = ScratchProject(
        root, deep_merge(deep_merge(parameter_set(conf), OVERRIDES), overrides)
    )
    checks = base_parameters()["checks"]
    uncertainty = checks["uncertainty"]
    data = measured(
        "benchmarks.scratch:run_pipelines",
        root=str(root),
        pipelines=["synthetic_data", "labels_and_splits"],
    )
    runs, frames = [], []
    for seed in seeds:
        project.set_params({"seed": seed})
        run = measured(
            "benchmarks.scratch:run_pipelines",
            root=str(root),
            pipelines=TRAINING,
            to_nodes=MEASURED_UP_TO,
        )
        frame = _per_query(project, seed, uncertainty["unit"])
        frames.append(frame)
        runs.append(
            {
                "seed": seed,
                "wall_s": run["wall_s"],
                "training_wall_s": {
                    name: project.load(f"{name}_training_metadata")["wall_time_s"]
                    for name in ("oracle", "projection", "projection_ablation")
                },
                METRIC: frame.groupby(["task", "system"])[METRIC]
                .mean()
                .round(4)
                .unstack()
                .to_dict(),
            }
        )
    per_query = pd.concat(frames)
    tasks = {}
    for task in TASKS:
        units = unit_scores(per_query[per_query["task"] == task])
        tasks[task] = {
            "num_units": len(units),
            "unit_means": units.mean().round(4).to_dict(),
            "units": units.round(4).to_dict(orient="index"),  # each unit's score per system
            "differences": [paired_difference(units, a, b, uncertainty) for a, b in PAIRS],
        }
    split = project.load("dataset_version")
    return {
        "overrides": overrides,
        "parameter_set": conf,
        "embedding": split["embedding"],
        "data_wall_s": data["wall_s"],
        "seeds": list(seeds),
        "tasks": tasks,
        "runs": runs,
        "passed": all(d["met"] for d in tasks[TARGET_TASK]["differences"]),
    }


def render_table(results: list[dict[str, Any]]) -> str:
    """Markdown table of the worlds of ``results``: unit means, differences, targets met."""
    lines = [
        "| world | task | oracle | distilled | plain | oracle − distilled | distilled − plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        conf = result.get("parameter_set", "base")
        for world, found in result["worlds"].items():
            label = f"`{world}`" + ("" if conf == "base" else f" (conf/{conf})")
            lines += _table_rows(label, found)
    return "\n".join(lines)


def _table_rows(label: str, found: dict[str, Any]) -> list[str]:
    """One world's rows of ``render_table``: a row per task."""
    lines = []
    for task, t in found["tasks"].items():
        means = " | ".join(f"{t['unit_means'][s]:.3f}" for s in SYSTEMS)
        diffs = " | ".join(
            f"{d['mean_diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
            + ("met" if d["met"] else "**not met**")
            for d in t["differences"]
        )
        lines.append(f"| {label} | {task.replace('_to_', '→')} | {means} | {diffs} |")
    return lines


def main() -> None:
    chosen = os.environ.get("DISTILLATION_WORLDS", ",".join(WORLDS)).split(",")
    unknown = sorted(set(chosen) - set(WORLDS))
    if unknown:
        sys.exit(f"DISTILLATION_WORLDS: unknown world(s) {unknown}; choose from {list(WORLDS)}")
    quick = os.environ.get("DISTILLATION_QUICK") == "1"
    conf = os.environ.get("DISTILLATION_CONF", "base")
    parameter_set(conf)  # refuse an unknown set before any world is made
    seeds = TRAINING_SEEDS[:1] if quick else TRAINING_SEEDS
    name = "_".join(["distillation", *([] if chosen == list(WORLDS) else chosen)])
    name += ("" if conf == "base" else f"_{conf}") + ("_quick" if quick else "")
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for world in chosen:  # the result is rewritten after each world
            found[world] = run_world(Path(tmp) / world, WORLDS[world], seeds, conf)
            write_result(
                name,
                {
                    "seeds": list(seeds),
                    "parameter_set": conf,
                    "metric": METRIC,
                    "targets": {f"{a}_minus_{b}_min": MIN_GAIN for a, b in PAIRS}
                    | {"interval_excludes_0": True},
                    "worlds": found,
                    "worlds_pending": [w for w in chosen if w not in found],
                    "passed": all(w["passed"] for w in found.values())
                    and len(found) == len(chosen),
                },
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["table"]:
        paths = [Path(p) for p in sys.argv[2:]] or [RESULTS / "distillation.json"]
        print(render_table([json.loads(path.read_text()) for path in paths]))
    else:
        main()
