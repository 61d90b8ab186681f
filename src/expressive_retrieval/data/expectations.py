"""Great Expectations (1.x) suites: split sizes, the label tables, and the split-leakage suite.

The raw tables have no suite: the input contract (`data.contract`) checks them first and
refuses what a suite would, so a suite there could never fail.

Suites are plain lists of GX expectation objects; `validate` runs one list on a pandas frame
in an ephemeral GX context of its own (no files, no progress bars, no state shared between
validations: about 0.1 s each) and returns a JSON-able result. GX is imported lazily:
importing it costs seconds.

Report shape (`validate_labels`, `validate_split_sizes`)::

    {"success": bool,
     "suites": {name: {"suite", "success", "statistics", "results": [entry, ...]}},
     "leaks": [{"kind", "id", "splits": [...]}, ...],   # at most MAX_LEAKS entries
     "num_leaks": int}

A suite that could not run (leakage, when required columns are missing) has no results and an
``"error"`` message instead. Each result entry is ``{"expectation", "kwargs", "success", "observed", "unexpected_count",
"unexpected_examples" (<= 20), "exception"}``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import pandas as pd

from expressive_retrieval.data.splits import (
    PAIR_COLUMNS,
    SPLITS,
    TRIPLE_COLUMNS,
    UNASSIGNED,
    leakage,
)

MAX_EXAMPLES = 20
MAX_LEAKS = 1000
ROW_CHUNK = 250_000  # rows validated at once by the row-wise suites (pairs, triples, leakage)

_CLIP_COLUMNS = ("clip_id", "track_id", "segment_start", "segment_end", "split")
_SPLIT_COLUMNS = ("track_id", "group_id", "split")
_REGISTERING = threading.Lock()  # GX's expectation registry is process-wide


def _gxe() -> Any:
    """The `great_expectations.expectations` module (imported on first use)."""
    import great_expectations.expectations as gxe

    return gxe


@functools.cache
def _differ() -> type:
    """`ExpectColumnPairValuesToDiffer`: a pandas column-pair expectation (row-wise A != B).

    GX has no built-in for this; `ExpectSelectColumnValuesToBeUniqueWithinRecord` would do but
    computes a row-wise `nunique` (seconds per 100k rows). Defining it registers it with GX.
    """
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnPairMapExpectation
    from great_expectations.expectations.metrics.map_metric_provider import (
        ColumnPairMapMetricProvider,
        column_pair_condition_partial,
    )

    class ColumnPairValuesDiffer(ColumnPairMapMetricProvider):
        condition_metric_name = "column_pair_values.differ"
        condition_domain_keys = (
            "batch_id",
            "table",
            "column_A",
            "column_B",
            "row_condition",
            "condition_parser",
            "ignore_row_if",
        )
        condition_value_keys = ()

        @column_pair_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **kwargs: Any) -> pd.Series:
            return column_A != column_B

    class ExpectColumnPairValuesToDiffer(ColumnPairMapExpectation):
        """Row-wise column_A != column_B (by default rows with a missing value are skipped)."""

        ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
            "either_value_is_missing"
        )
        map_metric = "column_pair_values.differ"
        success_keys = ("column_A", "column_B", "ignore_row_if", "mostly")
        args_keys = ("column_A", "column_B")

    return ExpectColumnPairValuesToDiffer


def _distinct(columns: Sequence[str]) -> list:
    """Row-wise: the values of `columns` are pairwise different."""
    with _REGISTERING:
        differ = _differ()
    return [differ(column_A=a, column_B=b) for i, a in enumerate(columns) for b in columns[i + 1 :]]


def _batch_definition() -> Any:
    """A whole-dataframe batch definition on a new ephemeral context."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("expressive_retrieval").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


def _exception_message(info: dict) -> str | None:
    """First exception message in a GX `exception_info` (flat or keyed by metric)."""
    candidates = [info] if "raised_exception" in info else list(info.values())
    for item in candidates:
        if isinstance(item, dict) and item.get("raised_exception"):
            return str(item.get("exception_message"))
    return None


