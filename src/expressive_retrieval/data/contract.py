"""Validation of the four raw inputs against the input contract (docs/design.md, "Raw inputs").

:func:`check_raw_inputs` runs every rule and returns a JSON-able report that lists every
violation at once (file, rule id, all offending ids, one sentence); it never raises for data
problems. :func:`raise_for_violations` turns a failed report into an
:class:`InputContractError` whose message is what the user sees at the end of a run.

Segment files are inspected through their ``.npy`` headers (shape, dtype) and streamed in
blocks of segments through the memory map for the finiteness check, so the corpus is never
held in memory.

A rule that several segment files break is reported once: the ``file`` is that segment file
when there is a single offender, else the segments folder, and ``ids`` lists every track.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from expressive_retrieval.data.segments import (
    TRACK_ID_PATTERN,
    SegmentStore,
    is_safe_track_id,
    npy_header,
)

logger = logging.getLogger(__name__)

RAW_ENTRIES = ("tracks", "segments", "proxy_targets", "discovery")
REQUIRED_TRACK_COLUMNS = ("track_id", "artist_id", "work_id", "duration_s")
KEY_COLUMNS = ("track_id", "segment_idx")
SEGMENT_DTYPES = ("float16", "float32")
DISCOVERY_SCHEMA_VERSION = 1
FINITE_BLOCK_SEGMENTS = 64
CLOSE_EVERY_FILES = 64
MAX_LISTED_IDS = 10
CONTRACT_DOC = "docs/input_contract.md"


@dataclass(frozen=True)
class Violation:
    """One broken contract rule.

    Attributes:
        file: the offending file (as given in ``files``), a segment file or the segments folder.
        rule: a short stable rule id such as ``"track_id.unique"``.
        ids: every offending id (track ids, ``"track_id:segment_idx"``, aspects, columns).
        detail: one human sentence.
    """

    file: str
    rule: str
    ids: tuple[str, ...]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The violation as plain JSON-able types."""
        record = asdict(self)
        record["ids"] = list(self.ids)
        return record


