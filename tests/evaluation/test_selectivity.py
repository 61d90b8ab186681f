"""Aspect selectivity on stub scorers whose dependence on each aspect is known."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from expressive_retrieval.evaluation.gates import Verdict, selectivity_failures
from expressive_retrieval.evaluation.selectivity import selectivity_verdict, twin_responses
from expressive_retrieval.evaluation.uncertainty import Resampler
from expressive_retrieval.pipelines.evaluation.reporting import selectivity_gate
from expressive_retrieval.serving.bundle import release_of

ASPECTS = ["tempo", "dynamics", "phrasing", "timbre"]
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # [Q, A], [N, A] -> [Q, N, A]


def selective(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sub-score a depends on feature a only."""
    return np.exp(-((q[:, None, :] - c[None, :, :]) ** 2))


def mixing(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Every sub-score is the same similarity over all features (ignores the aspects)."""
    total = np.exp(-((q[:, None, :] - c[None, :, :]) ** 2).mean(-1, keepdims=True))
    return np.repeat(total, q.shape[1], axis=-1)


def shifted(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sub-score a reports feature a + 1: responds to another aspect, not its own."""
    return np.roll(selective(q, c), 1, axis=-1)


def leaky(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sub-score a mostly feature a, plus half of its neighbour: selective at 2x, not 3x."""
    own = selective(q, c)
    return (own + 0.5 * np.roll(own, -1, axis=-1)) / 1.5


def _measure(scorer: Scorer, delta: float = 1.0) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(0)
    num = len(ASPECTS)
    queries, sources = rng.standard_normal((30, num)), rng.standard_normal((24, num))
    twins = sources[:, None, :] + delta * np.eye(num)[None]  # [N, M, A]: one aspect moved
    original = scorer(queries, sources)
    moved = scorer(queries, twins.reshape(-1, num)).reshape(30, 24, num, num)
    valid = np.ones((30, 24), dtype=bool)
    responses = twin_responses(original, moved, valid)
    units = np.repeat(np.arange(8), 3).astype(str)  # 8 groups of 3 source clips
    resampler = Resampler.draw(units, 1000, 0)
    return selectivity_verdict(responses, ASPECTS, 3.0, resampler), responses


def test_a_selective_scorer_has_a_dominant_diagonal_and_passes() -> None:
    verdict, responses = _measure(selective)
    matrix = np.array([[verdict["matrix"][m][a] for a in ASPECTS] for m in ASPECTS])
    assert (np.diag(matrix) > 0.05).all()
    np.testing.assert_allclose(matrix[~np.eye(len(ASPECTS), dtype=bool)], 0.0, atol=1e-12)
    assert verdict["passed"]
    assert all(v["ratio_low"] >= 3.0 for v in verdict["per_aspect"].values())
    assert selectivity_failures(verdict, 3.0, "stub/") == []
    assert responses.shape == (24, len(ASPECTS), len(ASPECTS))


@pytest.mark.parametrize("scorer", [mixing, shifted, leaky], ids=lambda f: f.__name__)
def test_scorers_that_ignore_or_mix_aspects_fail(scorer: Scorer) -> None:
    verdict, _ = _measure(scorer)
    assert not verdict["passed"]
    failures = selectivity_failures(verdict, 3.0, "stub/")
    assert failures and all(line.startswith("aspect_selectivity: stub/") for line in failures)


def test_the_leaky_scorer_names_the_aspect_it_leaks_from() -> None:
    verdict, _ = _measure(leaky)
    tempo = verdict["per_aspect"]["tempo"]
    assert tempo["other_aspect"] == "dynamics"  # tempo's sub-score carries half of dynamics
    assert 1.5 < tempo["ratio"] < 2.5  # about 2 (1 / 0.5, the responses differ by sample)
    assert tempo["ratio_low"] <= tempo["ratio"] + 1e-9


def test_pairs_that_are_not_valid_are_not_counted() -> None:
    original = np.zeros((2, 1, 2))
    moved = np.zeros((2, 1, 2, 2))
    moved[1] = 5.0  # only the second query sees a change, and it is not a valid pair
    valid = np.array([[True], [False]])
    np.testing.assert_array_equal(twin_responses(original, moved, valid), np.zeros((1, 2, 2)))


def test_without_twins_the_gate_does_not_apply_and_blocks_nothing() -> None:
    gate = {"systems": ["oracle"], "min_ratio": 3.0}
    verdict = selectivity_gate({"twins": None, "detail": "no twins", "systems": {}}, gate)
    assert verdict == Verdict("not_applicable", "no twins")
    assert release_of({"ranking": "passed", "aspect_selectivity": "not_applicable"}) == "approved"
    assert release_of({"ranking": "passed", "human_audit": "pending"}) == "candidate"


def test_with_twins_the_gate_checks_every_gated_system() -> None:
    good, _ = _measure(selective)
    bad, _ = _measure(mixing)
    block = {"twins": {"source_clips": 24}, "detail": "twins", "systems": {"a": good, "b": bad}}
    assert selectivity_gate(block, {"systems": ["a"], "min_ratio": 3.0}).status == "passed"
    failed = selectivity_gate(block, {"systems": ["a", "b"], "min_ratio": 3.0})
    assert failed.status == "failed"
    assert all("b/" in line for line in failed.failures)