def _entry(result: dict, id_columns: Sequence[str]) -> dict:
    """One JSON-able result entry from a GX expectation validation result."""
    config = result["expectation_config"]
    details = result.get("result") or {}
    if id_columns:
        examples = details.get("partial_unexpected_index_list") or []
    else:
        examples = details.get("partial_unexpected_list") or []
    return {
        "expectation": config["type"],
        "kwargs": {k: v for k, v in config["kwargs"].items() if k != "batch_id"},
        "success": bool(result["success"]),
        "observed": details.get("observed_value"),
        "unexpected_count": details.get("unexpected_count"),
        "unexpected_examples": examples[:MAX_EXAMPLES],
        "exception": _exception_message(result.get("exception_info") or {}),
    }


def validate(
    df: pd.DataFrame,
    suite_name: str,
    expectations: list,
    id_columns: Sequence[str] = (),
    chunk_rows: int | None = None,
) -> dict:
    """Run `expectations` (GX expectation objects) on `df`; return a JSON-able result.

    With `id_columns` (those present in `df`), unexpected examples are rows holding the id
    columns and the checked column(s); otherwise they are the unexpected values. With
    `chunk_rows`, a longer frame is validated a block of rows at a time and the results
    merged (counts summed, the first examples kept), so memory stays flat in the frame's
    length: only for suites whose expectations look at one row at a time.
    """
    ids = [c for c in id_columns if c in df.columns]
    step = chunk_rows or max(len(df), 1)
    results = [
        _validate_rows(df.iloc[start : start + step], suite_name, expectations, ids)
        for start in range(0, max(len(df), 1), step)
    ]
    entries = [_merged(parts) for parts in zip(*results, strict=True)]
    succeeded = sum(e["success"] for e in entries)
    return {
        "suite": suite_name,
        "success": succeeded == len(entries),
        "statistics": {
            "evaluated_expectations": len(entries),
            "successful_expectations": succeeded,
            "unsuccessful_expectations": len(entries) - succeeded,
            "success_percent": 100.0 * succeeded / len(entries) if entries else None,
            "row_count": len(df),
        },
        "results": entries,
    }


def _validate_rows(
    df: pd.DataFrame, suite_name: str, expectations: list, ids: list[str]
) -> list[dict]:
    """One GX validation of `df`: its result entries, in suite order."""
    import great_expectations as gx

    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": MAX_EXAMPLES,
    }
    if ids:
        result_format["unexpected_index_column_names"] = ids
    suite = gx.ExpectationSuite(name=suite_name, expectations=list(expectations))
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
    outcome = batch.validate(suite, result_format=result_format).to_json_dict()
    return [_entry(r, ids) for r in outcome["results"]]


def _merged(parts: Sequence[dict]) -> dict:
    """One entry from the same expectation's entries on blocks of rows."""
    counts = [p["unexpected_count"] for p in parts if p["unexpected_count"] is not None]
    exceptions = [p["exception"] for p in parts if p["exception"]]
    return {
        **parts[0],
        "success": all(p["success"] for p in parts),
        "unexpected_count": sum(counts) if counts else None,
        "unexpected_examples": [e for p in parts for e in p["unexpected_examples"]][:MAX_EXAMPLES],
        "exception": exceptions[0] if exceptions else None,
    }


def _exist(columns: Iterable[str]) -> list:
    gxe = _gxe()
    return [gxe.ExpectColumnToExist(column=c) for c in columns]


def _not_null(columns: Iterable[str]) -> list:
    gxe = _gxe()
    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _split_in_set(names: Sequence[str] = (*SPLITS, UNASSIGNED)) -> list:
    gxe = _gxe()
    return [
        *_not_null(["split"]),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(names)),
    ]


