"""``map_shards``: in process and on a LocalCluster, failures by shard and track, resume."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from expressive_retrieval.scale import (
    ScaleSettings,
    Shard,
    ShardsFailed,
    map_shards,
    naming,
    plan_shards,
    staging_folder,
)
from expressive_retrieval.scale.files import join, load_npy, save_npy

TRACKS = [f"t{i}" for i in range(7)]


def square_shard(shard: Shard, staging: str, context: Mapping[str, Any]) -> list[str]:
    """Squares each track's number (read from its file); ``context['bad']`` fails."""
    values = []
    for track_id in shard.payload:
        with naming(track_id):
            if track_id in context["bad"]:
                raise ValueError("planted failure")
            values.append(float(load_npy(join(context["inputs"], f"{track_id}.npy"))[0]) ** 2)
    part = join(staging, f"part-{shard.index:05d}.npy")
    save_npy(part, np.asarray(values))
    return [part]


def _run(tmp_path: Path, settings: ScaleSettings, bad: tuple[str, ...] = ()) -> list:
    inputs = tmp_path / "inputs"
    if not inputs.exists():
        inputs.mkdir(parents=True)
        for i, track_id in enumerate(TRACKS):
            np.save(inputs / f"{track_id}.npy", np.asarray([float(i)]))
    shards = plan_shards("step", TRACKS, 2, lambda a, b: TRACKS[a:b])
    staging = staging_folder(str(tmp_path / "staging"), "square", "step-key")
    context = {"inputs": str(inputs), "bad": bad}
    return map_shards("square", square_shard, shards, staging, context, settings)


def _values(results: list) -> np.ndarray:
    return np.concatenate([np.load(r.files[0]) for r in results])


INPROCESS = ScaleSettings(backend="inprocess")
THREADS = ScaleSettings(backend="dask", workers=2, processes=False)


def test_dask_and_in_process_give_the_same_parts(tmp_path: Path) -> None:
    local = _values(_run(tmp_path / "a", INPROCESS))
    on_dask = _values(_run(tmp_path / "b", THREADS))
    np.testing.assert_array_equal(local, np.arange(7.0) ** 2)
    assert local.tobytes() == on_dask.tobytes()


@pytest.mark.parametrize("settings", [INPROCESS, THREADS], ids=["inprocess", "dask"])
def test_a_failed_shard_is_named_and_the_rerun_resumes(
    tmp_path: Path, settings: ScaleSettings
) -> None:
    with pytest.raises(ShardsFailed) as failed:
        _run(tmp_path, settings, bad=("t3",))
    assert "square: 1 of 4 shards failed" in str(failed.value)
    assert "shard 1 (rows 2:4, tracks t2..t3), track t3: ValueError: planted failure" in str(
        failed.value
    )
    staging = tmp_path / "staging" / "square" / "step-key"[:16]
    finished = {p.name: p.stat().st_mtime_ns for p in staging.glob("part-*.npy")}
    assert sorted(finished) == ["part-00000.npy", "part-00002.npy", "part-00003.npy"]
    results = _run(tmp_path, settings)  # fixed
    assert [r.reused for r in results] == [True, False, True, True]
    assert {n: (staging / n).stat().st_mtime_ns for n in finished} == finished
    np.testing.assert_array_equal(_values(results), np.arange(7.0) ** 2)


def test_a_damaged_part_is_computed_again(tmp_path: Path) -> None:
    _run(tmp_path, INPROCESS)
    part = tmp_path / "staging" / "square" / "step-key"[:16] / "part-00002.npy"
    np.save(part, np.asarray([0.0, 0.0]))  # not what the manifest's sha256 says
    results = _run(tmp_path, INPROCESS)
    assert [r.reused for r in results] == [True, True, False, True]
    np.testing.assert_array_equal(_values(results), np.arange(7.0) ** 2)


def test_a_new_step_key_replaces_the_old_staging(tmp_path: Path) -> None:
    old = Path(staging_folder(str(tmp_path), "square", "a" * 64))
    old.mkdir(parents=True)
    new = Path(staging_folder(str(tmp_path), "square", "b" * 64))
    assert not old.exists() and new.name == "b" * 16
