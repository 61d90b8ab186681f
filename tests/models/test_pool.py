import numpy as np
import pytest

from expressive_retrieval.models.training import candidate_pool

# 30 clips: rows 0-19 one split (5 tracks of 4 clips), rows 20-29 another (the other split).
TRACKS = np.repeat(np.arange(8), [4, 4, 4, 4, 4, 4, 3, 3])
SPLIT = np.arange(20)


def test_a_small_split_gives_every_other_track_clip():
    pool = candidate_pool(SPLIT[::3], SPLIT, TRACKS, size=100, seed=0)
    assert pool.shape == (7, 16)  # 20 clips, 4 of them the query's own track
    for query, candidates in zip(SPLIT[::3], pool, strict=True):
        expected = SPLIT[TRACKS[SPLIT] != TRACKS[query]]
        np.testing.assert_array_equal(np.sort(candidates), expected)


def test_a_capped_pool_stays_in_its_split_and_keeps_the_mined_nearest():
    vectors = np.random.default_rng(0).standard_normal((30, 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pool = candidate_pool(SPLIT, SPLIT, TRACKS, size=6, seed=1, vectors=vectors, mined=2)
    assert pool.shape == (20, 6) and (pool >= 0).all()
    for query, candidates in zip(SPLIT, pool, strict=True):
        assert len(set(candidates)) == 6
        assert np.isin(candidates, SPLIT).all()  # never the other split
        assert (TRACKS[candidates] != TRACKS[query]).all()  # never its own track
        others = SPLIT[TRACKS[SPLIT] != TRACKS[query]]
        nearest = others[np.argsort(-(vectors[others] @ vectors[query]), kind="stable")[:2]]
        np.testing.assert_array_equal(candidates[:2], nearest)
    again = candidate_pool(SPLIT, SPLIT, TRACKS, size=6, seed=1, vectors=vectors, mined=2)
    np.testing.assert_array_equal(again, pool)
    other_seed = candidate_pool(SPLIT, SPLIT, TRACKS, size=6, seed=2, vectors=vectors, mined=2)
    assert not np.array_equal(other_seed[:, 2:], pool[:, 2:])


def test_pools_refuse_queries_outside_the_split_and_mining_without_vectors():
    with pytest.raises(ValueError, match=r"rows of the split, not \[20\]"):
        candidate_pool(np.array([0, 20]), SPLIT, TRACKS, size=4, seed=0)
    with pytest.raises(ValueError, match="need vectors"):
        candidate_pool(SPLIT, SPLIT, TRACKS, size=4, seed=0, mined=2)
    with pytest.raises(ValueError, match="size must be >= 1"):
        candidate_pool(SPLIT, SPLIT, TRACKS, size=0, seed=0)


def test_kept_candidates_come_first_in_a_capped_pool():
    keep = np.tile([[4, 9, -1]], (2, 1))
    pool = candidate_pool(SPLIT[:2], SPLIT, TRACKS, size=5, seed=0, keep=keep)
    np.testing.assert_array_equal(pool[:, :2], [[4, 9], [4, 9]])
    assert len(set(pool[0])) == 5
    with pytest.raises(ValueError, match="kept candidates of query 0"):
        candidate_pool(SPLIT[:1], SPLIT, TRACKS, size=5, seed=0, keep=np.array([[1]]))
