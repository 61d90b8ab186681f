"""Leak-safe split assignment."""

from __future__ import annotations

import pandas as pd
import pytest

from expressive_retrieval.data.splits import SplitError, assign_splits, connected_groups

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _tracks(n_groups: int = 20) -> pd.DataFrame:
    rows = []
    for g in range(n_groups):
        # a chain: t0 -(work)- t1 -(artist)- t2, so all three are one group
        rows += [
            (f"g{g}a", f"w{g}", f"a{g}x"),
            (f"g{g}b", f"w{g}", f"a{g}y"),
            (f"g{g}c", f"w{g}z", f"a{g}y"),
        ]
    return pd.DataFrame(rows, columns=["track_id", "work_id", "artist_id"])


def test_groups_follow_any_shared_key() -> None:
    tracks = _tracks(3)
    groups = connected_groups(tracks, ["work_id", "artist_id"])
    assert groups.nunique() == 3
    assert groups.iloc[0] == groups.iloc[2] == "g0a"
    assert connected_groups(tracks, ["work_id"]).nunique() == 6


def test_whole_groups_near_fractions_and_seeded() -> None:
    tracks = _tracks(40)
    splits = assign_splits(tracks, ["work_id", "artist_id"], FRACTIONS, seed=1)
    assert (splits.groupby("group_id")["split"].nunique() == 1).all()
    shares = splits["split"].value_counts(normalize=True)
    for split, share in FRACTIONS.items():
        assert abs(shares[split] - share) < 0.05
    again = assign_splits(
        tracks.sample(frac=1, random_state=3), ["work_id", "artist_id"], FRACTIONS, 1
    )
    pd.testing.assert_series_equal(
        splits.set_index("track_id")["split"],
        again.set_index("track_id")["split"].loc[splits["track_id"]],
    )


def test_frozen_split_keeps_old_tracks_and_places_new_ones() -> None:
    tracks = _tracks(20)
    first = assign_splits(tracks, ["work_id", "artist_id"], FRACTIONS, seed=1)
    grown = pd.concat(
        [tracks, pd.DataFrame([("g0d", "w0", "new"), ("new1", "wn", "an")], columns=tracks.columns)]
    )
    second = assign_splits(grown, ["work_id", "artist_id"], FRACTIONS, seed=2, previous=first)
    merged = second.set_index("track_id")["split"]
    assert (merged.loc[first["track_id"]].to_numpy() == first["split"].to_numpy()).all()
    assert merged["g0d"] == merged["g0a"]
    assert merged["new1"] in FRACTIONS


def test_frozen_split_refuses_a_bridge_between_splits() -> None:
    tracks = _tracks(20)
    first = assign_splits(tracks, ["work_id", "artist_id"], FRACTIONS, seed=1).set_index("track_id")
    a = first.index[first["split"] == "train"][0]
    b = first.index[first["split"] == "test"][0]
    work_a = tracks.set_index("track_id").loc[a, "work_id"]
    artist_b = tracks.set_index("track_id").loc[b, "artist_id"]
    bridge = pd.DataFrame([("bridge", work_a, artist_b)], columns=tracks.columns)
    with pytest.raises(SplitError, match="resplit"):
        assign_splits(
            pd.concat([tracks, bridge]), ["work_id", "artist_id"], FRACTIONS, 1, first.reset_index()
        )
