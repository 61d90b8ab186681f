"""Shard planning, the settings' backend choice and the failure message."""

from __future__ import annotations

import pytest

from expressive_retrieval.scale import ScaleSettings, ShardsFailed, plan_shards
from expressive_retrieval.scale.shards import ShardFailure

ROWS = ["a", "a", "b", "c", "c", "c", "d", "e"]  # a track id per row, a track's rows together


def _plan(fingerprints: dict[str, str] | None = None, step_key: str = "k") -> list:
    return plan_shards(step_key, ROWS, 2, lambda a, b: [a, b], fingerprints)


def test_shards_hold_whole_runs_of_tracks_in_row_order() -> None:
    shards = _plan()
    assert [(s.start, s.stop) for s in shards] == [(0, 3), (3, 7), (7, 8)]
    assert [s.items for s in shards] == [("a", "b"), ("c", "d"), ("e",)]
    assert shards[1].payload == [3, 7]
    assert shards[1].label == "shard 1 (rows 3:7, tracks c..d)"


def test_aligned_shards_cut_only_at_multiples_of_the_block() -> None:
    shards = plan_shards("k", ROWS, 2, lambda a, b: [a, b], align=4)
    assert [(s.start, s.stop) for s in shards] == [(0, 4), (4, 8)]
    assert [s.items for s in shards] == [("a", "b", "c"), ("c", "d", "e")]
    more = plan_shards("k", ROWS, 2, lambda a, b: [a, b], align=4, first_index=len(shards))
    assert [s.index for s in more] == [2, 3] and more[0].start == 0


def test_a_shard_key_changes_with_its_own_inputs_only() -> None:
    before = _plan({"a": "1:1", "c": "1:1"})
    after = _plan({"a": "1:1", "c": "2:2"})  # track c's file changed
    assert [b.key == a.key for b, a in zip(before, after, strict=True)] == [True, False, True]
    assert all(b.key != a.key for b, a in zip(before, _plan(step_key="other"), strict=True))


def test_auto_runs_small_corpora_in_process() -> None:
    auto = ScaleSettings(dask_from_tracks=100)
    assert not auto.uses_dask(99) and auto.uses_dask(100)
    assert ScaleSettings(scheduler_address="tcp://10.0.0.5:8786").uses_dask(1)
    assert ScaleSettings(backend="dask").uses_dask(1)
    assert not ScaleSettings(backend="inprocess", scheduler_address="tcp://x:1").uses_dask(10**6)
    with pytest.raises(ValueError, match=r"unknown keys \['worker'\]"):
        ScaleSettings.from_params({"worker": 3})
    with pytest.raises(ValueError, match="backend"):
        ScaleSettings(backend="spark")


def test_the_failure_names_step_shard_and_track() -> None:
    failures = (
        ShardFailure(1, "shard 1 (rows 3:7, tracks c..d)", "d", "ValueError", "bad file"),
        ShardFailure(2, "shard 2 (rows 7:8, tracks e..e)", None, "KilledWorker", "lost"),
    )
    message = str(ShardsFailed("project_corpus", 3, failures))
    assert message.startswith("project_corpus: 2 of 3 shards failed")
    assert "shard 1 (rows 3:7, tracks c..d), track d: ValueError: bad file" in message
    assert "shard 2 (rows 7:8, tracks e..e): KilledWorker: lost" in message
