"""Aspect selectivity by intervention (docs/evaluation.md, "Aspect selectivity").

Faithfulness correlates each sub-score with the target similarities the heads were trained
to regress: a held-out fit. Selectivity intervenes instead. A *twin* is a performance
regenerated with one aspect's latent moved and nothing else changed; a sub-score that
responds to its aspect, and only to it, moves when its own aspect's twin replaces the
original candidate and stays put for the other aspects' twins.

* ``twin_responses``: per source clip, the matrix ``[moved aspect, sub-score aspect]`` of
  mean ``|s_b(q, twin_m) - s_b(q, original)|`` over the queries.
* ``selectivity_verdict``: their mean (the selectivity matrix) and, per sub-score aspect
  ``b``, the ratio of its response to ``b``'s twins over its largest response to another
  aspect's twins, with the 95% cluster-bootstrap lower bound the gate decides on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from expressive_retrieval.evaluation.uncertainty import LEVEL, Resampler

_FLOOR = 1e-12  # a sub-score that no other aspect's twin moves has a finite, huge ratio


def twin_responses(original: np.ndarray, twins: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """How much every sub-score moves when each aspect's twin replaces a source clip.

    Args:
        original: ``[Q, N, A]`` sub-scores of ``Q`` queries against ``N`` source clips.
        twins: ``[Q, N, M, A]`` the same against each source clip's twin of moved aspect
            ``m`` (``M = A``, in aspect order).
        valid: ``[Q, N]`` the pairs counted (a query never meets its own track).

    Returns:
        ``[N, M, A]``: per source clip, the mean absolute change over its valid queries.
    """
    assert twins.shape[:2] == original.shape[:2] == valid.shape, (twins.shape, valid.shape)
    assert twins.shape[2:] == (original.shape[2], original.shape[2]), twins.shape
    change = np.abs(twins - original[:, :, None, :]) * valid[:, :, None, None]
    return change.sum(0) / np.maximum(valid.sum(0), 1)[:, None, None]


def _ratios(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sub-score aspect (columns of ``[..., M, A]``): own response, largest other
    response, and which moved aspect gave it."""
    num = matrix.shape[-1]
    own = np.diagonal(matrix, axis1=-2, axis2=-1)
    others = np.where(np.eye(num, dtype=bool), -np.inf, matrix)
    return own, others.max(-2), others.argmax(-2)


def selectivity_verdict(
    responses: np.ndarray, aspects: list[str], min_ratio: float, resampler: Resampler
) -> dict[str, Any]:
    """The selectivity matrix and, per aspect, whether its sub-score is selective.

    Args:
        responses: ``[N, M, A]`` from ``twin_responses``.
        aspects: the aspect names, the order of ``M`` and ``A``.
        min_ratio: the lowest admissible lower bound of own / largest other response.
        resampler: cluster draws over the ``N`` source clips' independent units.

    Returns:
        ``{"matrix": {moved: {sub-score: float}}, "per_aspect": {aspect: {"own",
        "largest_other", "other_aspect", "ratio", "ratio_low", "passed"}}, "passed"}``.
    """
    num = len(aspects)
    matrix = responses.mean(0)
    own, other, which = _ratios(matrix)
    boot_own, boot_other, _ = _ratios(
        resampler.means(responses.reshape(len(responses), -1)).reshape(-1, num, num)
    )
    boot_ratio = boot_own / np.maximum(boot_other, _FLOOR)
    low = np.nanpercentile(boot_ratio, 100 * (1 - LEVEL) / 2, axis=0)
    per_aspect = {
        a: {
            "own": float(own[b]),
            "largest_other": float(other[b]),
            "other_aspect": aspects[which[b]] if num > 1 else None,
            "ratio": float(own[b] / max(other[b], _FLOOR)),
            "ratio_low": float(low[b]),
            "passed": bool(low[b] >= min_ratio),
        }
        for b, a in enumerate(aspects)
    }
    return {
        "matrix": {
            m: {a: float(matrix[i, j]) for j, a in enumerate(aspects)}
            for i, m in enumerate(aspects)
        },
        "per_aspect": per_aspect,
        "passed": all(v["passed"] for v in per_aspect.values()),
    }
