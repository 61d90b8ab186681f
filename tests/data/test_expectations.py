"""Great Expectations suites: valid tables pass, schema breaks and split leaks are caught."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from expressive_retrieval.data import expectations as ex
from expressive_retrieval.data.splits import UNKNOWN_CLIP, leakage

ASPECTS = ["tempo", "dynamics"]
GROUP_KEYS = ["work_id", "artist_id"]
Tables = dict[str, pd.DataFrame]

# Tracks t1/t2 share artist a1, t3/t4 share work w3: groups g1 (train), g2 (val), g3, g4.
TRACKS = [
    ("t1", "a1", "w1", "g1", "train"),
    ("t2", "a1", "w2", "g1", "train"),
    ("t3", "a2", "w3", "g2", "val"),
    ("t4", "a3", "w3", "g2", "val"),
    ("t5", "a4", "w4", "g3", "test"),
    ("t6", "a5", "w5", "g4", "train"),
]


def _tables() -> Tables:
    tracks = pd.DataFrame(
        [(t, a, w, 120.0) for t, a, w, _, _ in TRACKS],
        columns=["track_id", "artist_id", "work_id", "duration_s"],
    )
    splits = pd.DataFrame(
        [(t, g, s) for t, _, _, g, s in TRACKS], columns=["track_id", "group_id", "split"]
    )
    clips = pd.DataFrame(
        [(f"{t}_c{i}", t, 6 * i, 6 * i + 6, s) for t, *_, s in TRACKS for i in range(2)],
        columns=["clip_id", "track_id", "segment_start", "segment_end", "split"],
    )
    pairs = pd.DataFrame(
        {
            "query_clip_id": ["t1_c0", "t3_c0", "t5_c0", "t6_c0"],
            "candidate_clip_id": ["t2_c0", "t4_c0", "t5_c1", "t1_c1"],
            "relevance": [3, 2, 1, 0],
            "target_tempo": [0.9, 0.5, 0.1, 0.0],
            "target_dynamics": [1.0, 0.4, 0.3, 0.2],
            "split": ["train", "val", "test", "train"],
        }
    )
    triples = pd.DataFrame(
        {
            "query_clip_id": ["t1_c0", "t3_c0"],
            "positive_clip_id": ["t2_c0", "t4_c1"],
            "negative_clip_id": ["t6_c0", "t3_c1"],
            "split": ["train", "val"],
        }
    )
    proxy_targets = pd.DataFrame(
        {
            "track_id": [t for t, *_ in TRACKS for _ in range(3)],
            "segment_idx": [i for _ in TRACKS for i in range(3)],
            "tempo_bpm": 120.0,
            "loudness_db": [float("nan")] + [-20.0] * (3 * len(TRACKS) - 1),
        }
    )
    return {
        "tracks": tracks,
        "splits": splits,
        "clips": clips,
        "pairs": pairs,
        "triples": triples,
        "proxy_targets": proxy_targets,
    }


def _labels(t: Tables) -> dict:
    return ex.validate_labels(
        t["clips"], t["splits"], t["pairs"], t["triples"], t["tracks"], ASPECTS, GROUP_KEYS
    )


def _sizes(t: Tables, min_tracks: int = 1, min_key_values: int = 1) -> dict:
    return ex.validate_split_sizes(t["splits"], t["tracks"], GROUP_KEYS, min_tracks, min_key_values)


def _failed(report: dict, suite: str) -> list[str]:
    return [r["expectation"] for r in report["suites"][suite]["results"] if not r["success"]]


def test_valid_tables_pass_every_suite() -> None:
    t = _tables()
    labels, sizes = _labels(t), _sizes(t)
    for report in (labels, sizes):
        assert report["success"], ex.failure_summary(report)
        assert all(s["success"] for s in report["suites"].values())
        assert report["leaks"] == [] and report["num_leaks"] == 0
        json.dumps(report)
    assert set(labels["suites"]) == {"clips", "splits", "pairs", "triples", "leakage"}
    assert set(sizes["suites"]) == {"split_sizes"}
    assert ex.failure_summary(labels).startswith("all suites passed")

    frame, leaks = leakage(
        t["splits"], t["tracks"], GROUP_KEYS, t["clips"], t["pairs"], t["triples"]
    )
    assert leaks == []
    assert list(frame.columns) == ["kind", "id", "num_splits"]
    assert frame["kind"].value_counts().to_dict() == {
        "track": 6,
        "work_id": 5,
        "artist_id": 5,
        "group_id": 4,
        "pair": 4,
        "triple": 2,
    }
    assert (frame["num_splits"] == 1).all()
    assert "t1_c0|t2_c0" in set(frame["id"])


def _set(table: str, row: int, column: str, value: object) -> Callable[[Tables], None]:
    def mutate(t: Tables) -> None:
        t[table].loc[row, column] = value

    return mutate


def _append(table: str, row: dict) -> Callable[[Tables], None]:
    def mutate(t: Tables) -> None:
        t[table] = pd.concat([t[table], pd.DataFrame([row])], ignore_index=True)

    return mutate


PAIR = {"relevance": 1, "target_tempo": 0.5, "target_dynamics": 0.5, "split": "train"}


@pytest.mark.parametrize(
    ("mutate", "kind", "entity"),
    [
        # t5 (test) performs w1 like t1 (train): the work leaks.
        (_set("tracks", 4, "work_id", "w1"), "work_id", "w1"),
        # t5 (test) is by a1 like t1, t2 (train): the artist leaks.
        (_set("tracks", 4, "artist_id", "a1"), "artist_id", "a1"),
        (_append("pairs", {"query_clip_id": "t1_c0", "candidate_clip_id": "t5_c0", **PAIR}),
         "pair", "t1_c0|t5_c0"),
        (_append("triples", {"query_clip_id": "t1_c1", "positive_clip_id": "t2_c1",
                             "negative_clip_id": "t5_c1", "split": "train"}),
         "triple", "t1_c1|t2_c1|t5_c1"),
        # Train track t6 listed again under test; a clip of train track t1 labelled test.
        (_append("splits", {"track_id": "t6", "group_id": "g4", "split": "test"}), "track", "t6"),
        (_set("clips", 0, "split", "test"), "track", "t1"),
    ],
)  # fmt: skip
def test_planted_leak_is_caught_and_named(
    mutate: Callable[[Tables], None], kind: str, entity: str
) -> None:
    t = _tables()
    mutate(t)
    report = _labels(t)
    assert not report["success"]
    leakage = report["suites"]["leakage"]
    assert not leakage["success"]
    assert {"kind": kind, "id": entity, "splits": ["train", "test"]} in report["leaks"]
    examples = leakage["results"][0]["unexpected_examples"]
    assert {"kind": kind, "id": entity, "num_splits": 2} in examples
    summary = ex.failure_summary(report)
    assert f"{kind} {entity} in splits train, test" in summary
    assert "suite leakage: expect_column_values_to_be_between on column num_splits" in summary


def test_pair_with_unknown_clip_is_flagged() -> None:
    t = _tables()
    _append("pairs", {"query_clip_id": "t1_c0", "candidate_clip_id": "nope", **PAIR})(t)
    report = _labels(t)
    leak = {"kind": "pair", "id": "t1_c0|nope", "splits": ["train", UNKNOWN_CLIP]}
    assert leak in report["leaks"]


# Schema breaks, each on its own rows: (mutation, suite, failed expectation, text in its line).
LABEL_BREAKS = [
    (_set("clips", 1, "clip_id", "t1_c0"), "clips",
     "expect_column_values_to_be_unique", "clip_id=t1_c0"),
    (_set("clips", 2, "segment_end", 0), "clips",
     "expect_column_pair_values_a_to_be_greater_than_b", "clip_id=t2_c0"),
    (_set("clips", 3, "split", "dev"), "clips",
     "expect_column_values_to_be_in_set", "split=dev"),
    (_set("splits", 2, "group_id", None), "splits",
     "expect_column_values_to_not_be_null", "track_id=t3"),
    (_set("pairs", 0, "relevance", 4), "pairs",
     "expect_column_values_to_be_in_set", "relevance=4"),
    (_set("pairs", 1, "target_tempo", 1.3), "pairs",
     "expect_column_values_to_be_between", "target_tempo=1.3"),
    (_set("pairs", 2, "candidate_clip_id", "t5_c0"), "pairs",
     "expect_column_pair_values_to_differ", "candidate_clip_id=t5_c0"),
    (_set("triples", 1, "negative_clip_id", None), "triples",
     "expect_column_values_to_not_be_null", "query_clip_id=t3_c0"),
    (_set("triples", 0, "split", "unassigned"), "triples",
     "expect_column_values_to_be_in_set", "split=unassigned"),
]  # fmt: skip


@pytest.fixture(scope="module")
def broken_labels() -> dict:
    t = _tables()
    for mutate, *_ in LABEL_BREAKS:
        mutate(t)
    return _labels(t)


def _assert_caught(report: dict, suite: str, expectation: str, detail: str) -> None:
    assert not report["success"] and not report["suites"][suite]["success"]
    assert expectation in _failed(report, suite)
    lines = ex.failure_summary(report).splitlines()
    line = next(s for s in lines if s.startswith(f"suite {suite}: {expectation}"))
    assert detail in line
    json.dumps(report)


@pytest.mark.parametrize(("suite", "expectation", "detail"), [b[1:] for b in LABEL_BREAKS])
def test_label_schema_break_is_caught(
    broken_labels: dict, suite: str, expectation: str, detail: str
) -> None:
    _assert_caught(broken_labels, suite, expectation, detail)


def test_split_sizes_refuse_a_split_below_the_minimum() -> None:
    t = _tables()
    report = _sizes(t, min_tracks=2)
    _assert_caught(report, "split_sizes", "expect_column_values_to_be_between", "split=test")
    assert {r["split"]: r["tracks"] for r in report["sizes"]} == {"train": 3, "val": 2, "test": 1}


def test_split_sizes_count_an_emptied_split_and_key_values() -> None:
    t = _tables()
    t["splits"].loc[t["splits"]["split"] == "val", "split"] = "unassigned"
    report = _sizes(t)
    _assert_caught(report, "split_sizes", "expect_column_values_to_be_between", "split=val")
    # train has 2 works' worth of artists a1, a5: two distinct values pass at 2, not at 3.
    assert _sizes(_tables(), min_key_values=1)["success"]
    failed = _sizes(_tables(), min_key_values=2)
    _assert_caught(failed, "split_sizes", "expect_column_values_to_be_between", "split=test")


def test_missing_columns_are_named() -> None:
    t = _tables()
    t["clips"] = t["clips"].drop(columns="split")
    t["triples"] = t["triples"].drop(columns="negative_clip_id")
    labels = _labels(t)
    _assert_caught(labels, "triples", "expect_column_to_exist", "column negative_clip_id")
    _assert_caught(labels, "clips", "expect_column_to_exist", "column split")
    assert "missing column(s) clips.split, triples.negative_clip_id" in ex.failure_summary(labels)


def test_validate_result_shape_caps_examples_and_is_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    df = pd.DataFrame({"x": range(50)})
    gxe = ex._gxe()
    result = ex.validate(df, "demo", [gxe.ExpectColumnValuesToBeBetween(column="x", max_value=9)])
    assert set(result) == {"suite", "success", "statistics", "results"}
    assert result["suite"] == "demo" and not result["success"]
    assert result["statistics"]["row_count"] == 50
    (entry,) = result["results"]
    assert entry["kwargs"] == {"column": "x", "max_value": 9}
    assert entry["unexpected_count"] == 40
    assert entry["unexpected_examples"] == list(range(10, 30))
    json.dumps(result)
    assert list(tmp_path.iterdir()) == []
    assert capfd.readouterr().err == ""


def test_validation_in_blocks_of_rows_reports_what_one_pass_reports() -> None:
    df = pd.DataFrame({"id": [f"r{i}" for i in range(50)], "x": range(50)})
    gxe = ex._gxe()
    suite = [
        gxe.ExpectColumnValuesToBeBetween(column="x", max_value=9),
        gxe.ExpectColumnValuesToNotBeNull(column="x"),
    ]
    whole = ex.validate(df, "demo", suite, ["id"])
    blocks = ex.validate(df, "demo", suite, ["id"], chunk_rows=7)
    assert blocks == whole
    assert not blocks["success"] and blocks["statistics"]["unsuccessful_expectations"] == 1
    assert blocks["results"][0]["unexpected_count"] == 40
    assert blocks["results"][0]["unexpected_examples"][0] == {"id": "r10", "x": 10}


def test_concurrent_validations_do_not_share_state() -> None:
    gxe = ex._gxe()
    frames = [pd.DataFrame({"x": range(n)}) for n in (20, 30, 40, 50)]

    def run(df: pd.DataFrame) -> dict:
        return ex.validate(df, "demo", [gxe.ExpectColumnValuesToBeBetween(column="x", max_value=9)])

    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, frames))
    assert [r["results"][0]["unexpected_count"] for r in concurrent] == [10, 20, 30, 40]
    assert concurrent == [run(df) for df in frames]
