"""Catalogue scale: every pipeline at 1x, 10x and 100x, in process and on Dask (docs/scale.md).

The catalogue is the synthetic generator's at ``num_groups`` 30, 300 and 3,000 (180,
1,800 and 18,000 tracks; the default catalogue has 40 groups). Each pipeline runs in a
fresh process (wall time, peak RSS, each node's time); then the corpus-parallel pipelines
(``labels_and_splits``, ``projection_retriever``) run again with ``scale.backend: dask``
on the default 2-worker in-process ``LocalCluster``, from empty staging (finished shards
would otherwise be resumed). The in-process runs set ``scale.backend: inprocess``: ``auto``
would move the 100x catalogue (over 5,000 tracks) onto Dask. From the node times a growth
exponent per node is fitted (``time ∝ tracks^b`` over the scales, and from the two
largest) and extrapolated to 10^6 tracks.

Training is capped at every scale (oracle 1 epoch, projection 2): this benchmark measures
how cost grows, not model quality, so the gates are not enforced. Both trainings' cost
per epoch is linear in the train split.

``SCALE_BENCH_SCALES=1,10`` chooses scales (default ``1,10,100``) and
``SCALE_BENCH_PIPELINES=labels_and_splits,evaluation`` pipelines (default all; a pipeline
needs its upstream outputs in the project); ``SCALE_BENCH_ROOT=DIR`` keeps the scratch
projects there (their conf renewed each run), and a project whose raw catalogue exists is
not generated again (its ``synthetic_data`` time is then not measured).

Evaluation at a scale without trained models (``SCALE_BENCH_PIPELINES=evaluation`` on a
project whose ``data/06_models`` is empty, e.g. 100x, where training takes hours) borrows
the 1x project's models: its ``data/06_models`` is copied (the same aspects and
``13 x 768`` input, so they load unchanged), the corpus nodes of ``projection_retriever``
(``project_corpus``, track vectors, index) project this scale's catalogue with them, then
``evaluation`` runs. The result records it (``models: trained_at 1x``): evaluation's cost
depends on the catalogue's size, not on how long the models trained.

Targets (issue 17): ``labels_and_splits`` at 100x within 10 min and 2 GB peak RSS, and at
most 15x its 10x time; ``evaluation`` at 100x within 10 min; Dask at most 1.15x the
in-process wall time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import measured, write_result
from benchmarks.scratch import ScratchProject

GROUPS = 30  # 1x: 180 tracks, the reference size of issue 17
TRACKS_PER_GROUP = 6  # 2 artists x 3 works
PIPELINES = (
    "synthetic_data",
    "labels_and_splits",
    "oracle_scorer",
    "projection_retriever",
    "evaluation",
)
SHARDED = ("labels_and_splits", "projection_retriever")  # their corpus steps map over shards
CAPPED = {
    "oracle_scorer": {
        "progress": False,
        "training": {"epochs": 1, "patience": 1},
        "gate": {"fail_on_gate": False},
    },
    "projection_retriever": {"progress": False, "training": {"epochs": 2, "patience": 2}},
    "evaluation": {"gates": {"fail_on_gate": False}},
}
TARGETS = {
    "labels_and_splits_100x_wall_s_max": 600,
    "labels_and_splits_100x_peak_rss_mb_max": 2048,
    "labels_and_splits_growth_10x_to_100x_max": 15,
    "evaluation_100x_wall_s_max": 600,
    "dask_over_inprocess_max": 1.15,
}
MILLION = 1_000_000
STAGING = "data/02_intermediate/scale"  # globals.yml scale.staging: shard parts and manifests
CORPUS_NODES = ["project_corpus_node"]  # and what follows it: track vectors, the index
TRAINED = ("oracle_scorer", "projection_retriever")


def _run(project: ScratchProject, pipeline: str, **nodes: list[str]) -> dict[str, Any]:
    run = measured(
        "benchmarks.scratch:profile_pipelines",
        root=str(project.root),
        pipelines=[pipeline],
        **nodes,
    )
    return {"wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"], **run["value"]}


def borrow_models(project: ScratchProject, source: ScratchProject) -> dict[str, Any]:
    """Copy ``source``'s ``data/06_models`` into ``project`` (which has none) and project
    ``project``'s corpus with them; what was borrowed and the corpus nodes' times."""
    models = source.data / "06_models"
    if not (models / "oracle" / "model.safetensors").is_dir():
        raise FileNotFoundError(
            f"{project.root} has no trained models and {models} has none to lend: run "
            "oracle_scorer and projection_retriever at 1x first (SCALE_BENCH_SCALES=1)"
        )
    shutil.copytree(models, project.data / "06_models", dirs_exist_ok=True)
    corpus = _run(project, "projection_retriever", from_nodes=CORPUS_NODES)
    return {"trained_at": "1x", "from": str(models), "projection_retriever_corpus": corpus}


def _has_models(project: ScratchProject) -> bool:
    return (project.data / "06_models" / "oracle" / "model.safetensors").is_dir()


def growth(tracks: list[int], seconds: list[float]) -> dict[str, float | None]:
    """Exponent ``b`` of ``seconds ∝ tracks^b`` (least squares in log-log, and between the
    two largest sizes) and the time extrapolated to 10^6 tracks from the largest."""
    if len(tracks) < 2 or min(seconds) <= 0:
        return {"exponent": None, "exponent_top": None, "at_1m_tracks_s": None}
    x, y = np.log(tracks), np.log(seconds)
    slope = float(np.polyfit(x, y, 1)[0])
    top = float((y[-1] - y[-2]) / (x[-1] - x[-2]))
    at_million = seconds[-1] * (MILLION / tracks[-1]) ** max(slope, top)
    return {
        "exponent": round(slope, 3),
        "exponent_top": round(top, 3),
        "at_1m_tracks_s": round(at_million, 1),
    }


def _fits(runs: dict[str, dict]) -> dict[str, dict]:
    """Per pipeline and per node (taking at least 0.05 s at every scale), the growth fit."""
    scales = sorted(runs, key=lambda s: runs[s]["tracks"])
    tracks = [runs[s]["tracks"] for s in scales]
    fits: dict[str, dict] = {}
    for pipeline in PIPELINES:
        done = [s for s in scales if pipeline in runs[s]["inprocess"]]
        if len(done) < 2:
            continue
        walls = [runs[s]["inprocess"][pipeline]["wall_s"] for s in done]
        fits[pipeline] = {"pipeline": growth([runs[s]["tracks"] for s in done], walls)}
        nodes = runs[done[-1]]["inprocess"][pipeline]["nodes_s"]
        for node in nodes:
            times = [runs[s]["inprocess"][pipeline]["nodes_s"].get(node, 0.0) for s in done]
            if min(times) >= 0.05:
                fits[pipeline][node] = growth([runs[s]["tracks"] for s in done], times)
    return {"tracks": tracks, **fits}


def _project(root: Path, scale: int) -> tuple[ScratchProject, bool]:
    """The scratch project of one scale; whether its raw catalogue was already there."""
    folder = root / f"g{GROUPS * scale}"
    params = {
        "synthetic_data": {"num_groups": GROUPS * scale},
        "scale": {"backend": "inprocess"},  # `auto` would use Dask from 5,000 tracks
        **CAPPED,
    }
    shutil.rmtree(folder / "conf", ignore_errors=True)  # a kept project gets today's conf
    return ScratchProject(folder, params), (folder / "data/01_raw/segments").is_dir()


def _targets(runs: dict[str, dict]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    at = {s: r["inprocess"] for s, r in runs.items()}
    if "100x" in at and "labels_and_splits" in at["100x"]:
        labels = at["100x"]["labels_and_splits"]
        checks["labels_and_splits_100x_wall_s"] = labels["wall_s"] <= 600
        checks["labels_and_splits_100x_peak_rss_mb"] = labels["peak_rss_mb"] <= 2048
        if "10x" in at:
            ratio = labels["wall_s"] / at["10x"]["labels_and_splits"]["wall_s"]
            checks["labels_and_splits_growth_10x_to_100x"] = round(ratio, 2)
            checks["labels_and_splits_growth_ok"] = ratio <= 15
    if "100x" in at and "evaluation" in at["100x"]:
        checks["evaluation_100x_wall_s"] = at["100x"]["evaluation"]["wall_s"] <= 600
    ratios = [
        r["dask"][p]["wall_s"] / r["inprocess"][p]["wall_s"]
        for r in runs.values()
        for p in r["dask"]
    ]
    if ratios:
        checks["dask_over_inprocess_worst"] = round(max(ratios), 3)
        checks["dask_ok"] = max(ratios) <= 1.15
    return checks


def main() -> None:
    scales = [int(s) for s in os.environ.get("SCALE_BENCH_SCALES", "1,10,100").split(",")]
    chosen = os.environ.get("SCALE_BENCH_PIPELINES", ",".join(PIPELINES)).split(",")
    kept = os.environ.get("SCALE_BENCH_ROOT")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(kept or tmp)
        store = root / "runs.json"  # a kept root adds up runs made by several invocations
        runs: dict[str, dict] = json.loads(store.read_text()) if store.is_file() else {}
        for scale in scales:
            project, generated = _project(root, scale)
            label = f"{scale}x"
            runs.setdefault(
                label, {"tracks": GROUPS * scale * TRACKS_PER_GROUP, "inprocess": {}, "dask": {}}
            )
            borrow = "evaluation" in chosen and not set(TRAINED) & set(chosen)
            if borrow and scale != 1 and not _has_models(project):
                print(f"   {label} models trained at 1x, corpus projected", flush=True)
                runs[label]["models"] = borrow_models(project, _project(root, 1)[0])
                store.write_text(json.dumps(runs, indent=1))
            for pipeline in [p for p in PIPELINES if p in chosen]:
                if pipeline == "synthetic_data" and generated:
                    continue
                print(f"   {label} {pipeline}", flush=True)
                runs[label]["inprocess"][pipeline] = _run(project, pipeline)
                store.write_text(json.dumps(runs, indent=1))
            project.set_params({"scale": {"backend": "dask"}})
            for pipeline in [p for p in SHARDED if p in chosen]:
                print(f"   {label} {pipeline} on Dask", flush=True)
                # Finished shards would be resumed, not run: start from empty staging.
                shutil.rmtree(project.root / STAGING, ignore_errors=True)
                runs[label]["dask"][pipeline] = _run(project, pipeline)
                store.write_text(json.dumps(runs, indent=1))
            project.set_params({"scale": {"backend": "inprocess"}})
    write_result(
        "catalogue_scale",
        {
            "groups_at_1x": GROUPS,
            "training": "capped: oracle 1 epoch, projection 2 (cost, not quality); a scale "
            "with runs[scale].models evaluated the 1x models on its own corpus",
            "runs": runs,
            "growth": _fits(runs),
            "targets": TARGETS,
            "checks": _targets(runs),
            "extrapolated_to": MILLION,
            "note": "log-log fits; at_1m_tracks_s from the largest scale, by the larger exponent",
        },
    )


if __name__ == "__main__":
    main()
