"""Tests of the raw input contract validator (docs/design.md, "Raw inputs")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from expressive_retrieval.data.contract import (
    InputContractError,
    Violation,
    check_raw_inputs,
    raise_for_violations,
)
from expressive_retrieval.data.segments import SegmentStore

L, D = 3, 4
COUNTS = {"t1": 3, "t2": 4, "t3": 5, "t4": 3}
ASPECTS = {
    "tempo": {"proxies": ["tempo_bpm"], "aggregate": ["mean", "slope"], "default_weight": 1.0},
    "dynamics": {"proxies": ["loudness_db"], "aggregate": ["mean"], "default_weight": 1.0},
}


def make_raw(tmp_path: Path, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Write a small valid raw set; return the keyword arguments of ``check_raw_inputs``."""
    counts = counts or COUNTS
    rng = np.random.default_rng(0)
    folder = tmp_path / "segments"
    folder.mkdir()
    for track_id, n in counts.items():
        np.save(folder / f"{track_id}.npy", rng.normal(size=(n, L, D)).astype(np.float16))
    tracks = pd.DataFrame(
        {
            "track_id": list(counts),
            "artist_id": [f"a{i % 2}" for i in range(len(counts))],
            "work_id": [f"w{i}" for i in range(len(counts))],
            "duration_s": [5.0 * n for n in counts.values()],
            "title": "extra columns are kept",
        }
    )
    rows = [(t, i) for t, n in counts.items() for i in range(n)]
    proxy_targets = pd.DataFrame(rows, columns=["track_id", "segment_idx"])
    proxy_targets["tempo_bpm"] = rng.uniform(60, 180, len(rows))
    proxy_targets["loudness_db"] = rng.uniform(-30, 0, len(rows))
    proxy_targets.loc[0, "loudness_db"] = np.nan
    discovery = {
        "schema_version": 1,
        "embedding": {"model": "test-model", "num_layers": L, "dim": D},
        "aspects": {a: {"layer_scores": rng.uniform(size=L).tolist()} for a in ASPECTS},
    }
    files = {
        "tracks": str(tmp_path / "tracks.parquet"),
        "segments": str(folder),
        "proxy_targets": str(tmp_path / "proxy_targets.parquet"),
        "discovery": str(tmp_path / "discovery.json"),
    }
    return {
        "tracks": tracks,
        "segments": SegmentStore(folder),
        "proxy_targets": proxy_targets,
        "discovery": discovery,
        "aspects": ASPECTS,
        "files": files,
    }


def segment_file(raw: dict[str, Any], track_id: str) -> str:
    """The path the validator names for a track's segment file."""
    return str(raw["segments"].path(track_id))


def assert_violation(report: dict, rule: str, file: str, ids: list[str]) -> None:
    """The report fails with ``rule`` on ``file`` for exactly ``ids``, and the error says so."""
    assert report["passed"] is False
    json.dumps(report)
    matching = [v for v in report["violations"] if v["rule"] == rule]
    assert matching, f"no {rule} violation in {report['violations']}"
    assert any(v["file"] == file and sorted(v["ids"]) == sorted(ids) for v in matching), matching
    with pytest.raises(InputContractError) as caught:
        raise_for_violations(report)
    message = str(caught.value)
    assert message.startswith("Raw inputs violate the input contract")
    assert f"{file} [{rule}]" in message
    for id_ in ids[:10]:
        assert id_ in message
    assert any(v.rule == rule for v in caught.value.violations)


