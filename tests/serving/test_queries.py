"""Every bad query gets ``QueryError``; every other query gets well-formed hits, never a
silently empty list (example-based and property-based)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from expressive_retrieval.serving import QueryError, Retriever, load_bundle

ASPECTS = ["tempo", "dynamics", "articulation"]
SPLITS = ["train", "val", "test"]


@pytest.fixture(scope="module")
def retriever(tiny_bundle) -> Retriever:
    return load_bundle(tiny_bundle.path)


def _segments(tiny_bundle, track: str = "track_07") -> np.ndarray:
    return tiny_bundle.segments[track][:4].astype(np.float32)


def test_k_is_a_positive_int_and_is_clipped_to_the_corpus(tiny_bundle, retriever) -> None:
    query = _segments(tiny_bundle)
    clips, tracks = len(tiny_bundle.clips), tiny_bundle.clips["track_id"].nunique()
    assert len(retriever.search_clips(query, k=2**63)) == clips
    assert len(retriever.search_tracks(query, k=2**63)) == tracks
    assert len(retriever.search_clips(query, k=np.int64(3))) == 3
    for k in (True, 0, -1, 2.0, "3", None):
        with pytest.raises(QueryError, match="k must be a positive integer"):
            retriever.search_clips(query, k=k)


def test_huge_segments_embed_or_are_refused_never_nan(tiny_bundle, retriever) -> None:
    query = _segments(tiny_bundle)
    # The head's statistics run in float64: magnitudes far beyond any real embedding
    # model's (the 1e30) still embed to finite unit sub-vectors.
    for scale in (1e4, 1e30):
        vector = retriever.embed(query * np.float32(scale))
        norms = np.linalg.norm(vector.reshape(len(ASPECTS), -1), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
        assert len(retriever.search_clips(query * np.float32(scale), k=3)) == 3
    # Past float32's range the head overflows: refused, naming the query.
    with pytest.raises(QueryError, match="query 1: its embedding is not finite"):
        retriever.search_tracks_batch([query, query.astype(np.float64) * 1e300])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_segments_are_refused_in_every_float_dtype(tiny_bundle, retriever, dtype, bad):
    query = _segments(tiny_bundle).astype(dtype)
    # The largest finite value (within float32's range, which the head computes in) is fine.
    query.flat[-1] = np.finfo(np.float16 if dtype == np.float16 else np.float32).max
    assert len(retriever.search_clips(query, k=2)) == 2
    query[2, 1, 3] = bad
    with pytest.raises(QueryError, match="query 0 contains NaN or infinite values"):
        retriever.search_clips(query, k=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"splits": ["nope"]}, r"unknown splits \[\"'nope'\"\]"),
        ({"splits": ["test", "nope"]}, "unknown splits"),
        ({"splits": []}, r"unknown splits \(none given\)"),
        ({"splits": "test"}, "collection of split names"),
        ({"weights": {"tempo": float("nan")}}, "weight of aspect 'tempo' is nan"),
        ({"weights": [1.0, float("inf"), 0.0]}, "weight of aspect 'dynamics' is inf"),
        ({"weights": {"tempo": -2}}, "weight of aspect 'tempo' is -2.0"),
        ({"weights": {"tempo": 0}}, "all aspect weights are zero"),
        ({"weights": {"tempo": "1"}}, "weights must be 3 numbers"),
        ({"weights": {"tempo": True}}, "weights must be 3 numbers"),
        ({"weights": {3: 1.0}}, r"unknown aspects \[3\]"),
        ({"exclude_tracks": [["track_01"]]}, "collection of track ids"),
    ],
)
def test_bad_filters_and_weights_are_refused_by_name(tiny_bundle, retriever, kwargs, message):
    with pytest.raises(QueryError, match=message):
        retriever.search_clips(_segments(tiny_bundle), **kwargs)


@pytest.mark.parametrize(
    "query",
    [
        np.zeros(12, np.float32),
        np.full(12, np.inf, np.float32),
        np.ones((2, 6), np.float32),
        None,
        "abc",
        [[1.0, 2.0], [3.0]],
        object(),
    ],
)
def test_bad_vector_queries_are_refused(retriever, query) -> None:
    with pytest.raises(QueryError):
        retriever.search_clips(query)


def test_an_empty_batch_returns_an_empty_result(retriever) -> None:
    assert retriever.search_clips_batch([], k=3) == []
    assert retriever.search_tracks_batch(np.zeros((0, 12), np.float32), k=3) == []


# ---- property-based ----------------------------------------------------------------------


def _mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` four times in five, so most calls get past the checks to a search."""
    return st.integers(0, 4).flatmap(lambda i: invalid if i == 0 else valid)


