"""Pooled judging against the exhaustive path on a small generated split; a bounded
query set against every clip querying."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytrec_eval

from expressive_retrieval.evaluation.metrics import format_qrels, format_run, parse_qrels, parse_run
from expressive_retrieval.evaluation.pooling import (
    judge_pool,
    system_scores,
    top_candidates,
    top_columns,
    union,
)
from expressive_retrieval.evaluation.retrieval import per_query_report, split_view
from expressive_retrieval.evaluation.scorers import FoundScorer, RandomScorer, VectorScorer
from expressive_retrieval.vectors.track_scores import aggregate_runs, aggregate_to_tracks

ASPECTS = ["tempo", "dynamics", "timbre"]
TRACK_SCORING = {"how": "topk_mean", "k": 2}


def _split(seed: int = 0, pooled: bool = False, queries: dict | None = None):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 6, size=16)
    track = np.repeat([f"t{i:02d}" for i in range(len(sizes))], sizes)
    clip_ids = [f"c{i:03d}" for i in range(len(track))]
    clips = pd.DataFrame({"clip_id": clip_ids, "track_id": track, "split": "test"})
    features = pd.DataFrame(rng.normal(size=(len(track), 3)), columns=ASPECTS)
    features["clip_id"] = clip_ids
    relevance = {
        "aspects": ASPECTS,
        "features": ASPECTS,
        "feature_aspect": [0, 1, 2],
        "center": [0.0] * 3,
        "scale": [1.0] * 3,
        "bandwidth": 1.0,
        "thresholds": [0.4, 0.6, 0.8],
        "weights": [1.0, 1.0, 1.0],
    }
    view = split_view(clips, features, relevance, "test", pooled=pooled, queries=queries)
    vectors = rng.normal(size=(len(track), 3, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
    found = np.argsort(-rng.random((len(track), len(track))), axis=1)[:, :20]
    scorers = {
        "random": RandomScorer(7, len(track), len(sizes)),
        "cosine": VectorScorer(vectors.mean(1)),
        "aspects": VectorScorer(vectors.reshape(len(track), -1), 3, [1.0, 2.0, 1.0]),
        "index": FoundScorer(found, rng.random(found.shape), len(track)),
    }
    return view, scorers


def _reports(view, scorers):
    return {
        name: per_query_report(view, s.clip, s.track, s.retrieved, s.track_retrieved)
        for name, s in (
            (name, system_scores(view, scorer, TRACK_SCORING)) for name, scorer in scorers.items()
        )
    }


def test_a_pool_deep_enough_to_hold_everything_measures_what_exhaustive_judging_does() -> None:
    exhaustive, scorers = _split()
    base, _ = _split(pooled=True)
    pooled = judge_pool(base, scorers, 1000, 1000, TRACK_SCORING)
    ids, tracks = list(base.clip_ids), list(base.track_ids)
    assert pooled.pooled and pooled.valid.sum() == exhaustive.valid.sum()
    assert format_qrels(ids, pooled.grades, ids, pooled.valid, pooled.candidates) == format_qrels(
        ids, exhaustive.grades, ids, exhaustive.valid
    )
    assert format_qrels(
        ids, pooled.track_grades, tracks, pooled.track_valid, pooled.track_candidates
    ) == format_qrels(ids, exhaustive.track_grades, tracks, exhaustive.track_valid)
    want, got = _reports(exhaustive, scorers), _reports(pooled, scorers)
    for name in scorers:
        for task in want[name]:
            pd.testing.assert_frame_equal(got[name][task], want[name][task], rtol=1e-9)


def _runs(view, scores, depth: int) -> list[list[tuple[str, ...]]]:
    """Both tasks' runs as (query, Q0, candidate, rank): scores computed over a pool may
    differ in the last float32 bit from a whole matrix product."""
    ids, tracks = list(view.clip_ids), list(view.track_ids)
    runs = (
        format_run(
            ids, scores.clip, ids, view.valid, "s", depth, scores.retrieved, view.candidates
        ),
        format_run(
            ids,
            scores.track,
            tracks,
            view.track_valid,
            "s",
            depth,
            scores.track_retrieved,
            view.track_candidates,
        ),
    )
    return [[tuple(line.split()[:4]) for line in run.splitlines()] for run in runs]


def test_shallow_pool_keeps_every_pooling_systems_top_and_judges_only_the_pool() -> None:
    exhaustive, scorers = _split(1)
    base, _ = _split(1, pooled=True)
    depth = 5
    pooled = judge_pool(base, scorers, depth, depth, TRACK_SCORING)
    ids = list(base.clip_ids)
    assert pooled.valid.sum() < exhaustive.valid.sum()
    # Qrels of the pool: a subset of the exhaustive qrels, with the same grades.
    qrels = format_qrels(ids, pooled.grades, ids, pooled.valid, pooled.candidates)
    every = format_qrels(ids, exhaustive.grades, ids, exhaustive.valid)
    assert set(qrels.splitlines()) < set(every.splitlines())
    for scorer in scorers.values():
        full = system_scores(exhaustive, scorer, TRACK_SCORING)
        pool = system_scores(pooled, scorer, TRACK_SCORING)
        assert _runs(pooled, pool, depth) == _runs(exhaustive, full, depth)
        # Hits within the pool depth are the same; only the judged totals may be fewer.
        got = per_query_report(pooled, pool.clip, pool.track, pool.retrieved, pool.track_retrieved)
        want = per_query_report(
            exhaustive, full.clip, full.track, full.retrieved, full.track_retrieved
        )
        for task in got:
            hits = got[task]["recall@5"] * got[task]["num_relevant"]
            expected = want[task]["recall@5"] * want[task]["num_relevant"]
            judged = got[task]["num_relevant"] > 0
            np.testing.assert_allclose(hits[judged], expected[judged])
            assert (got[task]["num_relevant"] <= want[task]["num_relevant"]).all()


def test_top_columns_breaks_ties_towards_the_higher_id_and_skips_excluded() -> None:
    scores = np.array([[0.5, 0.9, 0.5, -np.inf, 0.5], [-np.inf, -np.inf, 0.1, -np.inf, -np.inf]])
    np.testing.assert_array_equal(top_columns(scores, 3), [[1, 2, 4], [2, -1, -1]])
    np.testing.assert_array_equal(
        union([np.array([[3, -1], [0, 1]]), np.array([[3, 1], [1, 2]])], 5), [[1, 3, -1], [0, 1, 2]]
    )


def test_a_small_split_keeps_every_pair() -> None:
    view, scorers = _split()
    assert judge_pool(view, scorers, 5, 5, TRACK_SCORING) is view
    assert not view.pooled and view.candidates is None


def test_pooled_metrics_agree_with_pytrec_eval_on_the_pooled_run_and_qrels() -> None:
    base, scorers = _split(2, pooled=True)
    view = judge_pool(base, scorers, 5, 3, TRACK_SCORING)
    ids, tracks = list(view.clip_ids), list(view.track_ids)
    for name, scorer in scorers.items():
        s = system_scores(view, scorer, TRACK_SCORING)
        report = per_query_report(view, s.clip, s.track, s.retrieved, s.track_retrieved)
        for task, scores, candidate_ids, grades, valid, retrieved, candidates in (
            ("clip_to_clip", s.clip, ids, view.grades, view.valid, s.retrieved, view.candidates),
            (
                "clip_to_track",
                s.track,
                tracks,
                view.track_grades,
                view.track_valid,
                s.track_retrieved,
                view.track_candidates,
            ),
        ):
            qrels = parse_qrels(
                format_qrels(ids, grades, candidate_ids, valid, candidates).splitlines()
            )
            run = format_run(ids, scores, candidate_ids, valid, name, 100, retrieved, candidates)
            theirs = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recip_rank"})
            results = theirs.evaluate(parse_run(run.splitlines()))
            frame = report[task].set_axis(view.clip_ids).dropna()
            assert set(results) <= set(frame.index) and len(frame) == len(qrels)
            for measure, column in (("ndcg_cut_10", "ndcg@10"), ("recip_rank", "mrr")):
                expected = pd.Series({q: r[measure] for q, r in results.items()})
                expected = expected.reindex(frame.index, fill_value=0.0)
                np.testing.assert_allclose(frame[column], expected, atol=1e-6)


def test_each_systems_pool_is_its_own_exact_top_clips_and_tracks() -> None:
    """The pooling pass (blocks of ``[b, N]`` scores, tracks by ``aggregate_to_tracks``)
    finds each system's top clips and tracks as its exhaustive scores rank them."""
    view, scorers = _split(3)
    depth = 4
    for name, scorer in scorers.items():
        clips, tracks = top_candidates(view, scorer, depth, depth, TRACK_SCORING)
        full = system_scores(view, scorer, TRACK_SCORING)
        retrieved = np.ones_like(view.valid) if full.retrieved is None else full.retrieved
        want_clips = top_columns(np.where(view.valid & retrieved, full.clip, -np.inf), depth)
        np.testing.assert_array_equal(clips, want_clips, err_msg=name)
        if name != "random":  # random scores tracks apart, with their own uniform draws
            track = np.where(view.track_valid & np.isfinite(full.track), full.track, -np.inf)
            if full.track_retrieved is not None:
                track = np.where(full.track_retrieved, track, -np.inf)
            np.testing.assert_array_equal(tracks, top_columns(track, depth), err_msg=name)


