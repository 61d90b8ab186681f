"""Label candidate search on Dask: the same pairs and triples as in process, failures
naming the shard, and re-runs that resume from the finished shards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks.scratch import REPO
from expressive_retrieval.pipelines.labels_and_splits import shards
from expressive_retrieval.pipelines.labels_and_splits.nodes import build_pairs_and_triples
from expressive_retrieval.scale import ShardsFailed
from tests.data.test_candidates import PAIRS, _model, _world

SPLIT_OF = ("test", "train", "val", "unassigned")
CFG = PAIRS | {
    "candidates_per_query": 12,
    "nearest": 4,
    "hard_negatives": 3,
    "ann": PAIRS["ann"] | {"nearest_pool": 16, "negative_pool": 16, "nprobe": 1},
}
DASK = {"backend": "dask", "workers": 2, "processes": False, "shard_tracks": 3}
INPROCESS = {"backend": "inprocess", "shard_tracks": 3}


def _inputs(num_tracks: int = 128) -> dict[str, Any]:
    """Clips of 4 splits (one unassigned) of 5 clips per track, 160 clips per split."""
    z, frozen, tracks = _world(num_tracks=num_tracks)
    clip_ids = [f"{t}:{3 * (i % 5)}" for i, t in enumerate(tracks)]
    split = [SPLIT_OF[int(t[3:]) % 4] for t in tracks]
    clips = pd.DataFrame({"clip_id": clip_ids, "track_id": tracks, "split": split})
    features = pd.DataFrame(z, columns=[f"f{i}" for i in range(6)]).assign(clip_id=clip_ids)
    return {
        "clips": clips,
        "clip_aspect_features": features,
        "relevance_model": _model().to_dict(),
        "frozen_vectors": frozen,
    }


def _labels(inputs: dict, search: str, scale: dict, staging: Path) -> tuple[pd.DataFrame, ...]:
    params = {"pairs": CFG | {"candidate_search": search}, "pair_block": 1280}
    return build_pairs_and_triples(
        **inputs, params=params, seed=5, scale={**scale, "staging": str(staging)}
    )


@pytest.mark.parametrize("search", ["exact", "ann"])
def test_label_shards_on_dask_are_identical(tmp_path: Path, search: str) -> None:
    inputs = _inputs()
    pairs, triples = _labels(inputs, search, INPROCESS, tmp_path / "a")
    assert not (tmp_path / "a").exists()  # in process: the loop over splits, no staging
    d_pairs, d_triples = _labels(inputs, search, DASK, tmp_path / "b")
    pd.testing.assert_frame_equal(pairs, d_pairs, check_exact=True)
    pd.testing.assert_frame_equal(triples, d_triples, check_exact=True)
    assert set(pairs["split"]) == {"test", "train", "val"} and len(triples)
    staging = next((tmp_path / "b" / "label_queries").iterdir())
    # cut at blocks of 1280 // 160 = 8 queries (exact) or 1280 // 32 = 40 (ann) once a shard
    # holds 3 tracks: 12 or 4 shards per split
    expected = {"exact": 3 * 12, "ann": 3 * 4}[search]
    assert len(list(staging.glob("shard-*.json"))) == expected


def test_a_failed_shard_is_named_and_the_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _inputs()
    expected = _labels(inputs, "exact", INPROCESS, tmp_path / "a")
    bad_row = inputs["clips"].index[inputs["clips"]["track_id"] == "trk0009"][0]
    label_queries = shards.label_queries

    def failing(split: Any, queries: np.ndarray, *args: Any) -> Any:
        if bad_row in split.rows[queries]:
            raise ValueError("targets out of range")
        return label_queries(split, queries, *args)

    monkeypatch.setattr(shards, "label_queries", failing)
    with pytest.raises(ShardsFailed) as failed:
        _labels(inputs, "exact", DASK, tmp_path / "b")
    message = str(failed.value)
    assert "label_queries: 1 of 36 shards failed" in message
    # train's shards follow test's 12; trk0009 is train's 3rd track (rows 10:15)
    assert "shard 12 (rows 0:16, tracks trk0001..trk0013): ValueError: targets out" in message
    staging = next((tmp_path / "b" / "label_queries").iterdir())
    finished = {p.name: p.stat().st_mtime_ns for p in staging.glob("part-*.npy")}
    assert len(finished) == 35 * 5 and not any(n.startswith("part-00012-") for n in finished)
    monkeypatch.undo()
    pairs, triples = _labels(inputs, "exact", DASK, tmp_path / "b")
    assert {name: (staging / name).stat().st_mtime_ns for name in finished} == finished
    assert (staging / "part-00012-triples.npy").exists()
    pd.testing.assert_frame_equal(pairs, expected[0], check_exact=True)
    pd.testing.assert_frame_equal(triples, expected[1], check_exact=True)


def test_cli_labels_on_dask(make_project) -> None:
    """``kedro run --params=scale.backend=dask`` publishes the labels a plain run does."""
    project = make_project()
    project.run("synthetic_data", "labels_and_splits")
    versions = project.load("dataset_version")
    command = ["--pipelines=labels_and_splits", "--params=scale.backend=dask"]
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", *command, f"--conf-source={project.conf}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "label_queries: " in result.stderr and "on a LocalCluster of 2 workers" in result.stderr
    assert len(project.versions("pairs")) == 2
    assert project.load("dataset_version")["sha256"] == versions["sha256"]
