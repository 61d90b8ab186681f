"""Faithfulness and counterfactual checks on planted scorers."""

from __future__ import annotations

import numpy as np
import pytest

from expressive_retrieval.evaluation.aspect_checks import (
    counterfactual_shares,
    faithfulness_matrix,
    faithfulness_verdict,
)

ASPECTS = ["tempo", "dynamics", "phrasing"]


@pytest.fixture
def world() -> dict:
    rng = np.random.default_rng(0)
    targets = rng.random((40, 60, 3))
    faithful = targets + 0.1 * rng.standard_normal(targets.shape)
    valid = np.ones((40, 60), dtype=bool)
    valid[:, :3] = False
    return {"targets": targets, "faithful": faithful, "valid": valid}


def test_spearman_matches_a_reference() -> None:
    x = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [4.0, 4.0]])
    y = np.array([[10.0, 1.0], [20.0, 1.0], [30.0, 2.0], [40.0, 3.0]])
    matrix = faithfulness_matrix(x, y)
    assert matrix[0, 0] == pytest.approx(1.0)
    # Spearman of [3,2,1,4] against [1,1,2,3] (tied ranks 1.5, 1.5, 3, 4).
    rx, ry = np.array([3, 2, 1, 4.0]), np.array([1.5, 1.5, 3, 4])
    expected = np.corrcoef(rx, ry)[0, 1]
    assert matrix[1, 1] == pytest.approx(expected)


def test_faithful_scores_pass_and_shuffled_heads_fail(world: dict) -> None:
    v, t = world["valid"], world["targets"]
    matrix = faithfulness_matrix(world["faithful"][v], t[v])
    assert faithfulness_verdict(matrix, ASPECTS, 0.5, 0.2)["passed"]
    shuffled = world["faithful"][..., [1, 2, 0]]
    verdict = faithfulness_verdict(faithfulness_matrix(shuffled[v], t[v]), ASPECTS, 0.5, 0.2)
    assert not verdict["passed"]
    assert verdict["per_aspect"]["tempo"]["margin"] < 0
    tied = np.repeat(world["faithful"].mean(-1, keepdims=True), 3, axis=-1)
    assert not faithfulness_verdict(faithfulness_matrix(tied[v], t[v]), ASPECTS, 0.3, 0.1)["passed"]


def test_counterfactual_moves_faithful_scores_only(world: dict) -> None:
    t, v = world["targets"], world["valid"]
    shares = counterfactual_shares(world["faithful"], t, v, np.ones(3), boost=4.0, k=10)
    assert (shares > 0.9).all()
    tied = np.repeat(world["faithful"].mean(-1, keepdims=True), 3, axis=-1)
    assert (counterfactual_shares(tied, t, v, np.ones(3), boost=4.0, k=10) == 0).all()


def test_counterfactual_never_ranks_invalid_candidates(world: dict) -> None:
    t, v = world["targets"].copy(), world["valid"]
    scores = world["faithful"].copy()
    scores[:, :3] = 100.0  # invalid candidates with huge scores must be ignored
    t[:, :3, :] = 1.0
    shares = counterfactual_shares(scores, t, v, np.ones(3), boost=4.0, k=10)
    assert (shares > 0.9).all()
