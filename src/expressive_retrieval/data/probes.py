"""Layer-wise probes: evidence of which layers carry an aspect, where discovery has none.

For each layer, a ridge regression predicts the aspect's standardised clip features from
that layer's clip summary (mean and standard deviation over the clip's segments, so
aspects that live across segments are reachable). The cross-validated R², clipped at 0
and scaled to a maximum of 1, is the layer score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.relevance import RelevanceModel
from expressive_retrieval.data.segments import SegmentStore


def clip_layer_summaries(segments: SegmentStore, clips: pd.DataFrame) -> np.ndarray:
    """``[n_clips, L, 2D]``: per-layer mean and std over each clip's segments, streamed."""
    rows = []
    with segments:
        for clip in clips.itertuples(index=False):
            x = segments.clip(clip.track_id, clip.segment_start, clip.segment_end)
            x = x.astype(np.float32)
            rows.append(np.concatenate([x.mean(axis=0), x.std(axis=0)], axis=-1))
    return np.stack(rows)


def _cv_ridge_r2(x: np.ndarray, y: np.ndarray, ridge: float, folds: np.ndarray) -> float:
    """Mean R² over folds of a dual-form ridge fit ``x [n, p] -> y [n, k]``."""
    scores = []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        mu_x, mu_y = x[train].mean(0), y[train].mean(0)
        xt, yt = x[train] - mu_x, y[train] - mu_y
        alpha = np.linalg.solve(xt @ xt.T + ridge * np.eye(len(xt)), yt)
        pred = (x[test] - mu_x) @ (xt.T @ alpha) + mu_y
        resid = ((y[test] - pred) ** 2).sum()
        total = ((y[test] - y[test].mean(0)) ** 2).sum()
        scores.append(1.0 - resid / max(total, 1e-12))
    return float(np.mean(scores))


def probe_layer_scores(
    segments: SegmentStore,
    train_clips: pd.DataFrame,
    train_features: np.ndarray,
    model: RelevanceModel,
    aspects: list[str],
    params: dict[str, Any],
    seed: int,
) -> dict[str, list[float]]:
    """Layer scores ``{aspect: [L floats in 0..1]}`` from probes on (a sample of) train clips.

    Args:
        segments: the segment store.
        train_clips: train-split clips.
        train_features: their standardised features ``[n, F]`` (RelevanceModel order).
        model: the relevance model (which features belong to which aspect).
        aspects: the aspects to probe.
        params: ``max_clips`` (sample size, bounds memory), ``ridge``, ``folds``.
        seed: seeds the sample and the folds.
    """
    rng = np.random.default_rng(seed)
    take = np.sort(rng.permutation(len(train_clips))[: params["max_clips"]])
    summaries = clip_layer_summaries(segments, train_clips.iloc[take])
    summaries = (summaries - summaries.mean(0)) / (summaries.std(0) + 1e-6)
    folds = rng.integers(0, params["folds"], len(take))
    index = np.asarray(model.feature_aspect)
    scores = {}
    for aspect in aspects:
        y = train_features[take][:, index == model.aspects.index(aspect)]
        r2 = np.array(
            [
                _cv_ridge_r2(summaries[:, layer], y, params["ridge"], folds)
                for layer in range(summaries.shape[1])
            ]
        )
        r2 = np.clip(r2, 0.0, None)
        scores[aspect] = (r2 / r2.max() if r2.max() > 0 else np.ones_like(r2)).round(6).tolist()
    return scores
