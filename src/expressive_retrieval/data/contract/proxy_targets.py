"""The ``proxy_targets`` table's rules: keys, one row per segment, the aspects' columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.contract.segment_files import SegmentSummary
from expressive_retrieval.data.contract.violations import (
    Violation,
    distinct_ids,
    list_ids,
    missing_columns,
)

KEY_COLUMNS = ("track_id", "segment_idx")
# Each proxy column an aspect names must have a value in at least this share of segments:
# below it, the missing values (filled with the column's median) would outweigh the
# measured ones and the aspect's targets would say "similar" for almost every pair.
MIN_PROXY_COVERAGE = 0.5


def _aspect_columns(aspects: dict, columns: list[str]) -> list[tuple[str, str]]:
    """``(column, aspect)`` for each numeric proxy column an aspect names."""
    return [
        (c, str(name))
        for name, spec in aspects.items()
        if isinstance(spec, dict) and isinstance(spec.get("proxies"), list)
        for c in spec["proxies"]
        if c in columns
    ]


def _check_values(
    proxy_targets: pd.DataFrame,
    named: list[tuple[str, str]],
    file: str,
    violations: list[Violation],
) -> None:
    """Proxy values are finite or NaN (missing): ``±inf`` is refused, by track and segment."""
    for column, aspect in dict(named).items():
        values = proxy_targets[column].to_numpy(dtype=np.float64)
        bad = np.isinf(values)
        if bad.any():
            rows = proxy_targets[bad]
            violations.append(
                Violation(
                    file,
                    "proxy_targets.finite",
                    distinct_ids(
                        rows["track_id"].astype(str) + ":" + rows["segment_idx"].astype(str)
                    ),
                    f"proxy column {column} (aspect {aspect}) holds infinite values at these "
                    "(track_id:segment_idx); use NaN for a missing value",
                )
            )


def _check_coverage(
    missing_fraction: dict[str, float],
    named: list[tuple[str, str]],
    file: str,
    violations: list[Violation],
) -> None:
    """Each aspect's proxy columns have values in at least ``MIN_PROXY_COVERAGE`` of rows."""
    thin = [
        f"{aspect}:{column} ({1 - missing_fraction[column]:.0%})"
        for column, aspect in named
        if 1 - missing_fraction[column] < MIN_PROXY_COVERAGE
    ]
    if thin:
        violations.append(
            Violation(
                file,
                "proxy_targets.coverage",
                tuple(thin),
                f"each proxy column named by an aspect needs values in at least "
                f"{MIN_PROXY_COVERAGE:.0%} of segments; these (aspect:column, coverage) have "
                "fewer: measure them or drop them from the aspects parameter",
            )
        )


def _check_aspect_proxies(
    aspects: dict, columns: pd.Index, file: str, violations: list[Violation]
) -> None:
    """Every proxy column named by an aspect must be a column of ``proxy_targets``."""
    malformed = [
        str(name)
        for name, spec in aspects.items()
        if not isinstance(spec, dict)
        or not isinstance(spec.get("proxies"), list)
        or not all(isinstance(c, str) for c in spec["proxies"])
    ]
    if malformed:
        violations.append(
            Violation(
                "parameters:aspects",
                "aspects.proxy_columns",
                tuple(malformed),
                "each aspect needs a 'proxies' list of column names",
            )
        )
    absent = [
        f"{name}:{column}"
        for name, spec in aspects.items()
        if str(name) not in malformed
        for column in spec["proxies"]
        if column not in columns or column in KEY_COLUMNS
    ]
    if absent:
        violations.append(
            Violation(
                file,
                "aspects.proxy_columns",
                tuple(absent),
                "proxy columns named in the aspects parameter are not proxy columns of "
                "proxy_targets",
            )
        )


def _segment_index(
    column: pd.Series, labels: pd.Series, file: str, violations: list[Violation]
) -> pd.Series:
    """``segment_idx`` as int64; rows without a valid integer are dropped (and reported)."""
    if pd.api.types.is_integer_dtype(column) and not column.isna().any():
        return column.astype("int64")
    values = pd.to_numeric(column, errors="coerce").astype("float64")
    valid = values.notna() & np.isfinite(values) & (values == values.round())
    invalid = ~valid
    found = str(column.dtype)
    violations.append(
        Violation(
            file,
            "proxy_targets.segment_idx_int",
            distinct_ids(f"{t}:{v}" for t, v in zip(labels[invalid], column[invalid], strict=True))
            if invalid.any()
            else ("segment_idx",),
            f"segment_idx must be an integer column without nulls, found dtype {found}"
            + (f" with {int(invalid.sum())} null or non-integer value(s)" if invalid.any() else ""),
        )
    )
    return values[valid].astype("int64")


