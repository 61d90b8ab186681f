"""Aspect behaviour tests shared by the oracle gate and evaluation (docs/design.md, "Evaluation").

* **Faithfulness**: over (query, candidate) pairs, the Spearman correlation between each
  aspect's sub-score and every aspect's target similarity. A faithful model has a
  dominant diagonal: aspect ``a``'s sub-score tracks ``target_a`` clearly better than any
  other target.
* **Counterfactual**: raising one aspect's weight must raise that aspect's mean target
  similarity over the top-``k``. A model whose aspect heads are tied or ignore their
  aspect leaves the top-``k`` where it was.
"""

from __future__ import annotations

import numpy as np


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks along axis 0 of ``[P, A]`` (ties share their mean rank)."""
    ranks = np.empty_like(values, dtype=np.float64)
    for a in range(values.shape[1]):
        column = values[:, a]
        order = np.argsort(column, kind="stable")
        sorted_values = column[order]
        starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
        ends = np.r_[starts[1:], len(column)]
        mean_rank = (starts + ends - 1) / 2.0
        ranks[order, a] = np.repeat(mean_rank, ends - starts)
    return ranks


def faithfulness_matrix(sub_scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Spearman correlations ``[A_score, A_target]`` from ``[P, A]`` sub-scores and targets."""
    assert sub_scores.ndim == 2 and sub_scores.shape == targets.shape
    x, y = _ranks(sub_scores), _ranks(targets)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
    y = (y - y.mean(0)) / np.maximum(y.std(0), 1e-12)
    return x.T @ y / len(x)


def faithfulness_verdict(
    matrix: np.ndarray, aspects: list[str], min_diagonal: float, min_margin: float
) -> dict:
    """Per-aspect diagonal, margin over the best other target, and pass/fail."""
    per_aspect, passed = {}, True
    for a, name in enumerate(aspects):
        others = np.delete(matrix[a], a)
        margin = float(matrix[a, a] - (others.max() if len(others) else 0.0))
        ok = bool(matrix[a, a] >= min_diagonal and margin >= min_margin)
        per_aspect[name] = {"diagonal": float(matrix[a, a]), "margin": margin, "passed": ok}
        passed &= ok
    return {
        "matrix": {
            s: {t: float(matrix[i, j]) for j, t in enumerate(aspects)}
            for i, s in enumerate(aspects)
        },
        "per_aspect": per_aspect,
        "passed": passed,
    }


def _top_k_mean_targets(
    scores: np.ndarray, targets: np.ndarray, valid: np.ndarray, k: int
) -> np.ndarray:
    """Mean target of each query's top-``k`` valid candidates, per aspect: ``[Q, A]``."""
    masked = np.where(valid, scores, -np.inf)
    top = np.argpartition(-masked, kth=min(k, masked.shape[1]) - 1, axis=1)[:, :k]
    chosen_valid = np.take_along_axis(valid, top, axis=1)[..., None]
    chosen = np.take_along_axis(targets, top[..., None], axis=1)
    return (chosen * chosen_valid).sum(1) / np.maximum(chosen_valid.sum(1), 1)


def counterfactual_changes(
    aspect_scores: np.ndarray,
    targets: np.ndarray,
    valid: np.ndarray,
    base_weights: np.ndarray,
    boost: float,
    k: int,
) -> np.ndarray:
    """How each query's top-``k`` mean targets change when one aspect's weight is raised.

    Args:
        aspect_scores: per-aspect similarities ``[Q, N, A]``; a system's total is their
            weighted sum with normalised weights.
        targets: per-aspect target similarities ``[Q, N, A]``.
        valid: ``[Q, N]`` candidates each query may retrieve.
        base_weights: ``[A]`` default aspect weights.
        boost: aspect ``a`` gets ``w_a + boost * sum(w)`` before normalising.
        k: the depth whose mean targets are compared.

    Returns:
        ``[A_boosted, Q, A_target]``: after minus before; ``[a, :, a]`` is the intended move.
    """
    base = np.asarray(base_weights, dtype=np.float64)
    before = _top_k_mean_targets(aspect_scores @ (base / base.sum()), targets, valid, k)
    changes = np.empty((len(base), *before.shape))
    for a in range(len(base)):
        raised = base.copy()
        raised[a] += boost * base.sum()
        after = _top_k_mean_targets(aspect_scores @ (raised / raised.sum()), targets, valid, k)
        changes[a] = after - before
    return changes


def counterfactual_shares(
    aspect_scores: np.ndarray,
    targets: np.ndarray,
    valid: np.ndarray,
    base_weights: np.ndarray,
    boost: float,
    k: int,
    tolerance: float = 1e-6,
) -> np.ndarray:
    """Share of queries ``[A]`` whose top-``k`` target of aspect ``a`` rises when ``w_a`` is raised.

    Arguments as ``counterfactual_changes``.
    """
    changes = counterfactual_changes(aspect_scores, targets, valid, base_weights, boost, k)
    own = np.arange(changes.shape[0])
    return (changes[own, :, own] > tolerance).mean(axis=1)