def clips_suite() -> list:
    """`clips`: unique clip ids, known splits, non-empty segment ranges."""
    gxe = _gxe()
    return [
        *_exist(_CLIP_COLUMNS),
        *_not_null(["clip_id", "track_id", "segment_start", "segment_end"]),
        *_split_in_set(),
        gxe.ExpectColumnValuesToBeUnique(column="clip_id"),
        gxe.ExpectColumnValuesToBeBetween(column="segment_start", min_value=0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="segment_end", column_B="segment_start"
        ),
    ]


def splits_suite() -> list:
    """`splits`: one row per track, each in a known split and a group."""
    gxe = _gxe()
    return [
        *_exist(_SPLIT_COLUMNS),
        *_not_null(["track_id", "group_id"]),
        *_split_in_set(),
        gxe.ExpectColumnValuesToBeUnique(column="track_id"),
    ]


def pairs_suite(aspects: list[str]) -> list:
    """`pairs`: graded relevance 0..3, per-aspect targets in [0, 1], query != candidate."""
    gxe = _gxe()
    targets = [f"target_{a}" for a in aspects]
    return [
        *_exist([*PAIR_COLUMNS, "relevance", *targets]),
        *_not_null([*PAIR_COLUMNS, "relevance", *targets]),
        gxe.ExpectColumnValuesToBeInSet(column="relevance", value_set=[0, 1, 2, 3]),
        *[gxe.ExpectColumnValuesToBeBetween(column=t, min_value=0, max_value=1) for t in targets],
        *_distinct(PAIR_COLUMNS),
        *_split_in_set(SPLITS),  # labels never hold an unassigned clip
    ]


def triples_suite() -> list:
    """`triples`: query, positive and negative clip ids present, non-null and distinct."""
    return [
        *_exist(TRIPLE_COLUMNS),
        *_not_null(TRIPLE_COLUMNS),
        *_distinct(TRIPLE_COLUMNS),
        *_split_in_set(SPLITS),
    ]


def leakage_suite() -> list:
    """Every checked entity of the `splits.leakage` frame lies in exactly one split."""
    gxe = _gxe()
    return [gxe.ExpectColumnValuesToBeBetween(column="num_splits", min_value=1, max_value=1)]


def _report(suites: dict[str, dict], leaks: list[dict]) -> dict:
    return {
        "success": all(s["success"] for s in suites.values()),
        "suites": suites,
        "leaks": leaks[:MAX_LEAKS],
        "num_leaks": len(leaks),
    }


def _missing(tables: dict[str, tuple[pd.DataFrame, Sequence[str]]]) -> list[str]:
    """`table.column` for each required column a table lacks."""
    return [f"{n}.{c}" for n, (df, cols) in tables.items() for c in cols if c not in df.columns]


def validate_labels(
    clips: pd.DataFrame,
    splits: pd.DataFrame,
    pairs: pd.DataFrame,
    triples: pd.DataFrame,
    tracks: pd.DataFrame,
    aspects: list[str],
    group_keys: list[str],
) -> dict:
    """Schema suites for clips/splits/pairs/triples plus the leakage suite, as one report."""
    suites = {
        "clips": validate(clips, "clips", clips_suite(), ["clip_id"]),
        "splits": validate(splits, "splits", splits_suite(), ["track_id"]),
        "pairs": validate(pairs, "pairs", pairs_suite(aspects), PAIR_COLUMNS, ROW_CHUNK),
        "triples": validate(triples, "triples", triples_suite(), TRIPLE_COLUMNS, ROW_CHUNK),
    }
    missing = _missing(
        {
            "clips": (clips, ["clip_id", "track_id", "split"]),
            "splits": (splits, _SPLIT_COLUMNS),
            "tracks": (tracks, ["track_id", *group_keys]),
            "pairs": (pairs, PAIR_COLUMNS),
            "triples": (triples, TRIPLE_COLUMNS),
        }
    )
    leaks: list[dict] = []
    if missing:
        suites["leakage"] = {
            "suite": "leakage",
            "success": False,
            "statistics": {"evaluated_expectations": 0},
            "results": [],
            "error": f"cannot check leakage: missing column(s) {', '.join(missing)}",
        }
    else:
        frame, leaks = leakage(splits, tracks, group_keys, clips, pairs, triples)
        suites["leakage"] = validate(frame, "leakage", leakage_suite(), ["kind", "id"], ROW_CHUNK)
    return _report(suites, leaks)


