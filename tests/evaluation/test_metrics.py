"""Tests for ``expressive_retrieval.evaluation.metrics``: hand-computed values and pytrec_eval agreement."""

from __future__ import annotations

import numpy as np
import pytest
import pytrec_eval

from expressive_retrieval.evaluation.metrics import (
    RUN_DEPTH,
    per_query_metrics,
    rank_candidates,
    ranking_metrics,
    read_qrels,
    read_run,
    recall_cutoffs,
    write_qrels,
    write_run,
)
from expressive_retrieval.vectors.track_scores import aggregate_to_tracks

IDS = ["d1", "d2", "d3", "d4", "d5", "d6"]
# q0: d1 is excluded (its grade 3 must count nowhere); d2, d3, d4 tie at 0.5.
# q1: the only graded candidate (d2) is excluded, so q1 has no relevant candidate.
# q2: every score ties, so the ranking is by id descending: d6 d5 d4 d3 d2 d1.
SCORES = np.array(
    [
        [0.9, 0.5, 0.5, 0.5, 0.1, 0.3],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
    ]
)
RELEVANCE = np.array(
    [
        [3, 0, 2, 1, 0, 3],
        [0, 2, 0, 0, 0, 0],
        [2, 0, 0, 0, 1, 0],
    ]
)
VALID = np.array(
    [
        [False, True, True, True, True, True],
        [True, False, True, True, True, True],
        [True, True, True, True, True, True],
    ]
)


def test_hand_computed_example() -> None:
    # q0 ranking: d4 d3 d2 d6 d5 (ties at 0.5 by id descending), grades 1 2 0 3 0; 3 relevant.
    #   recall@1 = 1/3, recall@5.. = 1, rr = 1,
    #   dcg = 1/log2(2) + 2/log2(3) + 3/log2(5), idcg = 3/log2(2) + 2/log2(3) + 1/log2(4).
    # q2 ranking: d6 d5 d4 d3 d2 d1, grades 0 1 0 0 0 2; 2 relevant.
    #   recall@1 = 0, recall@5 = 1/2, recall@10 = 1, rr = 1/2,
    #   dcg = 1/log2(3) + 2/log2(7), idcg = 2/log2(2) + 1/log2(3).
    ndcg0 = (1 + 2 / np.log2(3) + 3 / np.log2(5)) / (3 + 2 / np.log2(3) + 1 / 2)
    ndcg2 = (1 / np.log2(3) + 2 / np.log2(7)) / (2 + 1 / np.log2(3))
    np.testing.assert_array_equal(
        rank_candidates(SCORES, IDS, VALID),
        [[3, 2, 1, 5, 4, -1], [5, 4, 3, 2, 0, -1], [5, 4, 3, 2, 1, 0]],
    )
    frame = per_query_metrics(SCORES, RELEVANCE, IDS, VALID)
    assert frame["num_relevant"].tolist() == [3, 0, 2]
    assert frame.loc[1].drop("num_relevant").isna().all()
    np.testing.assert_allclose(frame.loc[0, "recall@1":"ndcg@10"], [1 / 3, 1, 1, 1, 1, ndcg0])
    np.testing.assert_allclose(frame.loc[2, "recall@1":"ndcg@10"], [0, 1 / 2, 1, 1, 1 / 2, ndcg2])
    metrics = ranking_metrics(SCORES, RELEVANCE, IDS, VALID)
    expected = {
        "recall@1": 1 / 6,
        "recall@5": 3 / 4,
        "recall@10": 1.0,
        "recall@50": 1.0,
        "mrr": 3 / 4,
        "ndcg@10": (ndcg0 + ndcg2) / 2,
    }
    assert metrics.keys() == expected.keys() | {"num_queries", "num_queries_without_relevant"}
    assert metrics["num_queries"] == 2 and metrics["num_queries_without_relevant"] == 1
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name


def test_metrics_use_top_run_depth_only() -> None:
    # The only relevant candidate ranks RUN_DEPTH + 50: outside the run file, so trec_eval
    # (and these metrics) give it no reciprocal rank, recall or gain.
    num = 2 * RUN_DEPTH
    scores = -np.arange(num, dtype=np.float64)[None]
    relevance = np.zeros((1, num), dtype=np.int64)
    relevance[0, RUN_DEPTH + 49] = 3
    ids = [f"c{i}" for i in range(num)]
    metrics = ranking_metrics(scores, relevance, ids, np.ones_like(relevance, dtype=bool))
    assert metrics["num_queries"] == 1
    assert metrics["mrr"] == metrics["ndcg@10"] == metrics["recall@50"] == 0.0


def _random_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """40 queries x 300 candidates with many ties, exclusions and sparse graded relevance."""
    rng = np.random.default_rng(seed)
    num_queries, num_candidates = 40, 300
    scores = np.round(rng.normal(size=(num_queries, num_candidates)), 1)
    scores[:5] = np.round(scores[:5])  # a few queries with massive ties
    density = rng.choice([0.0, 0.005, 0.02, 0.1, 0.4], size=(num_queries, 1))
    graded = rng.random((num_queries, num_candidates)) < density
    relevance = np.where(graded, rng.integers(1, 4, size=graded.shape), 0)
    valid = rng.random((num_queries, num_candidates)) > 0.1
    # Ids whose string order differs from their index order ("t10" < "t9").
    ids = [f"t{i}" for i in rng.permutation(num_candidates)]
    return scores, relevance, ids, valid


