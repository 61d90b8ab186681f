"""The bounded query set: seeded, stratified over the independent units."""

from __future__ import annotations

import numpy as np

from expressive_retrieval.evaluation.queries import sample_queries, unit_quotas


def _catalogue(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clips of 40 tracks in 12 groups (units), 1 to 9 clips a track."""
    rng = np.random.default_rng(seed)
    clips_per_track = rng.integers(1, 10, size=40)
    group_of_track = np.arange(40) % 12
    tracks = np.repeat(np.arange(40), clips_per_track)
    return group_of_track[tracks].astype(str), tracks


def test_a_split_within_the_cap_keeps_every_query() -> None:
    units, tracks = _catalogue()
    np.testing.assert_array_equal(
        sample_queries(units, tracks, len(units), 1), np.arange(len(units))
    )


def test_the_sample_is_seeded_and_keeps_every_unit_in_proportion() -> None:
    units, tracks = _catalogue()
    limit = 60
    chosen = sample_queries(units, tracks, limit, 7)
    np.testing.assert_array_equal(chosen, sample_queries(units, tracks, limit, 7))
    assert not np.array_equal(chosen, sample_queries(units, tracks, limit, 8))
    assert len(chosen) == limit and (np.diff(chosen) > 0).all()
    assert set(units[chosen]) == set(units), "every unit keeps a query"
    names, sizes = np.unique(units, return_counts=True)
    got = np.array([(units[chosen] == name).sum() for name in names])
    expected = 1 + (sizes - 1) * (limit - len(names)) / (len(units) - len(names))
    assert (np.abs(got - expected) < 1).all(), (got, expected)


def test_queries_go_round_a_units_tracks_before_taking_a_second_clip() -> None:
    units, tracks = _catalogue(1)
    chosen = sample_queries(units, tracks, 50, 3)
    for unit in np.unique(units):
        mine = tracks[chosen][units[chosen] == unit]
        per_track = np.bincount(mine)[np.unique(mine)]
        available = np.unique(tracks[units == unit])
        clips = np.bincount(tracks[units == unit])[available]
        # A track gets a second query only once every track of its unit has one (or is spent).
        if per_track.max() > 1:
            assert len(np.unique(mine)) == len(available)
        assert (per_track <= clips[np.isin(available, mine)]).all()


def test_fewer_queries_than_units_take_one_clip_of_the_largest_units() -> None:
    quota = unit_quotas(np.array([5, 1, 9, 3]), 2, np.random.default_rng(0))
    np.testing.assert_array_equal(quota, [1, 0, 1, 0])
    assert unit_quotas(np.array([5, 1, 9, 3]), 10, np.random.default_rng(0)).sum() == 10
