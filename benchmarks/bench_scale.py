"""Corpus-parallel steps: in process against a 2-worker ``LocalCluster`` (docs/scale.md).

* ``project_corpus``: a freshly initialised head at the default shapes (13 × 768, five
  aspects) over random float16 segments laid out as the default catalogue (240 tracks of
  14-22 segments, 30 s clips every 15 s) and a 10x one.
* ``audio_features``: the whole pipeline (decode, proxies, the tests' tiny model, cache,
  raw entries) over recordings of 10 s.

Each run is a fresh process with a fresh staging folder (nothing resumed); the time is
the step alone (Dask's is with its cluster's start and stop). Target: Dask at most 1.15x
the in-process wall time on 2 cores, with the default in-process cluster (workers are
threads); worker processes are measured too. The in-process run keeps torch's own
thread count.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import measured, write_result

TARGET = 1.15
STEPS = ("project_corpus", "audio_features")
BACKENDS = {
    "inprocess": {"backend": "inprocess"},
    "dask": {"backend": "dask", "workers": 2, "threads_per_worker": 1},  # threads (default)
    "dask_processes": {"backend": "dask", "workers": 2, "threads_per_worker": 1, "processes": True},
}
TRACKS = 240  # the default catalogue: 40 groups x 2 artists x 3 works
AUDIO_TRACKS, AUDIO_SECONDS = 12, 10.0


def write_corpus(root: str, tracks: int) -> int:
    """Random float16 segments ``[14..22, 13, 768]`` per track and their clip table."""
    rng = np.random.default_rng(0)
    folder = Path(root) / "segments"
    folder.mkdir(parents=True)
    rows = []
    for t in range(tracks):
        track_id = f"t{t:05d}"
        count = int(rng.integers(14, 23))
        np.save(
            folder / f"{track_id}.npy",
            rng.standard_normal((count, 13, 768), np.float32).astype(np.float16),
        )
        rows += [(f"{track_id}:{s}", track_id, s, s + 6, "test") for s in range(0, count - 5, 3)]
    columns = ["clip_id", "track_id", "segment_start", "segment_end", "split"]
    pd.DataFrame(rows, columns=columns).to_parquet(Path(root) / "clips.parquet")
    return len(rows)


def project(root: str, backend: str) -> dict[str, Any]:
    """``project_corpus`` and writing its vectors, timed; the vectors' sha256."""
    import torch

    from benchmarks.bench_projection_retriever import PARAMS
    from benchmarks.random_models import uniform_config
    from expressive_retrieval.data.segments import SegmentStore
    from expressive_retrieval.datasets import VectorsDataset
    from expressive_retrieval.models import ProjectionConfig, ProjectionHead
    from expressive_retrieval.pipelines.projection_retriever.nodes import project_corpus

    torch.manual_seed(0)
    head = ProjectionHead(uniform_config(ProjectionConfig, 13, 768))
    clips = pd.read_parquet(Path(root) / "clips.parquet")
    store = SegmentStore(Path(root) / "segments")
    scale = {**BACKENDS[backend], "staging": str(Path(root) / f"staging_{backend}")}
    out = Path(root) / f"vectors_{backend}.npy"
    started = time.perf_counter()
    blocks, _ = project_corpus(
        head.state_dict(), head.config.to_dict(), store, clips, PARAMS, scale
    )
    VectorsDataset(str(out)).save(blocks)
    seconds = time.perf_counter() - started
    return {"step_s": round(seconds, 2), "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}


def audio(root: str, tracks: int, backend: str) -> dict[str, Any]:
    """The ``audio_features`` pipeline over ``tracks`` recordings, timed."""
    import soundfile

    from benchmarks.bench_audio_features import RATE, _note_train
    from benchmarks.random_models import TINY, save_random_hubert
    from benchmarks.scratch import ScratchProject

    project = ScratchProject(Path(root) / backend, {"audio_features": {"progress": False}})
    model = save_random_hubert(Path(root) / backend / "model", **{**TINY, "sample_rate": RATE})
    project.set_params({"audio_features": {"model": str(model)}, "scale": BACKENDS[backend]})
    folder = project.data / "01_raw" / "audio"
    folder.mkdir(parents=True)
    rows = []
    for i in range(tracks):
        samples = _note_train(AUDIO_SECONDS, 70 + i % 90, RATE, i)
        soundfile.write(folder / f"t{i}.flac", samples, RATE)
        rows.append(
            {"track_id": f"t{i}", "artist_id": f"a{i}", "work_id": f"w{i}", "path": f"t{i}.flac"}
        )
    pd.DataFrame(rows).to_csv(project.data / "01_raw" / "recordings.csv", index=False)
    started = time.perf_counter()
    project.run("audio_features")
    seconds = time.perf_counter() - started
    proxies = (project.data / "01_raw" / "proxy_targets.parquet").read_bytes()
    return {"step_s": round(seconds, 2), "proxies_sha256": hashlib.sha256(proxies).hexdigest()}


def _compare(runs: dict[str, dict]) -> dict[str, Any]:
    """Each backend's step time, its ratio to in process, and whether it wrote the same."""
    base = runs["inprocess"]["value"]
    digests = {k for k in base if "sha256" in k}
    figures: dict[str, Any] = {"inprocess_s": base["step_s"]}
    for backend, run in runs.items():
        if backend != "inprocess":
            figures[f"{backend}_s"] = run["value"]["step_s"]
            figures[f"{backend}_over_inprocess"] = round(run["value"]["step_s"] / base["step_s"], 3)
            figures[f"{backend}_identical"] = all(run["value"][k] == base[k] for k in digests)
    return figures


def main(scales: tuple[int, ...] = (1, 10), steps: tuple[str, ...] = STEPS) -> None:
    figures: dict[str, Any] = {step: {} for step in steps}
    for scale in scales:
        if "project_corpus" in steps:
            with tempfile.TemporaryDirectory() as root:
                clips = write_corpus(root, TRACKS * scale)
                runs = {
                    b: measured("benchmarks.bench_scale:project", root=root, backend=b)
                    for b in BACKENDS
                }
                figures["project_corpus"][f"{scale}x"] = {"clips": clips, **_compare(runs)}
        if "audio_features" in steps:
            with tempfile.TemporaryDirectory() as root:
                tracks = AUDIO_TRACKS * scale
                runs = {
                    b: measured("benchmarks.bench_scale:audio", root=root, tracks=tracks, backend=b)
                    for b in ("inprocess", "dask")  # worker processes: see project_corpus
                }
                figures["audio_features"][f"{scale}x"] = {"tracks": tracks, **_compare(runs)}
    ratios = [f["dask_over_inprocess"] for step in figures.values() for f in step.values()]
    same = all(
        v
        for step in figures.values()
        for f in step.values()
        for k, v in f.items()
        if k.endswith("identical")
    )
    write_result(
        "scale",
        {
            "note": "2 cores shared with other work: figures are under contention",
            **figures,
            "target_dask_over_inprocess_max": TARGET,
            "passed": max(ratios) <= TARGET and same,
        },
    )


if __name__ == "__main__":  # python -m benchmarks.bench_scale [step ...] [scale ...]
    args = sys.argv[1:]
    main(
        tuple(int(a) for a in args if a.isdigit()) or (1, 10),
        tuple(a for a in args if not a.isdigit()) or STEPS,
    )
