"""Expressive relevance from proxy targets: the one definition that labels and evaluation share.

1. Missing proxy values are filled within their track (linear interpolation over
   ``segment_idx``, then nearest value); a proxy missing for a whole track takes the
   corpus median.
2. Each clip summarises each proxy of an aspect over its segments with the aspect's
   ``aggregate`` list: ``mean``, ``std`` (population) or ``slope`` (least squares, per
   segment). ``std`` and ``slope`` describe behaviour across segments.
3. Features are standardised robustly (median, 1.4826·MAD) with statistics fitted on the
   train split only.
4. ``target_<aspect>(q, c) = exp(-d² / (2·bandwidth²))`` where ``d`` is the RMS
   difference of the aspect's standardised features: 1 for identical expression, near 0
   for unrelated.
5. Graded relevance 0..3 = how many ``thresholds`` the weighted mean of the aspect
   targets (``default_weight`` of each aspect) reaches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

AGGREGATES = ("mean", "std", "slope")


def feature_columns(aspects: dict[str, dict]) -> list[tuple[str, str, str]]:
    """``(aspect, proxy, aggregate)`` for every clip feature, in a fixed order."""
    columns = []
    for aspect, spec in aspects.items():
        aggregates = spec.get("aggregate", ["mean"])
        unknown = set(aggregates) - set(AGGREGATES)
        if unknown:
            raise ValueError(
                f"aspect {aspect!r}: unknown aggregate {sorted(unknown)}; use {AGGREGATES}"
            )
        columns += [(aspect, proxy, agg) for proxy in spec["proxies"] for agg in aggregates]
    return columns


def proxy_columns(aspects: dict[str, dict]) -> list[str]:
    """Every proxy column the aspects use, once each, in order of first use."""
    return list(dict.fromkeys(p for spec in aspects.values() for p in spec["proxies"]))


def feature_name(aspect: str, proxy: str, aggregate: str) -> str:
    return f"{aspect}.{proxy}.{aggregate}"


def fill_missing_proxies(proxy_targets: pd.DataFrame, proxy_columns: list[str]) -> pd.DataFrame:
    """Sorted copy with NaN proxies filled within each track, then by the corpus median."""
    filled = proxy_targets.sort_values(["track_id", "segment_idx"], kind="stable").reset_index(
        drop=True
    )
    by_track = filled.groupby("track_id", sort=False)[proxy_columns]
    filled[proxy_columns] = by_track.transform(lambda col: col.interpolate(limit_direction="both"))
    medians = proxy_targets[proxy_columns].median()
    filled[proxy_columns] = filled[proxy_columns].fillna(medians).fillna(0.0)
    return filled


def _slope(values: np.ndarray) -> np.ndarray:
    """Least-squares slope per row of ``[n, S]`` against ``0..S-1``."""
    t = np.arange(values.shape[1], dtype=np.float64)
    t -= t.mean()
    return (values - values.mean(axis=1, keepdims=True)) @ t / (t @ t)


def clip_features(
    filled_proxies: pd.DataFrame, clips: pd.DataFrame, aspects: dict[str, dict]
) -> pd.DataFrame:
    """Per-clip aggregated proxy features in raw units, indexed by ``clip_id``.

    Args:
        filled_proxies: output of :func:`fill_missing_proxies` (sorted, complete).
        clips: ``clip_id, track_id, segment_start, segment_end`` (equal lengths).
        aspects: the ``aspects`` parameter.
    """
    sizes = filled_proxies.groupby("track_id", sort=False).size()
    offsets = pd.Series(np.concatenate([[0], np.cumsum(sizes.to_numpy())[:-1]]), sizes.index)
    length = int((clips["segment_end"] - clips["segment_start"]).iloc[0]) if len(clips) else 0
    rows = (
        offsets.reindex(clips["track_id"]).to_numpy()[:, None]
        + clips["segment_start"].to_numpy()[:, None]
        + np.arange(length)[None, :]
    )
    summarise = {"mean": lambda v: v.mean(axis=1), "std": lambda v: v.std(axis=1), "slope": _slope}
    data = {}
    for aspect, proxy, agg in feature_columns(aspects):
        values = filled_proxies[proxy].to_numpy(dtype=np.float64)[rows]
        data[feature_name(aspect, proxy, agg)] = summarise[agg](values)
    return pd.DataFrame(data, index=pd.Index(clips["clip_id"], name="clip_id"))


@dataclass
class RelevanceModel:
    """Everything needed to turn clip features into targets and grades, JSON-serialisable."""

    aspects: list[str]
    features: list[str]
    feature_aspect: list[int]
    center: list[float]
    scale: list[float]
    bandwidth: float
    thresholds: list[float]
    weights: list[float]

    @classmethod
    def fit(
        cls,
        train_features: pd.DataFrame,
        aspects: dict[str, dict],
        bandwidth: float,
        thresholds: list[float],
    ) -> RelevanceModel:
        """Fit the robust standardisation on the train split's clip features."""
        columns = feature_columns(aspects)
        names = [feature_name(*c) for c in columns]
        values = train_features[names].to_numpy(dtype=np.float64)
        center = np.median(values, axis=0)
        mad = 1.4826 * np.median(np.abs(values - center), axis=0)
        scale = np.where(mad > 1e-12, mad, values.std(axis=0))
        scale = np.where(scale > 1e-12, scale, 1.0)
        order = list(aspects)
        return cls(
            aspects=order,
            features=names,
            feature_aspect=[order.index(c[0]) for c in columns],
            center=center.tolist(),
            scale=scale.tolist(),
            bandwidth=float(bandwidth),
            thresholds=sorted(float(t) for t in thresholds),
            weights=[float(aspects[a].get("default_weight", 1.0)) for a in order],
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RelevanceModel:
        return cls(**data)

    def standardize(self, features: pd.DataFrame) -> np.ndarray:
        """``[n, F]`` standardised features (float32) in this model's feature order."""
        values = features[self.features].to_numpy(dtype=np.float64)
        return ((values - np.asarray(self.center)) / np.asarray(self.scale)).astype(np.float32)

    def targets(self, query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Per-aspect target similarity ``[Q, N, A]`` in [0, 1] from standardised features.

        ``candidates`` is ``[N, F]`` (shared by every query) or ``[Q, N, F]`` (one list per query).
        """
        shared = candidates[None] if candidates.ndim == 2 else candidates
        return self._similarity((query[:, None, :] - shared) ** 2)

    def kernel_features(self, features: np.ndarray, dim: int, seed: int) -> np.ndarray:
        """Random Fourier features ``[n, A·dim]`` whose inner products approximate ``combined``.

        Each aspect's Gaussian target is ``E[φ_a(q)·φ_a(c)]`` for ``φ_a(x) = sqrt(2/dim)
        cos(W x_a + u)``, ``W ~ N(0, 1/(count_a·bandwidth²))``, ``u ~ U(0, 2π)`` (Rahimi and
        Recht, "Random Features for Large-Scale Kernel Machines", 2007); scaling ``φ_a`` by
        ``sqrt(w_a / sum(w))`` makes the inner product the weighted mean. Error ~ 1/sqrt(dim).

        Args:
            features: ``[n, F]`` standardised features.
            dim: random features per aspect.
            seed: draws ``W`` and ``u``; the same seed embeds queries and candidates alike.
        """
        rng = np.random.default_rng(seed)
        index = np.asarray(self.feature_aspect)
        weights = np.asarray(self.weights, dtype=np.float64) / sum(self.weights)
        parts = []
        for a in range(len(self.aspects)):
            columns = features[:, index == a].astype(np.float64)
            sigma = np.sqrt(columns.shape[1]) * self.bandwidth
            projection = rng.normal(size=(columns.shape[1], dim)) / sigma
            phase = rng.uniform(0, 2 * np.pi, dim)
            parts.append(np.sqrt(2 * weights[a] / dim) * np.cos(columns @ projection + phase))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _similarity(self, diff2: np.ndarray) -> np.ndarray:
        """Per-aspect targets ``[..., A]`` from squared feature differences ``[..., F]``."""
        index = np.asarray(self.feature_aspect)
        counts = np.bincount(index, minlength=len(self.aspects)).astype(np.float32)
        per_aspect = np.zeros((*diff2.shape[:-1], len(self.aspects)), dtype=np.float32)
        for a in range(len(self.aspects)):  # a few aspects; the [Q, N] work is vectorised
            per_aspect[..., a] = diff2[..., index == a].sum(axis=-1) / counts[a]
        return np.exp(-per_aspect / (2 * self.bandwidth**2))

    def combined(self, targets: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Weighted mean of aspect targets ``[..., A] -> [...]``."""
        w = np.asarray(self.weights if weights is None else weights, dtype=np.float64)
        return targets @ (w / w.sum())

    def grades(self, targets: np.ndarray) -> np.ndarray:
        """Graded relevance 0..3 from aspect targets ``[..., A]``."""
        combined = self.combined(targets)
        return (combined[..., None] >= np.asarray(self.thresholds)).sum(axis=-1).astype(np.int8)