@st.composite
def valid_queries(draw: st.DrawFn, tiny_bundle) -> np.ndarray:
    if draw(st.booleans()):
        row = draw(st.integers(0, len(tiny_bundle.clips) - 1))
        return np.array(tiny_bundle.artifacts["clip_vectors"][row])
    track = draw(st.sampled_from(sorted(tiny_bundle.segments)))
    segments = tiny_bundle.segments[track][: draw(st.integers(4, 9))]
    scale = draw(st.sampled_from([1.0, 100.0, 1e30, -1.0]))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    scaled = segments.astype(np.float32) * np.float32(scale)
    return scaled.astype(dtype if abs(scale) < 1e4 else np.float32)


@st.composite
def invalid_queries(draw: st.DrawFn, tiny_bundle) -> object:
    vector = np.array(tiny_bundle.artifacts["clip_vectors"][0])
    shape = draw(st.sampled_from([(12,), (11,), (3, 5, 32), (4, 5), (0,), ()]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return draw(
        st.sampled_from(
            [
                vector * 2,
                vector * np.nan,
                vector * 0,
                np.full(shape, draw(st.sampled_from([0.0, 1.0, np.inf])), dtype=dtype),
                np.ones((4, 5, 32), np.int32),
                tiny_bundle.segments["track_01"][:4].astype(np.float64) * 1e300,
                None,
                "q",
                [1.0, 2.0],
                {"a": 1},
                3.0,
            ]
        )
    )


WEIGHTS = _mostly(
    st.one_of(
        st.none(),
        st.lists(st.sampled_from([0.0, 1.0, 2.5]), min_size=3, max_size=3),
        st.dictionaries(st.sampled_from(ASPECTS), st.sampled_from([0.0, 0.5, 3.0]), max_size=3),
    ),
    st.one_of(
        st.lists(st.sampled_from([0.0, 1.0, -1.0, float("nan")]), min_size=2, max_size=4),
        st.dictionaries(
            st.sampled_from([*ASPECTS, "loudness"]),
            st.sampled_from([0.0, -0.1, float("inf"), "1"]),
            max_size=3,
        ),
    ),
)
KS = _mostly(st.integers(1, 40), st.sampled_from([0, -1, 2**63, 2**70, True, 1.5, None]))
FILTERS = _mostly(
    st.one_of(st.none(), st.lists(st.sampled_from(SPLITS), min_size=1, max_size=3)),
    st.lists(st.sampled_from([*SPLITS, "nope"]), max_size=3),
)


def _allowed(tiny_bundle, tracks: bool, excluded: list[str], splits) -> int:
    clips = tiny_bundle.clips
    keep = ~clips["track_id"].isin(excluded)
    if splits is not None:
        keep &= clips["split"].isin(splits)
    return clips[keep]["track_id"].nunique() if tracks else int(keep.sum())


@settings(
    max_examples=int(os.environ.get("QUERY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_call_raises_query_error_or_returns_well_formed_hits(tiny_bundle, data) -> None:
    retriever = _module_retriever(tiny_bundle)
    query = data.draw(_mostly(valid_queries(tiny_bundle), invalid_queries(tiny_bundle)), "query")
    k, weights, splits = data.draw(KS, "k"), data.draw(WEIGHTS, "weights"), data.draw(FILTERS)
    track_ids = sorted(tiny_bundle.segments)
    excluded = data.draw(st.lists(st.sampled_from([*track_ids, "unknown"]), max_size=30))
    tracks = data.draw(st.booleans(), "tracks")
    search = retriever.search_tracks if tracks else retriever.search_clips
    try:
        hits = search(query, k=k, weights=weights, exclude_tracks=excluded, splits=splits)
    except QueryError:
        event("refused")
        return
    event(f"answered {'tracks' if tracks else 'clips'}, {'some' if hits else 'no'} hits")
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and np.isfinite(scores).all()
    assert len({h.id for h in hits}) == len(hits) <= k
    assert not {h.track_id for h in hits} & set(excluded)
    split_of = dict(zip(tiny_bundle.clips["clip_id"], tiny_bundle.clips["split"], strict=True))
    if splits is not None and not tracks:
        assert all(split_of[h.id] in splits for h in hits)
    assert len(hits) == min(k, _allowed(tiny_bundle, tracks, excluded, splits))


_RETRIEVERS: dict[str, Retriever] = {}


def _module_retriever(tiny_bundle) -> Retriever:
    """One retriever for every example (Hypothesis reruns the test body, not fixtures)."""
    key = str(tiny_bundle.path)
    if key not in _RETRIEVERS:
        _RETRIEVERS[key] = load_bundle(tiny_bundle.path)
    return _RETRIEVERS[key]
