"""The distillation benchmark's pooling over seeds and its paired interval, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_distillation import (
    paired_difference,
    parameter_set,
    render_table,
    unit_scores,
)


def _per_query() -> pd.DataFrame:
    """Two seeds, unit g1 with queries q1, q2 and unit g2 with q3; q2 unjudged in seed 2."""
    values = {  # (seed, system): nDCG@10 of q1, q2, q3
        (1, "a"): (0.5, 0.7, 0.2),
        (1, "b"): (0.4, 0.4, 0.1),
        (2, "a"): (0.3, np.nan, 0.4),
        (2, "b"): (0.2, np.nan, 0.1),
    }
    return pd.DataFrame(
        [
            {"seed": seed, "system": system, "unit": unit, "ndcg@10": value}
            for (seed, system), row in values.items()
            for unit, value in zip(("g1", "g1", "g2"), row, strict=True)
        ]
    )


def test_unit_scores_average_each_unit_per_seed_then_over_seeds() -> None:
    units = unit_scores(_per_query())
    # g1: a (0.6 + 0.3) / 2, b (0.4 + 0.2) / 2; g2: a (0.2 + 0.4) / 2, b (0.1 + 0.1) / 2
    expected = pd.DataFrame({"a": [0.45, 0.3], "b": [0.3, 0.1]}, index=["g1", "g2"])
    pd.testing.assert_frame_equal(units, expected, check_names=False)


def test_paired_difference_of_unit_means_with_its_group_interval() -> None:
    units = unit_scores(_per_query())
    diff = paired_difference(units, "a", "b", {"resamples": 2000, "seed": 0})
    # Unit differences 0.15 (g1) and 0.2 (g2): mean 0.175; a resample draws g1 twice
    # (0.15), g2 twice (0.2) or each once (0.175), each pure draw a quarter of the time.
    assert diff["mean_diff"] == pytest.approx(0.175)
    assert (diff["low"], diff["high"]) == pytest.approx((0.15, 0.2))
    assert diff["met"]  # >= 0.03 and the interval above 0
    small = paired_difference(
        units.assign(b=units["a"] - 0.02), "a", "b", {"resamples": 200, "seed": 0}
    )
    assert small["mean_diff"] == pytest.approx(0.02) and not small["met"]


def test_the_table_shows_each_world_task_means_and_differences() -> None:
    task = {
        "unit_means": {"oracle": 0.6, "projection_distilled": 0.55, "projection": 0.54},
        "differences": [
            {"mean_diff": 0.05, "low": 0.01, "high": 0.09, "met": True},
            {"mean_diff": 0.01, "low": -0.02, "high": 0.04, "met": False},
        ],
    }
    table = render_table([{"worlds": {"default": {"tasks": {"clip_to_clip": task}}}}])
    assert table.splitlines()[-1] == (
        "| `default` | clip→clip | 0.600 | 0.550 | 0.540 | +0.050 [+0.010, +0.090] met "
        "| +0.010 [-0.020, +0.040] **not met** |"
    )
    full = render_table([{"parameter_set": "full", "worlds": {"25x1024": {"tasks": {"c": task}}}}])
    assert full.splitlines()[-1].startswith("| `25x1024` (conf/full) | c | 0.600 |")


def test_a_parameter_set_is_read_from_its_conf_folder() -> None:
    assert parameter_set("base") == {}
    assert parameter_set("full")["oracle_scorer"]["model"]["members"] > 1
    with pytest.raises(SystemExit, match="no parameters"):
        parameter_set("no_such_set")