def check_proxy_targets(
    proxy_targets: pd.DataFrame,
    track_ids: list[str],
    summary: SegmentSummary,
    aspects: dict,
    file: str,
    violations: list[Violation],
    warnings: list[str],
) -> dict[str, Any]:
    """Check keys, proxy columns and one row per segment; return proxy stats for the report."""
    missing_keys = missing_columns(
        file, "proxy_targets.columns", proxy_targets.columns, KEY_COLUMNS, "key"
    )
    if missing_keys:
        violations.append(missing_keys)
    proxy_names = [c for c in proxy_targets.columns if c not in KEY_COLUMNS]
    non_numeric = [
        str(c)
        for c in proxy_names
        if not pd.api.types.is_numeric_dtype(proxy_targets[c])
        or pd.api.types.is_bool_dtype(proxy_targets[c])
    ]
    if non_numeric:
        violations.append(
            Violation(
                file,
                "proxy_targets.proxy_numeric",
                tuple(non_numeric),
                "proxy columns must be numeric (NaN = missing)",
            )
        )
    _check_aspect_proxies(aspects, proxy_targets.columns, file, violations)

    proxy_columns = [str(c) for c in proxy_names if str(c) not in non_numeric]
    missing_fraction = {
        c: float(proxy_targets[c].isna().mean()) if len(proxy_targets) else 1.0
        for c in proxy_columns
    }
    named = _aspect_columns(aspects, proxy_columns)
    _check_coverage(missing_fraction, named, file, violations)
    empty = [c for c, f in missing_fraction.items() if f == 1.0 and c not in dict(named)]
    if empty:
        warnings.append(f"unused proxy column(s) entirely NaN in {file}: {list_ids(empty)}")
    stats = {"proxy_columns": proxy_columns, "missing_fraction": missing_fraction}
    if missing_keys or not track_ids:
        return stats
    _check_values(proxy_targets, named, file, violations)

    labels = proxy_targets["track_id"].astype(str)
    unknown = ~labels.isin(set(track_ids))
    if unknown.any():
        violations.append(
            Violation(
                file,
                "proxy_targets.unknown_track",
                distinct_ids(labels[unknown]),
                "rows name track_id values that are not in tracks",
            )
        )
    idx = _segment_index(proxy_targets["segment_idx"], labels, file, violations)
    keys = pd.DataFrame({"track_id": labels[idx.index], "segment_idx": idx})
    keys = keys[~unknown[idx.index]]
    _check_segment_rows(keys, track_ids, summary.num_segments, file, violations)
    return stats


def _check_segment_rows(
    keys: pd.DataFrame,
    track_ids: list[str],
    num_segments: dict[str, int],
    file: str,
    violations: list[Violation],
) -> None:
    """Range, duplicate and completeness checks of ``(track_id, segment_idx)`` rows."""
    duplicated = keys.duplicated(keep="first")
    if duplicated.any():
        dup = keys[duplicated]
        violations.append(
            Violation(
                file,
                "proxy_targets.duplicates",
                distinct_ids(dup["track_id"] + ":" + dup["segment_idx"].astype(str)),
                "more than one row for the same (track_id, segment_idx)",
            )
        )
    sized = [t for t in track_ids if t in num_segments]
    counts = np.array([num_segments[t] for t in sized], dtype=np.int64)
    offsets = pd.Series(np.cumsum(counts) - counts, index=sized)
    limits = pd.Series(counts, index=sized)
    keys = keys[keys["track_id"].isin(limits.index)]
    n = keys["track_id"].map(limits).to_numpy()
    in_range = (keys["segment_idx"].to_numpy() >= 0) & (keys["segment_idx"].to_numpy() < n)
    if not in_range.all():
        out = keys[~in_range]
        violations.append(
            Violation(
                file,
                "proxy_targets.segment_idx_range",
                distinct_ids(out["track_id"] + ":" + out["segment_idx"].astype(str)),
                "segment_idx outside 0..num_segments-1 of its track's segment file",
            )
        )
    keys = keys[in_range]
    present = np.zeros(int(counts.sum()), dtype=bool)
    present[keys["track_id"].map(offsets).to_numpy() + keys["segment_idx"].to_numpy()] = True
    if not present.all():
        positions = np.flatnonzero(~present)
        owner = np.repeat(np.arange(len(sized)), counts)[positions]
        segment = positions - offsets.to_numpy()[owner]
        violations.append(
            Violation(
                file,
                "proxy_targets.rows_complete",
                tuple(f"{sized[o]}:{s}" for o, s in zip(owner, segment, strict=True)),
                "every segment of every track needs one row; these (track_id:segment_idx) "
                "rows are missing",
            )
        )