def test_valid_raw_set_passes(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    report = check_raw_inputs(**raw)
    assert report["passed"] is True
    assert report["violations"] == []
    assert report["warnings"] == []
    assert (report["L"], report["D"], report["dtype"]) == (L, D, "float16")
    assert report["num_segments"] == COUNTS
    assert report["num_segments_total"] == sum(COUNTS.values())
    assert report["num_tracks"] == len(COUNTS)
    assert report["proxy_columns"] == ["tempo_bpm", "loudness_db"]
    assert report["missing_fraction"]["loudness_db"] == pytest.approx(1 / sum(COUNTS.values()))
    json.dumps(report)
    raise_for_violations(report)


def test_duplicate_track_id(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["tracks"] = pd.concat([raw["tracks"], raw["tracks"].iloc[[1]]], ignore_index=True)
    report = check_raw_inputs(**raw)
    assert_violation(report, "track_id.unique", raw["files"]["tracks"], ["t2"])


def test_unsafe_track_id(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    extra = raw["tracks"].iloc[[0]].assign(track_id="../x")
    raw["tracks"] = pd.concat([raw["tracks"], extra], ignore_index=True)
    report = check_raw_inputs(**raw)
    assert_violation(report, "track_id.safe", raw["files"]["tracks"], ["../x"])


def test_bad_duration_and_nulls(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["tracks"].loc[0, "duration_s"] = 0.0
    raw["tracks"].loc[1, "work_id"] = None
    report = check_raw_inputs(**raw)
    assert_violation(report, "tracks.duration_s", raw["files"]["tracks"], ["t1"])
    assert_violation(report, "tracks.nulls", raw["files"]["tracks"], ["t2"])


def test_missing_track_columns(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["tracks"] = raw["tracks"].drop(columns=["work_id"])
    report = check_raw_inputs(**raw)
    assert_violation(report, "tracks.columns", raw["files"]["tracks"], ["work_id"])


def test_track_without_segment_file(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    Path(segment_file(raw, "t3")).unlink()
    report = check_raw_inputs(**raw)
    assert_violation(report, "segments.file_exists", segment_file(raw, "t3"), ["t3"])
    assert {v["rule"] for v in report["violations"]} == {"segments.file_exists"}


def test_segment_file_of_rank_2(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    np.save(segment_file(raw, "t2"), np.zeros((4, L * D), dtype=np.float16))
    report = check_raw_inputs(**raw)
    assert_violation(report, "segments.rank", segment_file(raw, "t2"), ["t2"])
    assert "(4, 12)" in str(report["violations"])


@pytest.mark.parametrize("shape", [(3, L + 1, D), (3, L, D + 2)])
def test_segment_layout_differs(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    raw = make_raw(tmp_path)
    np.save(segment_file(raw, "t4"), np.zeros(shape, dtype=np.float16))
    report = check_raw_inputs(**raw)
    assert (report["L"], report["D"]) == (L, D)
    assert_violation(report, "segments.layout", segment_file(raw, "t4"), ["t4"])


def test_segment_dtype(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    np.save(segment_file(raw, "t1"), np.zeros((3, L, D), dtype=np.float64))
    report = check_raw_inputs(**raw)
    assert_violation(report, "segments.dtype", segment_file(raw, "t1"), ["t1"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_segment_values(tmp_path: Path, bad: float) -> None:
    raw = make_raw(tmp_path)
    array = np.load(segment_file(raw, "t3"))
    array[4, 2, 1] = bad
    np.save(segment_file(raw, "t3"), array)
    report = check_raw_inputs(**raw)
    assert_violation(report, "segments.finite", segment_file(raw, "t3"), ["t3"])


def test_non_finite_value_in_a_late_block(tmp_path: Path) -> None:
    raw = make_raw(tmp_path, counts={"t1": 3, "t2": 150})
    array = np.load(segment_file(raw, "t2"))
    array[149, 0, 0] = np.nan
    np.save(segment_file(raw, "t2"), array)
    report = check_raw_inputs(**raw)
    assert_violation(report, "segments.finite", segment_file(raw, "t2"), ["t2"])


def test_stray_segment_file_only_warns(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    np.save(Path(raw["files"]["segments"]) / "orphan.npy", np.zeros((2, L, D), np.float16))
    report = check_raw_inputs(**raw)
    assert report["passed"] is True
    assert any("orphan" in w for w in report["warnings"])


def test_missing_proxy_row(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    pt = raw["proxy_targets"]
    raw["proxy_targets"] = pt[~((pt.track_id == "t2") & (pt.segment_idx == 1))]
    report = check_raw_inputs(**raw)
    assert_violation(report, "proxy_targets.rows_complete", raw["files"]["proxy_targets"], ["t2:1"])


def test_many_missing_rows_are_all_reported_and_truncated_in_the_message(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["proxy_targets"] = raw["proxy_targets"].query("track_id == 't4'")
    report = check_raw_inputs(**raw)
    expected = [f"{t}:{i}" for t in ("t1", "t2", "t3") for i in range(COUNTS[t])]
    assert_violation(report, "proxy_targets.rows_complete", raw["files"]["proxy_targets"], expected)
    with pytest.raises(InputContractError, match=r"… and 2 more"):
        raise_for_violations(report)


def test_segment_idx_out_of_range(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    extra = pd.DataFrame({"track_id": ["t1", "t1"], "segment_idx": [3, -1]})
    raw["proxy_targets"] = pd.concat([raw["proxy_targets"], extra], ignore_index=True)
    report = check_raw_inputs(**raw)
    assert_violation(
        report, "proxy_targets.segment_idx_range", raw["files"]["proxy_targets"], ["t1:3", "t1:-1"]
    )


def test_duplicate_and_unknown_proxy_rows(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    extra = pd.DataFrame({"track_id": ["t2", "ghost"], "segment_idx": [0, 0]})
    raw["proxy_targets"] = pd.concat([raw["proxy_targets"], extra], ignore_index=True)
    report = check_raw_inputs(**raw)
    file = raw["files"]["proxy_targets"]
    assert_violation(report, "proxy_targets.duplicates", file, ["t2:0"])
    assert_violation(report, "proxy_targets.unknown_track", file, ["ghost"])


def test_segment_idx_with_nulls(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    pt = raw["proxy_targets"]
    pt["segment_idx"] = pt["segment_idx"].astype("float64")
    pt.loc[2, "segment_idx"] = np.nan
    report = check_raw_inputs(**raw)
    file = raw["files"]["proxy_targets"]
    assert_violation(report, "proxy_targets.segment_idx_int", file, ["t1:nan"])
    assert_violation(report, "proxy_targets.rows_complete", file, ["t1:2"])


def test_aspect_proxy_column_absent(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["proxy_targets"] = raw["proxy_targets"].drop(columns=["loudness_db"])
    report = check_raw_inputs(**raw)
    assert_violation(
        report, "aspects.proxy_columns", raw["files"]["proxy_targets"], ["dynamics:loudness_db"]
    )


def test_entirely_missing_proxy_column_warns(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["proxy_targets"]["tempo_bpm"] = np.nan
    report = check_raw_inputs(**raw)
    assert report["passed"] is True
    assert report["missing_fraction"]["tempo_bpm"] == 1.0
    assert any("tempo_bpm" in w for w in report["warnings"])


def test_layer_scores_of_wrong_length(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["discovery"]["aspects"]["tempo"]["layer_scores"] = [0.1, 0.2]
    report = check_raw_inputs(**raw)
    assert_violation(report, "discovery.layer_scores", raw["files"]["discovery"], ["tempo"])


def test_layer_scores_not_finite(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    raw["discovery"]["aspects"]["dynamics"]["layer_scores"] = [0.1, float("nan"), "x"]
    report = check_raw_inputs(**raw)
    assert_violation(report, "discovery.layer_scores", raw["files"]["discovery"], ["dynamics"])


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d.pop("embedding"), "embedding"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (
            lambda d: d["aspects"]["tempo"].update(layer_scores="0.1,0.2,0.3"),
            "aspects.tempo.layer_scores",
        ),
        (lambda d: d["embedding"].update(num_layers=25), "embedding.num_layers"),
        (lambda d: d["embedding"].pop("dim"), "embedding.dim"),
    ],
)
def test_malformed_discovery(tmp_path: Path, mutate: Any, key: str) -> None:
    raw = make_raw(tmp_path)
    mutate(raw["discovery"])
    report = check_raw_inputs(**raw)
    assert_violation(report, "discovery.schema", raw["files"]["discovery"], [key])


def test_aspect_missing_from_discovery_only_warns(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    del raw["discovery"]["aspects"]["dynamics"]
    report = check_raw_inputs(**raw)
    assert report["passed"] is True
    assert any("dynamics" in w for w in report["warnings"])


def test_error_message_format() -> None:
    violation = Violation("data/01_raw/segments/t3.npy", "segments.rank", ("t3",), "bad shape")
    error = InputContractError([violation])
    assert str(error).splitlines()[1] == (
        "  - data/01_raw/segments/t3.npy [segments.rank]: bad shape. ids: t3"
    )
    assert error.violations == [violation]