class InputContractError(ValueError):
    """Raised with every violation listed: file, rule, offending ids (first 10 + 'and N more')."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = list(violations)
        lines = [
            f"Raw inputs violate the input contract (see {CONTRACT_DOC}); "
            "nothing was written downstream."
        ]
        lines += [f"  - {v.file} [{v.rule}]: {_sentence(v.detail, v.ids)}" for v in violations]
        super().__init__("\n".join(lines))


@dataclass
class _SegmentSummary:
    """What the segment check learnt, for the checks that depend on it."""

    num_segments: dict[str, int]
    L: int | None
    D: int | None
    dtype: str | None


def check_raw_inputs(
    tracks: pd.DataFrame,
    segments: SegmentStore,
    proxy_targets: pd.DataFrame,
    discovery: dict,
    aspects: dict,
    files: dict[str, str],
) -> dict:
    """Check every rule of docs/design.md, "Raw inputs"; return a JSON-able report.

    Never raises for data problems: they are the report's violations.

    Args:
        tracks: the ``tracks`` table.
        segments: the store over the ``segments`` folder.
        proxy_targets: the ``proxy_targets`` table.
        discovery: the parsed ``discovery`` JSON.
        aspects: the ``aspects`` parameter, ``{aspect: {"proxies": [column, ...], ...}}``.
        files: entry name (``tracks``, ``segments``, ``proxy_targets``, ``discovery``) to path.

    Returns:
        ``{"passed", "num_tracks", "num_segments_total", "L", "D", "dtype", "num_segments",
        "proxy_columns", "missing_fraction", "violations", "warnings"}``.
    """
    file_of = {name: str(files.get(name, name)) for name in RAW_ENTRIES}
    # Row positions, not whatever index a Parquet file carried, identify rows below.
    tracks, proxy_targets = tracks.reset_index(drop=True), proxy_targets.reset_index(drop=True)
    violations: list[Violation] = []
    warnings: list[str] = []

    track_ids = _check_tracks(tracks, file_of["tracks"], violations)
    summary = _check_segments(track_ids, segments, file_of["segments"], violations, warnings)
    proxy_report = _check_proxy_targets(
        proxy_targets, track_ids, summary, aspects, file_of["proxy_targets"], violations, warnings
    )
    _check_discovery(discovery, summary, aspects, file_of["discovery"], violations, warnings)

    for message in warnings:
        logger.warning(message)
    report = {
        "passed": not violations,
        "num_tracks": len(tracks),
        "num_segments_total": sum(summary.num_segments.values()),
        "L": summary.L,
        "D": summary.D,
        "dtype": summary.dtype,
        "num_segments": summary.num_segments,
        **proxy_report,
        "violations": [v.to_dict() for v in violations],
        "warnings": warnings,
    }
    logger.info(
        "Input contract: %d violation(s), %d warning(s) over %d tracks and %d segments",
        len(violations),
        len(warnings),
        report["num_tracks"],
        report["num_segments_total"],
    )
    return report


def raise_for_violations(report: dict) -> None:
    """Raise :class:`InputContractError` listing ``report["violations"]``, if there are any."""
    violations = [
        Violation(str(v["file"]), str(v["rule"]), tuple(str(i) for i in v["ids"]), str(v["detail"]))
        for v in report.get("violations", [])
    ]
    if violations:
        raise InputContractError(violations)


def _sentence(detail: str, ids: tuple[str, ...]) -> str:
    """``detail`` as a sentence followed by the ids, truncated after the first ten."""
    text = detail.rstrip(".") + "."
    return f"{text} ids: {_list_ids(ids)}" if ids else text


def _list_ids(ids: tuple[str, ...] | list[str]) -> str:
    """The first ten ids joined by commas, then ``… and N more``."""
    shown = ", ".join(ids[:MAX_LISTED_IDS])
    rest = len(ids) - MAX_LISTED_IDS
    return f"{shown} … and {rest} more" if rest > 0 else shown


def _ids(values: Any) -> tuple[str, ...]:
    """Distinct values as strings, in first-seen order."""
    return tuple(dict.fromkeys(str(v) for v in values))


# --------------------------------------------------------------------------------- tracks


def _check_tracks(tracks: pd.DataFrame, file: str, violations: list[Violation]) -> list[str]:
    """Check the ``tracks`` table; return its distinct safe track ids (in table order)."""
    missing = [c for c in REQUIRED_TRACK_COLUMNS if c not in tracks.columns]
    if missing:
        violations.append(
            Violation(
                file,
                "tracks.columns",
                tuple(missing),
                f"missing required columns (need {', '.join(REQUIRED_TRACK_COLUMNS)})",
            )
        )
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
                _ids(labels[null_mask.any(axis=1)]),
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
                    _ids(labels[bad]),
                    f"duration_s must be a finite number > 0{found}",
                )
            )

    if "track_id" not in tracks.columns:
        return []
    ids = tracks["track_id"][tracks["track_id"].notna()]
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        violations.append(
            Violation(file, "track_id.unique", _ids(duplicated), "duplicate track_id values")
        )
    unsafe = [t for t in ids if not is_safe_track_id(t)]
    if unsafe:
        violations.append(
            Violation(
                file,
                "track_id.safe",
                _ids(unsafe),
                f"track_id must be a string matching {TRACK_ID_PATTERN.pattern.strip('^$')} "
                "and not '.' or '..'",
            )
        )
    return [t for t in dict.fromkeys(ids) if is_safe_track_id(t)]


# ------------------------------------------------------------------------------- segments


def _grouped(
    offenders: list[str], segments: SegmentStore, folder: str, rule: str, detail: str
) -> Violation:
    """One violation for ``offenders``: named by their file if single, else by the folder."""
    file = str(segments.path(offenders[0])) if len(offenders) == 1 else folder
    return Violation(file, rule, tuple(offenders), detail)


def _examples(found: dict[str, Any]) -> str:
    """The value of a single offender, else ``id: value`` for the first few."""
    if len(found) == 1:
        return str(next(iter(found.values())))
    items = [f"{t}: {v}" for t, v in list(found.items())[:3]]
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return "; ".join(items) + more


def _check_segments(
    track_ids: list[str],
    segments: SegmentStore,
    folder: str,
    violations: list[Violation],
    warnings: list[str],
) -> _SegmentSummary:
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
            f"ignored: {_list_ids(stray)}"
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
                f"expected [num_segments, L, D], found shape {_examples(bad_rank)}",
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
                    f"found {_examples(differ)}",
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
                f"expected float16 or float32, found {_examples(bad_dtype)}",
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
                f"segment arrays contain NaN or Inf values ({_examples(non_finite)})",
            )
        )
    if unreadable:
        violations.append(
            _grouped(
                list(unreadable),
                segments,
                folder,
                "segments.readable",
                f"not a readable .npy file ({_examples(unreadable)})",
            )
        )

    num_segments = {t: shape[0] for t, shape in shapes.items() if len(shape) >= 1}
    empty = [t for t, n in num_segments.items() if n == 0]
    if empty:
        warnings.append(f"{len(empty)} track(s) have no segments: {_list_ids(empty)}")
    dtype = good_dtypes.most_common(1)[0][0] if good_dtypes else None
    return _SegmentSummary(num_segments, L, D, dtype)


def _check_finite(
    track_ids: list[str], segments: SegmentStore, unreadable: dict[str, str]
) -> dict[str, str]:
    """Stream each file through its memory map; return ``{track_id: "n NaN, m Inf"}``.

    Files that cannot be mapped are added to ``unreadable``.
    """
    found: dict[str, str] = {}
    try:
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
                segments.close()
    finally:
        segments.close()
    return found


# -------------------------------------------------------------------------- proxy targets


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
            _ids(f"{t}:{v}" for t, v in zip(labels[invalid], column[invalid], strict=True))
            if invalid.any()
            else ("segment_idx",),
            f"segment_idx must be an integer column without nulls, found dtype {found}"
            + (f" with {int(invalid.sum())} null or non-integer value(s)" if invalid.any() else ""),
        )
    )
    return values[valid].astype("int64")


def _check_proxy_targets(
    proxy_targets: pd.DataFrame,
    track_ids: list[str],
    summary: _SegmentSummary,
    aspects: dict,
    file: str,
    violations: list[Violation],
    warnings: list[str],
) -> dict[str, Any]:
    """Check keys, proxy columns and one row per segment; return proxy stats for the report."""
    missing_keys = [c for c in KEY_COLUMNS if c not in proxy_targets.columns]
    if missing_keys:
        violations.append(
            Violation(
                file,
                "proxy_targets.columns",
                tuple(missing_keys),
                "missing key columns (need track_id, segment_idx)",
            )
        )
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
    empty = [c for c, fraction in missing_fraction.items() if fraction == 1.0]
    if empty:
        warnings.append(f"proxy column(s) entirely NaN in {file}: {_list_ids(empty)}")
    stats = {"proxy_columns": proxy_columns, "missing_fraction": missing_fraction}
    if missing_keys or not track_ids:
        return stats

    labels = proxy_targets["track_id"].astype(str)
    unknown = ~labels.isin(set(track_ids))
    if unknown.any():
        violations.append(
            Violation(
                file,
                "proxy_targets.unknown_track",
                _ids(labels[unknown]),
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
                _ids(dup["track_id"] + ":" + dup["segment_idx"].astype(str)),
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
                _ids(out["track_id"] + ":" + out["segment_idx"].astype(str)),
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


# ------------------------------------------------------------------------------ discovery


def _is_int(value: object) -> bool:
    """True for a real integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: object) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_discovery(
    discovery: dict,
    summary: _SegmentSummary,
    aspects: dict,
    file: str,
    violations: list[Violation],
    warnings: list[str],
) -> None:
    """Check the discovery JSON's structure, its layout against the segments, layer scores."""

    def schema(key: str, detail: str) -> None:
        violations.append(Violation(file, "discovery.schema", (key,), detail))

    if not isinstance(discovery, dict):
        schema("<root>", f"expected a JSON object, found {type(discovery).__name__}")
        return
    version = discovery.get("schema_version")
    if not (_is_int(version) and version == DISCOVERY_SCHEMA_VERSION):
        schema(
            "schema_version",
            f"schema_version must be {DISCOVERY_SCHEMA_VERSION}, found {version!r}"
            if "schema_version" in discovery
            else "missing key 'schema_version'",
        )

    num_layers = _check_embedding(discovery, summary, schema)
    expected_length = summary.L if summary.L is not None else num_layers

    found = discovery.get("aspects")
    if not isinstance(found, dict):
        schema(
            "aspects",
            "missing key 'aspects'"
            if "aspects" not in discovery
            else f"'aspects' must be an object, found {type(found).__name__}",
        )
        return
    scored: dict[str, list] = {}
    for name, entry in found.items():
        scores = entry.get("layer_scores") if isinstance(entry, dict) else None
        if isinstance(scores, list):
            scored[str(name)] = scores
        elif not isinstance(entry, dict):
            schema(f"aspects.{name}", f"aspects.{name} must be an object with 'layer_scores'")
        elif "layer_scores" not in entry:
            schema(f"aspects.{name}.layer_scores", f"missing key 'aspects.{name}.layer_scores'")
        else:
            schema(
                f"aspects.{name}.layer_scores",
                f"aspects.{name}.layer_scores must be a list, found {type(scores).__name__}",
            )

    if expected_length is not None:
        wrong = {n: len(s) for n, s in scored.items() if len(s) != expected_length}
        if wrong:
            violations.append(
                Violation(
                    file,
                    "discovery.layer_scores",
                    tuple(wrong),
                    f"layer_scores must have L={expected_length} entries, found lengths "
                    f"{_examples(wrong)}",
                )
            )
    not_finite = [n for n, s in scored.items() if not all(_is_finite_number(x) for x in s)]
    if not_finite:
        violations.append(
            Violation(
                file,
                "discovery.layer_scores",
                tuple(not_finite),
                "layer_scores must be finite numbers",
            )
        )

    wanted = [str(a) for a in aspects]
    without = [a for a in wanted if a not in found]
    if without:
        warnings.append(
            f"aspect(s) without discovery evidence in {file}, falling back to layer-wise "
            f"probes: {_list_ids(without)}"
        )
    unused = [str(a) for a in found if str(a) not in wanted]
    if unused:
        warnings.append(
            f"discovery aspect(s) not in the aspects parameter are ignored: {_list_ids(unused)}"
        )


def _check_embedding(
    discovery: dict, summary: _SegmentSummary, schema: Callable[[str, str], None]
) -> int | None:
    """Check ``discovery["embedding"]``; return its valid ``num_layers`` or None."""
    embedding = discovery.get("embedding")
    if not isinstance(embedding, dict):
        schema(
            "embedding",
            "missing key 'embedding'"
            if "embedding" not in discovery
            else f"'embedding' must be an object, found {type(embedding).__name__}",
        )
        return None
    model = embedding.get("model")
    if not isinstance(model, str):
        schema("embedding.model", f"embedding.model must be a string, found {model!r}")
    valid: dict[str, int] = {}
    for key, actual, letter in (
        ("num_layers", summary.L, "L"),
        ("dim", summary.D, "D"),
    ):
        value = embedding.get(key)
        if not (_is_int(value) and value > 0):
            schema(f"embedding.{key}", f"embedding.{key} must be a positive int, found {value!r}")
            continue
        valid[key] = value
        if actual is not None and value != actual:
            schema(
                f"embedding.{key}",
                f"embedding.{key} is {value} but the segment files have {letter}={actual}",
            )
    return valid.get("num_layers")