def test_a_query_cap_above_the_split_changes_nothing() -> None:
    every, scorers = _split(4)
    capped, _ = _split(4, queries={"max": len(every.clip_ids), "seed": 3})
    assert capped.queries is None
    for scorer in scorers.values():
        a, b = (
            system_scores(every, scorer, TRACK_SCORING),
            system_scores(capped, scorer, TRACK_SCORING),
        )
        want = per_query_report(every, a.clip, a.track, a.retrieved, a.track_retrieved)
        got = per_query_report(capped, b.clip, b.track, b.retrieved, b.track_retrieved)
        for task in want:
            pd.testing.assert_frame_equal(got[task], want[task], check_exact=True)


def test_sampled_queries_measure_what_every_clip_querying_measures_for_them() -> None:
    """Every clip stays a candidate: a sampled query's metrics are its row of the full
    evaluation, exhaustive and pooled alike (the pool drawn for the sample only)."""
    every, scorers = _split(5)
    sampled, _ = _split(5, queries={"max": 20, "seed": 3})
    assert len(sampled.query_clips) == 20 and len(sampled.clip_ids) == len(every.clip_ids)
    pooled_every = judge_pool(_split(5, pooled=True)[0], scorers, 6, 4, TRACK_SCORING)
    base, _ = _split(5, pooled=True, queries={"max": 20, "seed": 3})
    pooled = judge_pool(base, scorers, 6, 4, TRACK_SCORING)
    width = pooled.candidates.shape[1]  # the pad width follows the largest pool
    full = pooled_every.candidates[sampled.query_clips]
    np.testing.assert_array_equal(pooled.candidates, full[:, :width])
    assert (full[:, width:] == -1).all()
    rows = sampled.query_clips
    for full_view, view in ((every, sampled), (pooled_every, pooled)):
        for name, scorer in scorers.items():
            a = system_scores(full_view, scorer, TRACK_SCORING)
            b = system_scores(view, scorer, TRACK_SCORING)
            want = per_query_report(full_view, a.clip, a.track, a.retrieved, a.track_retrieved)
            got = per_query_report(view, b.clip, b.track, b.retrieved, b.track_retrieved)
            for task in want:
                expected = want[task].iloc[rows].reset_index(drop=True)
                pd.testing.assert_frame_equal(
                    got[task].reset_index(drop=True), expected, rtol=1e-9, obj=name
                )


def test_a_views_track_runs_score_tracks_as_aggregate_to_tracks() -> None:
    """Clips in any order, ties, unreturned (-inf) clips, tracks of one clip."""
    view, _ = _split(6)
    shuffled = np.random.default_rng(0).permutation(len(view.clip_ids))
    for clip_track in (view.clip_track, view.clip_track[shuffled]):
        mixed = dataclasses.replace(view, clip_track=clip_track)
        scores = np.random.default_rng(1).normal(size=(9, len(clip_track)))
        scores[:, ::7], scores[:, ::5] = -np.inf, 0.5
        for how, k in (("max", 1), ("topk_mean", 1), ("topk_mean", 2)):
            want = aggregate_to_tracks(scores, clip_track, len(view.track_ids), how, k)
            got = aggregate_runs(scores, mixed.track_runs, how, k)
            np.testing.assert_array_equal(got, want)
