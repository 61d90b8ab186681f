"""The ``segments`` folder's rules, read from ``.npy`` headers and streamed memory maps.

A rule that several segment files break is reported once: the ``file`` is that segment file
when there is a single offender, else the segments folder, and ``ids`` lists every track.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from expressive_retrieval.data.contract.violations import Violation, examples, list_ids
from expressive_retrieval.data.segments import SegmentStore, npy_header

SEGMENT_DTYPES = ("float16", "float32")
FINITE_BLOCK_SEGMENTS = 64
CLOSE_EVERY_FILES = 64


@dataclass
class SegmentSummary:
    """What the segment check learnt, for the checks that depend on it."""

    num_segments: dict[str, int]
    L: int | None
    D: int | None
    dtype: str | None


def _grouped(
    offenders: list[str], segments: SegmentStore, folder: str, rule: str, detail: str
) -> Violation:
    """One violation for ``offenders``: named by their file if single, else by the folder."""
    file = str(segments.path(offenders[0])) if len(offenders) == 1 else folder
    return Violation(file, rule, tuple(offenders), detail)


def check_segments(
    track_ids: list[str],
    segments: SegmentStore,
    folder: str,
    violations: list[Violation],
    warnings: list[str],
) -> SegmentSummary:
    """Check one rank-3, same-layout, float16/32, finite ``<track_id>.npy`` per track."""
    missing = [t for t in track_ids if not segments.path(t).is_file()]
    missing_set = set(missing)
    if missing:
        where = "" if segments.root.is_dir() else f" (folder {folder} does not exist)"
        violations.append(
            _grouped(missing, segments, folder, "segments.file_exists", f"no segment file{where}")
        )
    known = set(track_ids)
    stray = [t for t in segments.track_ids() if t not in known] if segments.root.is_dir() else []
    if stray:
        warnings.append(
            f"{len(stray)} segment file(s) in {folder} belong to no track in tracks and are "
            f"ignored: {list_ids(stray)}"
        )

    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    unreadable: dict[str, str] = {}
    for track_id in track_ids:
        if track_id in missing_set:
            continue
        try:
            headers[track_id] = npy_header(segments.path(track_id))
        except (OSError, ValueError, EOFError) as error:
            unreadable[track_id] = str(error)

    shapes = {t: shape for t, (shape, _) in headers.items()}
    bad_rank = {t: shape for t, shape in shapes.items() if len(shape) != 3}
    if bad_rank:
        violations.append(
            _grouped(
                list(bad_rank),
                segments,
                folder,
                "segments.rank",
                f"expected [num_segments, L, D], found shape {examples(bad_rank)}",
            )
        )
    layouts = {t: shape[1:] for t, shape in shapes.items() if len(shape) == 3}
    L = D = None
    if layouts:
        (L, D), _ = Counter(layouts.values()).most_common(1)[0]
        differ = {t: f"L={lay[0]}, D={lay[1]}" for t, lay in layouts.items() if lay != (L, D)}
        if differ:
            violations.append(
                _grouped(
                    list(differ),
                    segments,
                    folder,
                    "segments.layout",
                    f"every file must share the majority layout L={L}, D={D}; "
                    f"found {examples(differ)}",
                )
            )

    dtypes = {t: dtype.name for t, (_, dtype) in headers.items()}
    bad_dtype = {t: name for t, name in dtypes.items() if name not in SEGMENT_DTYPES}
    if bad_dtype:
        violations.append(
            _grouped(
                list(bad_dtype),
                segments,
                folder,
                "segments.dtype",
                f"expected float16 or float32, found {examples(bad_dtype)}",
            )
        )
    good_dtypes = Counter(n for n in dtypes.values() if n in SEGMENT_DTYPES)
    if len(good_dtypes) > 1:
        warnings.append(f"segment files mix dtypes {dict(good_dtypes)}; all are read as float32")

    finite_ids = [
        t for t in headers if t not in bad_dtype and shapes[t] and math.prod(shapes[t]) > 0
    ]
    non_finite = _check_finite(finite_ids, segments, unreadable)
    if non_finite:
        violations.append(
            _grouped(
                list(non_finite),
                segments,
                folder,
                "segments.finite",
                f"segment arrays contain NaN or Inf values ({examples(non_finite)})",
            )
        )
    if unreadable:
        violations.append(
            _grouped(
                list(unreadable),
                segments,
                folder,
                "segments.readable",
                f"not a readable .npy file ({examples(unreadable)})",
            )
        )

    num_segments = {t: shape[0] for t, shape in shapes.items() if len(shape) >= 1}
    empty = [t for t, n in num_segments.items() if n == 0]
    if empty:
        warnings.append(f"{len(empty)} track(s) have no segments: {list_ids(empty)}")
    dtype = good_dtypes.most_common(1)[0][0] if good_dtypes else None
    return SegmentSummary(num_segments, L, D, dtype)


def _check_finite(
    track_ids: list[str], segments: SegmentStore, unreadable: dict[str, str]
) -> dict[str, str]:
    """Stream each file through its memory map; return ``{track_id: "n NaN, m Inf"}``.

    Files that cannot be mapped are added to ``unreadable``.
    """
    found: dict[str, str] = {}
    with segments:
        for count, track_id in enumerate(track_ids, start=1):
            try:
                array = segments.open(track_id)
            except (OSError, ValueError) as error:
                unreadable[track_id] = str(error)
                continue
            nan = inf = 0
            for start in range(0, array.shape[0], FINITE_BLOCK_SEGMENTS):
                block = array[start : start + FINITE_BLOCK_SEGMENTS]
                if not np.isfinite(block).all():
                    nan += int(np.isnan(block).sum())
                    inf += int(np.isinf(block).sum())
            del array
            if nan or inf:
                found[track_id] = f"{nan} NaN, {inf} Inf"
            if count % CLOSE_EVERY_FILES == 0:
                segments.close()  # mid-pass too: bounds the maps of a long pass
    return found
