"""Cluster bootstrap intervals, paired comparisons and Holm correction (docs/design.md, "Evaluation").

Queries are clips, and clips of one track overlap (50% hop) and share its performer and
work, so single queries are not independent. Every resample here draws whole **clusters**
(the split's groups by default: the tracks that share a work or an artist, the unit the
split itself keeps together) with replacement, and a statistic is the mean over the
queries of the drawn clusters (a cluster drawn twice counts twice).

* ``Resampler.interval``: percentile 95% intervals of the mean of every column of a
  ``[Q, M]`` table at once (one matrix product per table: the draws are cluster counts
  ``[B, C]``, the table is reduced to per-cluster sums ``[C, M]``).
* ``Resampler.compare``: the mean of a paired difference ``a - b``, its interval from the
  same draws, and a two-sided p-value from a randomisation test that flips the sign of
  each cluster's summed difference (every assignment when there are at most
  ``EXHAUSTIVE_UP_TO`` of them, otherwise as many random ones as resamples).
* ``holm``: Holm's step-down adjustment of a family of p-values.

A query whose value is NaN (no relevant candidate) is left out of every mean.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

LEVEL = 0.95
EXHAUSTIVE_UP_TO = 2**16  # sign assignments enumerated exactly (16 clusters)


@dataclass(frozen=True)
class Resampler:
    """Seeded cluster draws for one set of queries."""

    codes: np.ndarray  # [Q] the cluster of each query, 0..C-1
    counts: np.ndarray  # [B, C] how often each cluster is drawn in each resample
    signs: np.ndarray  # [S, C] +-1 per cluster for the randomisation test
    exhaustive: bool  # ``signs`` lists every assignment (the identity among them)

    @classmethod
    def draw(
        cls,
        units: np.ndarray,
        num_resamples: int,
        seed: int,
        exhaustive_up_to: int = EXHAUSTIVE_UP_TO,
    ) -> Resampler:
        """Draw ``num_resamples`` cluster resamples and the sign flips for queries in ``units``.

        Args:
            units: ``[Q]`` the independent unit of each query (e.g. its group id).
            num_resamples: bootstrap resamples, and sign-flip draws when the ``2^C``
                assignments are more than ``exhaustive_up_to``.
            seed: the generator's seed; the same seed gives the same intervals.
        """
        _, codes = np.unique(np.asarray(units), return_inverse=True)
        num_clusters = int(codes.max()) + 1 if len(codes) else 0
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, num_clusters, size=(num_resamples, num_clusters))
        counts = np.zeros((num_resamples, num_clusters), dtype=np.float64)
        np.add.at(counts, (np.arange(num_resamples)[:, None], picks), 1.0)
        exhaustive = 2**num_clusters <= exhaustive_up_to
        if exhaustive:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=num_clusters)))
        else:
            signs = rng.choice((1.0, -1.0), size=(num_resamples, num_clusters))
        return cls(codes=codes, counts=counts, signs=signs, exhaustive=exhaustive)

    @property
    def num_clusters(self) -> int:
        return self.counts.shape[1]

    def _cluster_sums(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-cluster sums of the non-NaN values and their counts, both ``[C, M]``."""
        judged = ~np.isnan(values)
        sums = np.zeros((self.num_clusters, values.shape[1]))
        seen = np.zeros_like(sums)
        np.add.at(sums, self.codes, np.where(judged, values, 0.0))
        np.add.at(seen, self.codes, judged.astype(np.float64))
        return sums, seen

    def means(self, values: np.ndarray) -> np.ndarray:
        """Bootstrap means ``[B, M]`` of every column of ``values`` ``[Q, M]``."""
        sums, seen = self._cluster_sums(
            np.asarray(values, dtype=np.float64).reshape(len(self.codes), -1)
        )
        totals = self.counts @ seen
        return np.divide(
            self.counts @ sums, totals, out=np.full_like(totals, np.nan), where=totals > 0
        )

    def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile ``LEVEL`` intervals ``(low [M], high [M])`` of the column means."""
        tail = 100 * (1 - LEVEL) / 2
        low, high = np.nanpercentile(self.means(values), [tail, 100 - tail], axis=0)
        return low, high

    def compare(self, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        """Paired difference ``a - b`` of per-query values ``[Q]``.

        Returns:
            ``mean_diff``, the interval ``low``/``high`` and the randomisation ``p_value``.
        """
        diff = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))[:, None]
        low, high = self.interval(diff)
        sums, seen = self._cluster_sums(diff)
        observed = sums.sum() / max(seen.sum(), 1.0)
        flipped = (self.signs @ sums[:, 0]) / max(seen.sum(), 1.0)
        extreme = int(np.sum(np.abs(flipped) >= abs(observed) - 1e-12))
        # Sampled flips count the observed assignment once more (a valid p-value).
        p_value = extreme / len(flipped) if self.exhaustive else (extreme + 1) / (len(flipped) + 1)
        return {
            "mean_diff": float(observed),
            "low": float(low[0]),
            "high": float(high[0]),
            "p_value": float(p_value),
        }


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted.tolist()


def compare_pairs(
    per_query: dict[str, dict[str, np.ndarray]],
    pairs: list[tuple[str, str]],
    resampler: Resampler,
    alpha: float,
    metric: str,
) -> dict[str, list[dict[str, Any]]]:
    """Paired comparisons ``a - b`` of every pair on every task, Holm-corrected together.

    Args:
        per_query: ``{task: {system: [Q] values of metric}}`` (NaN: query left out).
        pairs: ``(a, b)`` system pairs.
        alpha: family-wise error rate; a difference is ``real`` when its Holm-adjusted
            p-value is below it.

    Returns:
        ``{task: [{a, b, metric, mean_diff, low, high, p_value, p_holm, real}]}``.
    """
    rows = [
        {"task": task, "a": a, "b": b, "metric": metric, **resampler.compare(values[a], values[b])}
        for task, values in per_query.items()
        for a, b in pairs
    ]
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
        row["real"] = bool(adjusted < alpha)
    return {
        task: [{k: v for k, v in r.items() if k != "task"} for r in rows if r["task"] == task]
        for task in per_query
    }


def finding(comparison: dict[str, Any], task: str, alpha: float) -> str:
    """One sentence saying whether a comparison's difference is real."""
    c = comparison
    figures = (
        f"{c['mean_diff']:+.3f} {c['metric']} [{c['low']:+.3f}, {c['high']:+.3f}], "
        f"p = {c['p_value']:.3g} (Holm {c['p_holm']:.3g})"
    )
    if c["real"]:
        verdict = "better" if c["mean_diff"] > 0 else "worse"
        return f"{task}: {c['a']} is {verdict} than {c['b']} ({figures}): a real difference."
    return (
        f"{task}: {c['a']} vs {c['b']} ({figures}): not shown to differ "
        f"(Holm-adjusted p not below {alpha})."
    )
