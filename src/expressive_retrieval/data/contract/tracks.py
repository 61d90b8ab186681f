"""The ``tracks`` table's rules: required columns, types, unique and file-safe track ids."""

from __future__ import annotations

import numpy as np
import pandas as pd

from expressive_retrieval.data.contract.violations import Violation, distinct_ids, missing_columns
from expressive_retrieval.data.segments import (
    MAX_TRACK_ID_LENGTH,
    TRACK_ID_PATTERN,
    is_safe_track_id,
)

REQUIRED_TRACK_COLUMNS = ("track_id", "artist_id", "work_id", "duration_s")


def check_tracks(tracks: pd.DataFrame, file: str, violations: list[Violation]) -> list[str]:
    """Check the ``tracks`` table; return its distinct safe track ids (in table order)."""
    if tracks.empty:
        violations.append(
            Violation(file, "tracks.empty", ("<no rows>",), "the tracks table has no rows")
        )
        return []
    missing = missing_columns(
        file, "tracks.columns", tracks.columns, REQUIRED_TRACK_COLUMNS, "required"
    )
    if missing:
        violations.append(missing)
    present = [c for c in REQUIRED_TRACK_COLUMNS if c in tracks.columns]
    if "track_id" in tracks.columns:
        labels = pd.Series(
            [f"row {i}" if pd.isna(t) else str(t) for i, t in enumerate(tracks["track_id"])],
            index=tracks.index,
        )
    else:
        labels = pd.Series([f"row {i}" for i in range(len(tracks))], index=tracks.index)

    null_mask = tracks[present].isna()
    if null_mask.to_numpy().any():
        null_columns = [c for c in present if null_mask[c].any()]
        violations.append(
            Violation(
                file,
                "tracks.nulls",
                distinct_ids(labels[null_mask.any(axis=1)]),
                f"null values in required columns {', '.join(null_columns)}",
            )
        )

    if "duration_s" in tracks.columns:
        column = tracks["duration_s"]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        duration = column.astype("float64") if numeric else pd.Series(np.nan, index=tracks.index)
        bad = ~(np.isfinite(duration) & (duration > 0)) & column.notna()
        if bad.any():
            found = "" if numeric else f", found dtype {column.dtype}"
            violations.append(
                Violation(
                    file,
                    "tracks.duration_s",
                    distinct_ids(labels[bad]),
                    f"duration_s must be a finite number > 0{found}",
                )
            )

    if "track_id" not in tracks.columns:
        return []
    ids = tracks["track_id"][tracks["track_id"].notna()]
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        violations.append(
            Violation(
                file, "track_id.unique", distinct_ids(duplicated), "duplicate track_id values"
            )
        )
    unsafe = [t for t in ids if not is_safe_track_id(t)]
    if unsafe:
        violations.append(
            Violation(
                file,
                "track_id.safe",
                distinct_ids(unsafe),
                f"track_id must be a string matching {TRACK_ID_PATTERN.pattern.strip('^$')}, "
                f"at most {MAX_TRACK_ID_LENGTH} characters, and not '.' or '..'",
            )
        )
    return [t for t in dict.fromkeys(ids) if is_safe_track_id(t)]