def split_sizes_suite(min_tracks: int, min_key_values: int, keys: Sequence[str]) -> list:
    """The `split_sizes` frame: every split has enough tracks and key values for its purpose."""
    gxe = _gxe()
    return [
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectTableRowCountToEqual(value=len(SPLITS)),
        gxe.ExpectColumnValuesToBeBetween(column="tracks", min_value=min_tracks),
        *[gxe.ExpectColumnValuesToBeBetween(column=k, min_value=min_key_values) for k in keys],
    ]


def split_sizes(splits: pd.DataFrame, tracks: pd.DataFrame, group_keys: list[str]) -> pd.DataFrame:
    """Per split (train, val, test): tracks, groups and distinct values of each group key."""
    keyed = splits.merge(tracks[["track_id", *group_keys]], on="track_id")
    keyed = keyed[keyed["split"].isin(SPLITS)]
    sizes = keyed.groupby("split").agg(
        tracks=("track_id", "size"),
        groups=("group_id", "nunique"),
        **{k: (k, "nunique") for k in group_keys},
    )
    return sizes.reindex(list(SPLITS), fill_value=0).rename_axis("split").reset_index()


def validate_split_sizes(
    splits: pd.DataFrame,
    tracks: pd.DataFrame,
    group_keys: list[str],
    min_tracks: int,
    min_key_values: int,
) -> dict:
    """The `split_sizes` suite as a report (same shape as `validate_labels`), plus the sizes."""
    sizes = split_sizes(splits, tracks, group_keys)
    suite = split_sizes_suite(min_tracks, min_key_values, group_keys)
    report = _report({"split_sizes": validate(sizes, "split_sizes", suite, ["split"])}, [])
    return report | {"sizes": sizes.to_dict(orient="records")}


def _target(kwargs: dict) -> str:
    """What an expectation was about, from its kwargs."""
    if "column" in kwargs:
        return f"column {kwargs['column']}"
    columns = kwargs.get("column_list") or [
        kwargs[k] for k in ("column_A", "column_B") if k in kwargs
    ]
    return f"columns {', '.join(map(str, columns))}" if columns else "table"


def _example(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return repr(value)


def _failure_line(name: str, entry: dict) -> str:
    head = f"suite {name}: {entry['expectation']} on {_target(entry['kwargs'])} failed"
    if entry["exception"]:
        return f"{head}: {entry['exception']}"
    if entry["unexpected_count"] is None:
        observed = entry["observed"]
        return head if observed is None else f"{head} (observed: {observed})"
    examples = "; ".join(_example(v) for v in entry["unexpected_examples"][:5])
    return f"{head}: {entry['unexpected_count']} unexpected (examples: {examples})"


def failure_summary(report: dict) -> str:
    """Human-readable lines naming each failed expectation and each leaking entity."""
    lines = []
    for name, suite in report["suites"].items():
        if "error" in suite:
            lines.append(f"suite {name}: {suite['error']}")
        lines.extend(_failure_line(name, e) for e in suite["results"] if not e["success"])
    lines.extend(
        f"{leak['kind']} {leak['id']} in splits {', '.join(leak['splits'])}"
        for leak in report.get("leaks", [])
    )
    shown = len(report.get("leaks", []))
    if report.get("num_leaks", 0) > shown:
        lines.append(f"... and {report['num_leaks'] - shown} more leaking entities")
    if not lines:
        return f"all suites passed: {', '.join(report['suites'])}"
    return "\n".join(lines)
