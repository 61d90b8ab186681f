"""Discovery evidence → layer priors: the one reading of ``layer_scores`` (numpy only).

docs/design.md, "Raw inputs": scores are any finite numbers, as layer probes produce them
(R², correlations, accuracies above chance). A score <= 0 is no evidence for that layer;
an aspect with no positive score has no evidence at all. Routing initialisation, the
routing-prior loss, the discovery-weighted baseline and the choice between discovery and
probes all read evidence through these two functions, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _scores(layer_scores: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    scores = np.asarray(layer_scores, dtype=np.float64)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"layer_scores must be [A, L] with A, L > 0, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("layer_scores must be finite")
    return scores


def has_evidence(layer_scores: Sequence[float]) -> bool:
    """True when one aspect's scores hold evidence: some layer scores above 0."""
    return bool((_scores([layer_scores]) > 0).any())


def layer_priors(layer_scores: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Per-aspect layer priors ``[A, L]`` (rows sum to 1) from raw evidence ``[A, L]``.

    Scores <= 0 count as 0; the positive scores are normalised per aspect; an aspect
    without evidence weighs every layer equally.
    """
    positive = np.clip(_scores(layer_scores), 0.0, None)
    total = positive.sum(axis=1, keepdims=True)
    uniform = np.full_like(positive, 1.0 / positive.shape[1])
    return np.where(total > 0, positive / np.where(total > 0, total, 1.0), uniform)
