"""The retriever embeds like the pipelines, searches like exact search, refuses bad queries."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np
import pytest
from kedro.io import Version

from expressive_retrieval.datasets import BundleDataset, FaissIndexDataset
from expressive_retrieval.pipelines.export.nodes import assemble_bundle
from expressive_retrieval.pipelines.projection_retriever.nodes import build_clip_index
from expressive_retrieval.serving import QueryError, Retriever, load_bundle
from expressive_retrieval.vectors.aspects import weight_query_vectors
from expressive_retrieval.vectors.track_scores import aggregate_to_tracks


@pytest.fixture(scope="module")
def retriever(tiny_bundle) -> Retriever:
    return load_bundle(tiny_bundle.path)


def _clip_segments(tiny_bundle, row: int) -> np.ndarray:
    _, track, start, end, _ = tiny_bundle.clips.iloc[row]
    return tiny_bundle.segments[track][start:end]


def test_embedding_a_clip_reproduces_its_corpus_vector(tiny_bundle, retriever) -> None:
    vectors = tiny_bundle.artifacts["clip_vectors"]
    for row in (0, 17, len(vectors) - 1):
        np.testing.assert_allclose(
            retriever.embed(_clip_segments(tiny_bundle, row)), vectors[row], atol=1e-5
        )


def test_a_whole_track_embeds_as_its_track_vector(tiny_bundle, retriever) -> None:
    """Longer queries are cut into clips at the clip hop and averaged like a track."""
    track_ids = list(tiny_bundle.artifacts["track_ids"]["track_id"])
    for track in ("track_03", "track_27"):
        expected = tiny_bundle.artifacts["track_vectors"][track_ids.index(track)]
        np.testing.assert_allclose(
            retriever.embed(tiny_bundle.segments[track]), expected, atol=1e-5
        )


def _exact_clip_ranking(tiny_bundle, query: np.ndarray, weights, allowed: np.ndarray):
    vectors = tiny_bundle.artifacts["clip_vectors"]
    scores = weight_query_vectors(query[None], weights, 3)[0] @ vectors.T
    ids = tiny_bundle.clips["clip_id"].to_numpy()
    order = sorted(np.flatnonzero(allowed), key=lambda i: (-scores[i], ids[i]), reverse=False)
    return [(ids[i], scores[i]) for i in order]


@pytest.mark.parametrize("weights", [None, [3.0, 0.0, 1.0], {"tempo": 1.0, "articulation": 0.5}])
def test_clip_search_equals_exact_weighted_search(tiny_bundle, retriever, weights) -> None:
    as_list = {
        None: [1.0, 2.0, 1.0],
        "dict": [1.0, 0.0, 0.5],
    }.get(weights if weights is None else "dict" if isinstance(weights, dict) else "", weights)
    clips = tiny_bundle.clips
    for row in (2, 40, 90):
        query = tiny_bundle.artifacts["clip_vectors"][row]
        own = clips["track_id"].iloc[row]
        hits = retriever.search_clips(query, k=7, weights=weights, exclude_tracks=[own])
        allowed = (clips["track_id"] != own).to_numpy()
        expected = _exact_clip_ranking(tiny_bundle, query, as_list, allowed)[:7]
        assert [h.id for h in hits] == [e[0] for e in expected]
        np.testing.assert_allclose([h.score for h in hits], [e[1] for e in expected], atol=1e-5)
        hit = hits[0]
        meta = clips.set_index("clip_id").loc[hit.id]
        assert (hit.track_id, hit.segment_start, hit.segment_end) == (
            meta["track_id"],
            meta["segment_start"],
            meta["segment_end"],
        )


def test_a_clip_finds_itself_first_and_filters_hold(tiny_bundle, retriever) -> None:
    query = _clip_segments(tiny_bundle, 5)
    assert retriever.search_clips(query, k=1)[0].id == tiny_bundle.clips["clip_id"].iloc[5]
    hits = retriever.search_clips(query, k=50, splits=["test"], exclude_tracks=["track_26"])
    test_tracks = {f"track_{t}" for t in (25, 27, 28, 29)}
    assert hits and {h.track_id for h in hits} <= test_tracks
    assert len(hits) == (tiny_bundle.clips["track_id"].isin(test_tracks)).sum()  # all there are
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def _exact_track_ranking(tiny_bundle, query, weights, exclude, splits):
    clips = tiny_bundle.clips
    keep = ~clips["track_id"].isin(exclude) & (clips["split"].isin(splits) if splits else True)
    kept = clips[keep.to_numpy()]
    tracks, owner = np.unique(kept["track_id"], return_inverse=True)
    vectors = tiny_bundle.artifacts["clip_vectors"][keep.to_numpy()]
    scores = weight_query_vectors(query[None], weights, 3) @ vectors.T
    track_scores = aggregate_to_tracks(scores, owner, len(tracks), how="topk_mean", k=2)[0]
    order = sorted(range(len(tracks)), key=lambda i: (-track_scores[i], tracks[i]))
    return [(tracks[i], track_scores[i]) for i in order]


@pytest.mark.parametrize("k", [1, 3, 12])
def test_track_search_equals_exhaustive_track_scoring(tiny_bundle, retriever, k) -> None:
    """Tracks score as evaluation scores them: the mean of their 2 best clips."""
    rng = np.random.default_rng(k)
    for row in (1, 33, 100):
        query = tiny_bundle.artifacts["clip_vectors"][row]
        own = tiny_bundle.clips["track_id"].iloc[row]
        weights = rng.random(3).tolist()
        for splits in (None, ["test", "val"]):
            hits = retriever.search_tracks(
                query, k=k, weights=weights, exclude_tracks=[own], splits=splits
            )
            expected = _exact_track_ranking(tiny_bundle, query, weights, [own], splits)[:k]
            assert [h.id for h in hits] == [e[0] for e in expected]
            np.testing.assert_allclose([h.score for h in hits], [e[1] for e in expected], atol=1e-5)
            assert all(h.segment_start is None and h.track_id == h.id for h in hits)


def _same_answers(batch: list[list], single: list[list]) -> None:
    """The same hits in the same order; scores equal up to float32 rounding (a batch's
    matrix products may round differently from one query's)."""
    assert [[h.id for h in hits] for hits in batch] == [[h.id for h in hits] for hits in single]
    np.testing.assert_allclose(
        [h.score for hits in batch for h in hits],
        [h.score for hits in single for h in hits],
        rtol=0,
        atol=1e-6,
    )


def test_batches_and_threads_answer_as_single_queries(tiny_bundle, retriever) -> None:
    queries = [_clip_segments(tiny_bundle, row) for row in range(0, 100, 7)]
    weights = [{"tempo": 1.0 + i, "dynamics": 1.0} for i in range(len(queries))]
    single = [
        retriever.search_clips(q, k=5, weights=w) for q, w in zip(queries, weights, strict=True)
    ]
    _same_answers(retriever.search_clips_batch(queries, k=5, weights=weights), single)
    stacked = retriever.search_tracks_batch(np.stack(queries), k=4)
    _same_answers(stacked, [retriever.search_tracks(q, k=4) for q in queries])

    def work(i: int) -> tuple:
        q = queries[i % len(queries)]
        return retriever.search_clips(
            q, k=5, weights=weights[i % len(queries)]
        ), retriever.search_tracks(q, k=4)

    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(work, range(8 * len(queries))))
    for i, (clips, tracks) in enumerate(concurrent):
        assert clips == single[i % len(queries)]
        _same_answers([tracks], [stacked[i % len(queries)]])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (np.zeros((6, 5), np.float32), r"segments \[n_seg, 5, 32\] or a vector \[12\]"),
        (np.zeros((6, 5, 31), np.float32), r"got shape \[6, 5, 31\]"),
        (
            np.zeros((3, 5, 32), np.float32),
            "has 3 segments; a query needs at least clip_segments=4",
        ),
        (np.zeros((6, 5, 32), np.int64), "must be a float16/32/64 array, got dtype int64"),
        (np.full((6, 5, 32), np.nan, np.float32), "NaN or infinite"),
        (np.zeros(11, np.float32), r"vector query must be \[12\]"),
        (np.full(12, 0.3, np.float32), "unit-norm per-aspect sub-vectors"),
        (np.array(["a"] * 12), "float16/32/64"),
    ],
)
def test_malformed_queries_are_refused(retriever, query, message) -> None:
    with pytest.raises(QueryError, match=message):
        retriever.search_clips(query)
    with pytest.raises(QueryError, match=message):
        retriever.search_tracks_batch([query])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be a positive integer"),
        ({"k": "3"}, "k must be a positive integer"),
        ({"weights": {"tempo": 1.0, "loudness": 1.0}}, r"unknown aspects \['loudness'\]"),
        ({"weights": [1.0, -1.0, 1.0]}, "weight of aspect 'dynamics' is -1.0"),
        ({"weights": [0.0, 0.0, 0.0]}, "all aspect weights are zero"),
        ({"weights": [1.0, 1.0]}, "weights must be 3 numbers"),
        ({"exclude_tracks": "track_01"}, "collection of track ids"),
    ],
)
def test_malformed_arguments_are_refused(tiny_bundle, retriever, kwargs, message) -> None:
    with pytest.raises(QueryError, match=message):
        retriever.search_clips(tiny_bundle.artifacts["clip_vectors"][0], **kwargs)


