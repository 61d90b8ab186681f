"""Validation of the four raw inputs against the input contract (docs/design.md, "Raw inputs").

:func:`check_raw_inputs` runs every rule and returns a JSON-able report that lists every
violation at once (file, rule id, all offending ids, one sentence); it never raises for data
problems. :func:`raise_for_violations` turns a failed report into an
:class:`InputContractError` whose message is what the user sees at the end of a run.

Segment files are inspected through their ``.npy`` headers (shape, dtype) and streamed in
blocks of segments through the memory map for the finiteness check, so the corpus is never
held in memory.

One module per raw entry holds its rules (``tracks``, ``segment_files``, ``proxy_targets``,
``discovery``); ``violations`` holds the report records and the error.
"""

from __future__ import annotations

import logging

import pandas as pd

from expressive_retrieval.data.contract.discovery import check_discovery
from expressive_retrieval.data.contract.proxy_targets import check_proxy_targets
from expressive_retrieval.data.contract.segment_files import check_segments
from expressive_retrieval.data.contract.tracks import check_tracks
from expressive_retrieval.data.contract.violations import InputContractError, Violation
from expressive_retrieval.data.segments import SegmentStore

logger = logging.getLogger(__name__)

RAW_ENTRIES = ("tracks", "segments", "proxy_targets", "discovery")

__all__ = [
    "RAW_ENTRIES",
    "InputContractError",
    "Violation",
    "check_raw_inputs",
    "raise_for_violations",
]


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

    track_ids = check_tracks(tracks, file_of["tracks"], violations)
    summary = check_segments(track_ids, segments, file_of["segments"], violations, warnings)
    proxy_report = check_proxy_targets(
        proxy_targets, track_ids, summary, aspects, file_of["proxy_targets"], violations, warnings
    )
    check_discovery(discovery, summary, aspects, file_of["discovery"], violations, warnings)

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