def test_agrees_with_pytrec_eval(tmp_path) -> None:
    scores, relevance, ids, valid = _random_problem()
    query_ids = [f"q{i}" for i in range(len(scores))]
    write_run(tmp_path / "run.txt", query_ids, scores, ids, valid, system="test")
    write_qrels(tmp_path / "qrels.txt", query_ids, relevance, ids, valid)
    run, qrels = read_run(tmp_path / "run.txt"), read_qrels(tmp_path / "qrels.txt")
    measures = {"recall.1,5,10,50", "recip_rank", "ndcg_cut.10"}
    results = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = {
        "recall@1": "recall_1",
        "recall@5": "recall_5",
        "recall@10": "recall_10",
        "recall@50": "recall_50",
        "mrr": "recip_rank",
        "ndcg@10": "ndcg_cut_10",
    }
    frame = per_query_metrics(scores, relevance, ids, valid)
    judged = frame.index[frame["num_relevant"] > 0]
    assert set(results) == set(qrels) == {query_ids[i] for i in judged}
    assert 0 < len(judged) < len(query_ids)
    metrics = ranking_metrics(scores, relevance, ids, valid)
    assert metrics["num_queries"] == len(qrels)
    assert metrics["num_queries_without_relevant"] == len(query_ids) - len(qrels)
    for ours, theirs in names.items():
        reference = {q: results[query_ids[q]][theirs] for q in judged}
        np.testing.assert_allclose(frame.loc[judged, ours], list(reference.values()), atol=1e-6)
        assert metrics[ours] == pytest.approx(np.mean(list(reference.values())), abs=1e-6)
    # Every metric must actually be exercised (not all 0 or all 1).
    assert all(0 < metrics[ours] < 1 for ours in names)


def test_run_file_format_and_precision(tmp_path) -> None:
    scores = np.array([[1 / 3, 0.1 + 0.2, 2.0]])
    valid = np.array([[True, True, False]])
    write_run(tmp_path / "run.txt", ["q"], scores, ["a", "b", "c"], valid, system="sys", depth=5)
    lines = (tmp_path / "run.txt").read_text().splitlines()
    assert lines == [f"q Q0 a 1 {1 / 3!r} sys", f"q Q0 b 2 {0.1 + 0.2!r} sys"]
    assert read_run(tmp_path / "run.txt") == {"q": {"a": 1 / 3, "b": 0.1 + 0.2}}
    write_qrels(
        tmp_path / "qrels.txt",
        ["q", "r"],
        [[2, 1, 3], [0, 0, 0]],
        ["a", "b", "c"],
        [[True, True, False], [True, True, True]],
    )
    assert (tmp_path / "qrels.txt").read_text() == "q 0 a 2\nq 0 b 1\n"


def test_rank_candidates_excludes_invalid_and_orders_ties() -> None:
    scores, _, ids, valid = _random_problem(seed=1)
    ranked = rank_candidates(scores, ids, valid, k=RUN_DEPTH + 250)
    assert ranked.shape == (len(scores), RUN_DEPTH + 250)
    for q in range(len(scores)):
        kept = ranked[q][ranked[q] >= 0]
        assert (ranked[q][len(kept) :] == -1).all()
        # Python's stable sorts: id descending first, then score descending on top.
        expected = sorted(np.flatnonzero(valid[q]).tolist(), key=ids.__getitem__, reverse=True)
        expected.sort(key=lambda c: -scores[q, c])
        assert kept.tolist() == expected
    np.testing.assert_array_equal(rank_candidates(scores, ids, valid, k=7), ranked[:, :7])


@pytest.mark.parametrize("how", ["max", "topk_mean"])
def test_aggregate_to_tracks_matches_loop(how: str) -> None:
    rng = np.random.default_rng(2)
    num_tracks, k = 9, 3
    track_index = rng.integers(0, num_tracks - 3, size=40)  # the last track has no clips
    track_index[[3, 17, 30]] = [num_tracks - 3, num_tracks - 2, num_tracks - 2]  # 1 and 2 clips
    clip_scores = np.round(rng.normal(size=(6, 40)), 1)  # ties
    clip_scores[:, ::9] = -np.inf  # unreturned clips
    expected = np.full((6, num_tracks), -np.inf)
    for q in range(6):
        for t in range(num_tracks):
            own = sorted(clip_scores[q, track_index == t], reverse=True)
            if own:
                expected[q, t] = max(own) if how == "max" else sum(own[:k]) / len(own[:k])
    got = aggregate_to_tracks(clip_scores, track_index, num_tracks, how=how, k=k)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_a_split_too_small_for_any_recall_cut_off_still_scores() -> None:
    assert (
        recall_cutoffs(1) == () and recall_cutoffs(10) == (1, 5) and recall_cutoffs(100)[-1] == 50
    )
    scores = np.array([[0.9, 0.1]])
    frame = per_query_metrics(scores, np.array([[1, 0]]), ["a", "b"], np.ones((1, 2), bool), ks=())
    assert list(frame.columns) == ["mrr", "ndcg@10", "num_relevant"] and frame["mrr"].iloc[0] == 1.0
