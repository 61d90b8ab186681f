"""Cluster bootstrap, sign-flip test and Holm against slow, obvious reference code."""

from __future__ import annotations

import numpy as np
import pytest

from expressive_retrieval.evaluation.uncertainty import Resampler, holm


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Queries of 7 clusters of uneven size; a few queries unjudged (NaN)."""
    rng = np.random.default_rng(seed)
    units = np.repeat([f"g{i}" for i in range(7)], [1, 2, 3, 5, 2, 4, 3])
    values = rng.random((len(units), 3))
    values[[2, 9]] = np.nan
    return units, values


def _reference_means(units: np.ndarray, values: np.ndarray, seed: int, draws: int) -> np.ndarray:
    """One resample at a time: list the drawn clusters' queries, take the NaN-mean."""
    names = np.unique(units)
    picks = np.random.default_rng(seed).integers(0, len(names), size=(draws, len(names)))
    out = []
    for row in picks:
        rows = np.concatenate([np.flatnonzero(units == names[c]) for c in row])
        out.append(np.nanmean(values[rows], axis=0))
    return np.array(out)


def test_bootstrap_matches_a_loop_over_resamples() -> None:
    units, values = _case()
    resampler = Resampler.draw(units, num_resamples=300, seed=5)
    reference = _reference_means(units, values, seed=5, draws=300)
    np.testing.assert_allclose(resampler.means(values), reference, atol=1e-12)
    low, high = resampler.interval(values)
    np.testing.assert_allclose(low, np.percentile(reference, 2.5, axis=0), atol=1e-12)
    np.testing.assert_allclose(high, np.percentile(reference, 97.5, axis=0), atol=1e-12)
    assert (low < np.nanmean(values, axis=0)).all() and (np.nanmean(values, axis=0) < high).all()


def test_same_seed_same_interval_and_single_clips_are_never_split() -> None:
    units, values = _case()
    a = Resampler.draw(units, 200, seed=1).interval(values)
    b = Resampler.draw(units, 200, seed=1).interval(values)
    np.testing.assert_array_equal(a, b)
    # A constant within each cluster: resampling clusters can only reproduce cluster means.
    per_cluster = np.unique(units, return_inverse=True)[1].astype(np.float64)[:, None]
    means = Resampler.draw(units, 200, seed=1).means(per_cluster)
    assert means.min() >= 0 and means.max() <= 6


def _reference_p(units: np.ndarray, diff: np.ndarray, signs: np.ndarray, exhaustive: bool) -> float:
    names = np.unique(units)
    judged = ~np.isnan(diff)
    observed = abs(np.mean(diff[judged]))
    extreme = 0
    for row in signs:
        flip = np.array([row[np.flatnonzero(names == u)[0]] for u in units])
        extreme += abs(np.mean((flip * diff)[judged])) >= observed - 1e-12
    return extreme / len(signs) if exhaustive else (extreme + 1) / (len(signs) + 1)


@pytest.mark.parametrize("exhaustive_up_to", [64, 128])  # 2^7 assignments: sampled, then all
def test_sign_flip_p_value_matches_a_loop(exhaustive_up_to: int) -> None:
    units, values = _case()
    draws = 500
    resampler = Resampler.draw(units, draws, seed=3, exhaustive_up_to=exhaustive_up_to)
    assert resampler.exhaustive == (exhaustive_up_to >= 128)
    assert len(resampler.signs) == (128 if resampler.exhaustive else draws)
    result = resampler.compare(values[:, 0] + 0.1, values[:, 1])
    diff = values[:, 0] + 0.1 - values[:, 1]
    assert result["mean_diff"] == pytest.approx(np.nanmean(diff))
    expected = _reference_p(units, diff, resampler.signs, resampler.exhaustive)
    assert result["p_value"] == pytest.approx(expected)
    reference = _reference_means(units, diff[:, None], seed=3, draws=draws)[:, 0]
    assert result["low"] == pytest.approx(np.percentile(reference, 2.5))
    assert result["high"] == pytest.approx(np.percentile(reference, 97.5))


def test_a_clear_difference_is_significant_and_no_difference_is_not() -> None:
    units = np.repeat(np.arange(12), 5)
    rng = np.random.default_rng(0)
    base = rng.random(len(units))
    resampler = Resampler.draw(units, 1000, seed=0)
    clear = resampler.compare(base + 0.3 + 0.01 * rng.standard_normal(len(units)), base)
    assert clear["low"] > 0.25 and clear["p_value"] < 0.01
    same = resampler.compare(base, base)
    assert same["mean_diff"] == 0 and same["low"] == same["high"] == 0 and same["p_value"] == 1


def test_holm_matches_its_definition() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    # sorted 0.01, 0.03, 0.04, 0.2 scaled by 4, 3, 2, 1 → 0.04, 0.09, 0.08→0.09, 0.2
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