def test_serving_needs_neither_kedro_nor_torch(tiny_bundle, tmp_path) -> None:
    """(pyarrow probes pandas when it is installed; the wheel test shows it is not needed.)"""
    query = tmp_path / "query.npy"
    np.save(query, _clip_segments(tiny_bundle, 3))
    script = f"""
import json, sys
import numpy as np
from expressive_retrieval.serving import load_bundle
retriever = load_bundle({str(tiny_bundle.path)!r})
query = np.load({str(query)!r})
clips = retriever.search_clips(query, k=3, weights={{"tempo": 2.0, "dynamics": 1.0}})
tracks = retriever.search_tracks(query, k=2)
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"kedro", "torch", "great_expectations"}})
print(json.dumps({{"clips": [h.id for h in clips], "tracks": len(tracks), "heavy": heavy}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["heavy"] == [] and result["tracks"] == 2
    assert result["clips"][0] == tiny_bundle.clips["clip_id"].iloc[3]


@pytest.mark.parametrize(
    "index",
    [
        {"factory": "IVF2,Flat", "search_params": {"nprobe": 2}},
        {"factory": "IVF2,PQ4x4fs,RFlat", "search_params": {"nprobe": 2, "k_factor_rf": 4}},
    ],
)
def test_track_search_through_an_ann_index_rescores_its_candidates(
    tiny_bundle, tmp_path, index
) -> None:
    """With an IVF index the candidates come from one search (no deepening; with a
    refinement stage, a cheaper one); probing every list, with every clip a candidate, it
    still equals exhaustive track scoring."""
    artifacts = dict(tiny_bundle.artifacts)
    params = {"index": {"exact_up_to": 0, "large": {**index, "probe_share": 1.0, "min_probes": 1}}}
    stored = FaissIndexDataset(filepath=str(tmp_path / "index"))
    stored.save(build_clip_index(artifacts["clip_vectors"], artifacts["clips"], params))
    artifacts["clip_index"] = stored.load()
    BundleDataset(path=str(tmp_path / "export"), version=Version(None, "ivf")).save(
        assemble_bundle(**artifacts)
    )
    ann = load_bundle(tmp_path / "export" / "ivf")
    assert not isinstance(ann.index, faiss.IndexFlat)
    query, weights = tiny_bundle.artifacts["clip_vectors"][40], [1.0, 0.5, 2.0]
    expected = _exact_track_ranking(tiny_bundle, query, weights, [], None)[:5]
    for candidates in (None, len(tiny_bundle.clips)):  # the default exceeds this corpus
        hits = ann.search_tracks(query, k=5, weights=weights, candidates=candidates)
        assert [h.id for h in hits] == [e[0] for e in expected]
    few = ann.search_tracks(query, k=5, weights=weights, candidates=3)  # tracks of 3 hits
    exact = dict(_exact_track_ranking(tiny_bundle, query, weights, [], None))
    assert 1 <= len(few) <= 3  # approximate candidates, each re-scored exactly:
    np.testing.assert_allclose([h.score for h in few], [exact[h.id] for h in few], atol=1e-5)
