"""``labels_and_splits`` end to end on small synthetic data, through the real catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expressive_retrieval.data.contract import InputContractError
from expressive_retrieval.data.splits import SplitError

REPO = Path(__file__).resolve().parents[2]
LABEL_OUTPUTS = ("clips", "splits", "pairs", "triples", "clip_aspect_features", "dataset_version")


def test_outputs_follow_the_design(labelled_project) -> None:
    clips, splits = labelled_project.load("clips"), labelled_project.load("splits")
    pairs, triples = labelled_project.load("pairs"), labelled_project.load("triples")
    assert list(clips.columns[:5]) == [
        "clip_id",
        "track_id",
        "segment_start",
        "segment_end",
        "split",
    ]
    assert (clips["segment_end"] - clips["segment_start"] == 6).all()
    assert clips["clip_id"].str.fullmatch(r"trk\d+:\d+").all()
    assert set(splits.columns) >= {"track_id", "group_id", "split"}
    assert set(splits["split"]) == {"train", "val", "test"}
    aspects = ["tempo", "dynamics", "articulation", "phrasing", "timbre"]
    assert {f"target_{a}" for a in aspects} <= set(pairs.columns)
    assert pairs["relevance"].between(0, 3).all() and set(pairs["relevance"]) >= {0, 1, 2}
    targets = pairs[[f"target_{a}" for a in aspects]]
    assert targets.ge(0).all().all() and targets.le(1).all().all()
    # Per-aspect targets carry different information.
    corr = targets.corr().to_numpy()
    assert corr[~np.eye(len(aspects), dtype=bool)].max() < 0.9
    assert len(triples) > 0
    version = labelled_project.load("dataset_version")
    assert version["schema_version"] == 1 and len(version["dataset_version"]) == 16
    assert version["counts"]["clips"] == len(clips)
    assert version["embedding"] == {"L": 5, "D": 32, "dtype": "float16"}


def test_no_leak_across_splits(labelled_project) -> None:
    clips, splits = labelled_project.load("clips"), labelled_project.load("splits")
    tracks = labelled_project.load("tracks").merge(splits, on="track_id")
    for key in ("work_id", "artist_id", "group_id"):
        assert (tracks.groupby(key)["split"].nunique() == 1).all(), key
    split_of = clips.set_index("clip_id")["split"]
    pairs, triples = labelled_project.load("pairs"), labelled_project.load("triples")
    assert (pairs["query_clip_id"].map(split_of) == pairs["candidate_clip_id"].map(split_of)).all()
    for column in ("positive_clip_id", "negative_clip_id"):
        assert (triples["query_clip_id"].map(split_of) == triples[column].map(split_of)).all()
    track_of = clips.set_index("clip_id")["track_id"]
    assert (pairs["query_clip_id"].map(track_of) != pairs["candidate_clip_id"].map(track_of)).all()
    # Split sizes close to the configured fractions.
    shares = splits["split"].value_counts(normalize=True)
    fractions = labelled_project.catalog().load("params:labels_and_splits")["split_fractions"]
    assert abs(shares["train"] - fractions["train"]) < 0.1


def test_validation_reports_are_saved(labelled_project) -> None:
    raw = labelled_project.load("raw_inputs_validation")
    labels = labelled_project.load("labels_validation")
    assert raw["passed"] and raw["L"] == 5
    assert labels["success"] and "leakage" in json.dumps(labels)


def test_deterministic_and_frozen(make_project) -> None:
    project = make_project()
    project.run("synthetic_data", "labels_and_splits")
    first = {name: project.load(name) for name in ("clips", "splits", "pairs", "triples")}
    # A different seed does not move the frozen split...
    project.set_params({"seed": 99})
    project.run("labels_and_splits")
    pd.testing.assert_frame_equal(project.load("splits"), first["splits"])
    project.set_params({"seed": 20261126})
    project.run("labels_and_splits")
    for name, frame in first.items():
        pd.testing.assert_frame_equal(project.load(name), frame, check_like=False)
    assert len(project.versions("pairs")) == 3  # every run adds a version, none overwritten
    # ...until a resplit is asked for.
    project.set_params({"seed": 99, "labels_and_splits": {"resplit": True}})
    project.run("labels_and_splits")
    assert not project.load("splits")["split"].equals(first["splits"]["split"])


def test_frozen_split_leaves_a_new_bridging_track_unassigned(make_project) -> None:
    project = make_project()
    project.run("synthetic_data", "labels_and_splits")
    splits = project.load("splits")
    tracks = project.load("tracks")
    train = tracks[tracks["track_id"].isin(splits.loc[splits["split"] == "train", "track_id"])]
    test = tracks[tracks["track_id"].isin(splits.loc[splits["split"] == "test", "track_id"])]
    bridge = train.iloc[[0]].assign(track_id="bridge", work_id=test["work_id"].iloc[0])
    raw = project.data / "01_raw"
    pd.concat([tracks, bridge]).to_parquet(raw / "tracks.parquet")
    source = raw / "segments" / f"{train['track_id'].iloc[0]}.npy"
    (raw / "segments" / "bridge.npy").write_bytes(source.read_bytes())
    proxies = project.load("proxy_targets")
    extra = proxies[proxies["track_id"] == train["track_id"].iloc[0]].assign(track_id="bridge")
    pd.concat([proxies, extra]).to_parquet(raw / "proxy_targets.parquet")
    project.run("labels_and_splits")
    after = project.load("splits").set_index("track_id")["split"]
    assert after["bridge"] == "unassigned"
    assert (after.loc[splits["track_id"]].to_numpy() == splits["split"].to_numpy()).all()
    clips, pairs = project.load("clips"), project.load("pairs")
    bridge_clips = set(clips.loc[clips["track_id"] == "bridge", "clip_id"])
    assert bridge_clips and set(clips.loc[clips["track_id"] == "bridge", "split"]) == {"unassigned"}
    assert not bridge_clips & (set(pairs["query_clip_id"]) | set(pairs["candidate_clip_id"]))
    assert project.load("dataset_version")["unassigned_tracks"] == ["bridge"]


def test_a_degenerate_split_is_refused_before_anything_is_published(make_project) -> None:
    project = make_project({"labels_and_splits": {"resplit": True}})
    project.run("synthetic_data")
    raw = project.data / "01_raw"
    tracks = pd.read_parquet(raw / "tracks.parquet").assign(work_id="one-work")
    tracks.to_parquet(raw / "tracks.parquet")
    with pytest.raises(SplitError) as error:
        project.run("labels_and_splits")
    message = str(error.value)
    for needle in (
        "work_id, artist_id",
        "1 connected component",
        "test: tracks=0",
        "min_split_size",
    ):
        assert needle in message, message
    for name in LABEL_OUTPUTS:
        assert project.versions(name) == [], name
    assert len(project.versions("splits_validation")) == 1  # the failed report is kept


def test_probe_fallback_finds_the_band(make_project) -> None:
    project = make_project({"synthetic_data": {"no_discovery": ["phrasing"], "num_layers": 9}})
    project.run("synthetic_data", "labels_and_splits")
    evidence = project.load("layer_evidence")
    assert evidence["phrasing"]["source"] == "probe"
    assert evidence["tempo"]["source"] == "discovery"
    # Phrasing is the 4th of 5 aspects: its band is centred on layer 4 * 8 / 6 ≈ 5.3.
    assert abs(int(np.argmax(evidence["phrasing"]["layer_scores"])) - 5.33) <= 1.5


def test_mert_330m_shape_with_other_aspects(make_project) -> None:
    aspects = {
        "pace": {"proxies": ["ioi_ms"], "aggregate": ["mean", "slope"], "default_weight": 2.0},
        "touch": {"proxies": ["attack_ms", "release_ms"], "aggregate": ["mean"]},
        "arc": {"proxies": ["energy_arc"], "aggregate": ["std"]},
    }
    synthetic = {"num_layers": 25, "dim": 1024, "num_groups": 8, "dtype": "float32"}
    project = make_project({"aspects": aspects, "synthetic_data": synthetic})
    project.run("synthetic_data", "labels_and_splits")
    pairs = project.load("pairs")
    assert {"target_pace", "target_touch", "target_arc"} <= set(pairs.columns)
    assert "target_tempo" not in pairs.columns
    assert project.load("dataset_version")["embedding"]["L"] == 25
    assert len(project.load("layer_evidence")["pace"]["layer_scores"]) == 25


def _break_duplicate_id(raw: Path) -> None:
    tracks = pd.read_parquet(raw / "tracks.parquet")
    tracks.loc[1, "track_id"] = tracks.loc[0, "track_id"]
    tracks.to_parquet(raw / "tracks.parquet")


def _break_unsafe_id(raw: Path) -> None:
    tracks = pd.read_parquet(raw / "tracks.parquet")
    tracks.loc[0, "track_id"] = "../x"
    tracks.to_parquet(raw / "tracks.parquet")


def _break_missing_file(raw: Path) -> None:
    (raw / "segments" / "trk00003.npy").unlink()


def _break_rank(raw: Path) -> None:
    path = raw / "segments" / "trk00003.npy"
    np.save(path, np.load(path)[:, 0, :])


def _break_layout(raw: Path) -> None:
    path = raw / "segments" / "trk00004.npy"
    np.save(path, np.load(path)[:, :, :16])


def _break_nan(raw: Path) -> None:
    path = raw / "segments" / "trk00005.npy"
    array = np.load(path)
    array[2, 1, 3] = np.nan
    array[3, 0, 0] = np.inf
    np.save(path, array)


def _break_proxy_row(raw: Path) -> None:
    proxies = pd.read_parquet(raw / "proxy_targets.parquet")
    proxies.drop(index=proxies.index[(proxies["track_id"] == "trk00002")][4]).to_parquet(
        raw / "proxy_targets.parquet"
    )


def _break_proxy_range(raw: Path) -> None:
    proxies = pd.read_parquet(raw / "proxy_targets.parquet")
    proxies.loc[proxies.index[(proxies["track_id"] == "trk00002")][-1], "segment_idx"] = 99
    proxies.to_parquet(raw / "proxy_targets.parquet")


def _break_proxy_column(raw: Path) -> None:
    pd.read_parquet(raw / "proxy_targets.parquet").drop(columns="phrase_arc").to_parquet(
        raw / "proxy_targets.parquet"
    )


def _break_layer_scores(raw: Path) -> None:
    discovery = json.loads((raw / "discovery.json").read_text())
    discovery["aspects"]["timbre"]["layer_scores"] = [0.5, 0.5]
    (raw / "discovery.json").write_text(json.dumps(discovery))


def _break_proxy_inf(raw: Path) -> None:
    proxies = pd.read_parquet(raw / "proxy_targets.parquet")
    row = proxies.index[(proxies["track_id"] == "trk00002") & (proxies["segment_idx"] == 3)]
    proxies.loc[row, "tempo_bpm"] = np.inf
    proxies.to_parquet(raw / "proxy_targets.parquet")


def _break_proxy_all_nan(raw: Path) -> None:
    proxies = pd.read_parquet(raw / "proxy_targets.parquet")
    proxies["loudness_db"] = np.nan
    proxies.to_parquet(raw / "proxy_targets.parquet")


def _break_every_proxy(raw: Path) -> None:
    proxies = pd.read_parquet(raw / "proxy_targets.parquet")
    for column in proxies.columns.drop(["track_id", "segment_idx"]):
        proxies[column] = np.nan
    proxies.to_parquet(raw / "proxy_targets.parquet")


def _break_empty_tracks(raw: Path) -> None:
    pd.read_parquet(raw / "tracks.parquet").iloc[:0].to_parquet(raw / "tracks.parquet")


def _break_long_id(raw: Path) -> None:
    tracks = pd.read_parquet(raw / "tracks.parquet")
    tracks.loc[0, "track_id"] = "t" * 300
    tracks.to_parquet(raw / "tracks.parquet")


def _break_discovery_json(raw: Path) -> None:
    (raw / "discovery.json").write_text('{"schema_version": 1, "aspects": ')


def _break_tracks_parquet(raw: Path) -> None:
    (raw / "tracks.parquet").write_bytes(b"not a parquet file")


def _break_huge_scores(raw: Path) -> None:
    discovery = json.loads((raw / "discovery.json").read_text())
    discovery["aspects"]["tempo"]["layer_scores"][0] = 1e308
    (raw / "discovery.json").write_text(json.dumps(discovery))


def _break_discovery_schema(raw: Path) -> None:
    discovery = json.loads((raw / "discovery.json").read_text())
    del discovery["embedding"]
    (raw / "discovery.json").write_text(json.dumps(discovery))


BROKEN = {
    "infinite proxy": (
        _break_proxy_inf,
        "proxy_targets.parquet",
        "proxy_targets.finite",
        "trk00002:3",
    ),
    "aspect proxy all NaN": (
        _break_proxy_all_nan,
        "proxy_targets.parquet",
        "proxy_targets.coverage",
        "dynamics:loudness_db",
    ),
    "every proxy NaN": (
        _break_every_proxy,
        "proxy_targets.parquet",
        "proxy_targets.coverage",
        "tempo:tempo_bpm",
    ),
    "empty tracks": (_break_empty_tracks, "tracks.parquet", "tracks.empty", "<no rows>"),
    "300-character track_id": (_break_long_id, "tracks.parquet", "track_id.safe", "t" * 300),
    "unparseable discovery": (
        _break_discovery_json,
        "discovery.json",
        "discovery.readable",
        "discovery.json",
    ),
    "unparseable tracks": (_break_tracks_parquet, "tracks.parquet", "tracks.readable", "tracks"),
    "absurd layer score": (_break_huge_scores, "discovery.json", "discovery.layer_scores", "tempo"),
    "duplicate track_id": (_break_duplicate_id, "tracks.parquet", "track_id.unique", "trk00000"),
    "unsafe track_id": (_break_unsafe_id, "tracks.parquet", "track_id.safe", "../x"),
    "no segment file": (_break_missing_file, "trk00003.npy", "segments.file_exists", "trk00003"),
    "wrong rank": (_break_rank, "trk00003.npy", "segments.rank", "trk00003"),
    "other L/D": (_break_layout, "trk00004.npy", "segments.layout", "trk00004"),
    "NaN and Inf": (_break_nan, "trk00005.npy", "segments.finite", "trk00005"),
    "missing proxy row": (
        _break_proxy_row,
        "proxy_targets.parquet",
        "proxy_targets.rows_complete",
        "trk00002:4",
    ),
    "segment_idx out of range": (
        _break_proxy_range,
        "proxy_targets.parquet",
        "proxy_targets.segment_idx_range",
        "trk00002:99",
    ),
    "aspect proxy absent": (
        _break_proxy_column,
        "proxy_targets.parquet",
        "aspects.proxy_columns",
        "phrasing:phrase_arc",
    ),
    "layer_scores length": (
        _break_layer_scores,
        "discovery.json",
        "discovery.layer_scores",
        "timbre",
    ),
    "malformed discovery": (
        _break_discovery_schema,
        "discovery.json",
        "discovery.schema",
        "embedding",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_input_is_refused_before_any_output(make_project, case: str) -> None:
    breaker, file, rule, ids = BROKEN[case]
    project = make_project()
    project.run("synthetic_data")
    breaker(project.data / "01_raw")
    with pytest.raises(InputContractError) as error:
        project.run("labels_and_splits")
    message = str(error.value)
    assert file in message and f"[{rule}]" in message and ids in message, message
    for name in LABEL_OUTPUTS:
        assert project.versions(name) == [], name
    assert len(project.versions("raw_inputs_validation")) == 1  # the failed report is kept


def test_cli_exits_non_zero_with_a_clear_message(make_project) -> None:
    project = make_project()
    project.run("synthetic_data")
    _break_duplicate_id(project.data / "01_raw")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--pipelines=labels_and_splits",
            f"--conf-source={project.conf}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "tracks.parquet [track_id.unique]" in output and "trk00000" in output
    assert project.versions("clips") == []


def test_nearest_neighbour_labels_pass_the_label_suites(make_project) -> None:
    ann = {"candidate_search": "ann", "ann": {"nprobe": 1}}  # IVF even on this small world
    project = make_project({"labels_and_splits": {"pairs": ann}})
    project.run("synthetic_data", "labels_and_splits")  # publish_labels refuses failed suites
    assert project.load("labels_validation")["success"]
    clips, pairs = project.load("clips"), project.load("pairs")
    split_of, track_of = (clips.set_index("clip_id")[c] for c in ("split", "track_id"))
    assert (pairs["query_clip_id"].map(split_of) == pairs["candidate_clip_id"].map(split_of)).all()
    assert (pairs["query_clip_id"].map(track_of) != pairs["candidate_clip_id"].map(track_of)).all()
    # Every query gets its full list, or every clip of other tracks in a small split.
    others = clips.groupby("split")["clip_id"].transform("size") - clips.groupby("track_id")[
        "clip_id"
    ].transform("size")
    expected = others.clip(upper=32).set_axis(clips["clip_id"])
    sizes = pairs.groupby("query_clip_id").size()
    assert (sizes == expected.loc[sizes.index]).all() and len(project.load("triples"))
