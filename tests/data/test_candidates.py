"""Candidate search: the nearest-neighbour path finds what the exact path finds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from expressive_retrieval.data.candidates import (
    candidate_search,
    find_candidates,
    label_queries,
    split_clips,
)
from expressive_retrieval.data.relevance import RelevanceModel

PAIRS = yaml.safe_load(
    (Path(__file__).parents[2] / "conf/base/parameters_labels_and_splits.yml").read_text()
)["labels_and_splits"]["pairs"]
SEED = 5


def _model() -> RelevanceModel:
    """Five aspects over six standardised features (tempo has two), unequal weights."""
    return RelevanceModel(
        aspects=["tempo", "dynamics", "articulation", "phrasing", "timbre"],
        features=[f"f{i}" for i in range(6)],
        feature_aspect=[0, 0, 1, 2, 3, 4],
        center=[0.0] * 6,
        scale=[1.0] * 6,
        bandwidth=0.5,
        thresholds=[0.5, 0.65, 0.8],
        weights=[2.0, 1.0, 1.0, 1.0, 0.5],
    )


def _world(num_tracks: int = 600, clips: int = 5, dim: int = 48, seed: int = 0):
    """Clips of tracks: features from the track's style, frozen vectors mostly its work's."""
    rng = np.random.default_rng(seed)
    n = num_tracks * clips
    track = np.repeat(np.arange(num_tracks), clips)
    work = rng.integers(0, num_tracks // 4, num_tracks)[track]
    style = rng.normal(size=(num_tracks, 6)).astype(np.float32)
    z = style[track] + 0.3 * rng.normal(size=(n, 6)).astype(np.float32)
    content = rng.normal(size=(num_tracks // 4, dim))
    frozen = content[work] + z @ rng.normal(size=(6, dim)) * 0.3 + rng.normal(size=(n, dim))
    frozen /= np.linalg.norm(frozen, axis=1, keepdims=True)
    tracks = np.array([f"trk{t:04d}" for t in track])
    return z.astype(np.float32), frozen.astype(np.float32), tracks


def _recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / sum(len(t) for t in truth)


def test_kernel_features_approximate_the_combined_target() -> None:
    z, _, _ = _world(num_tracks=40)
    model = _model()
    embedded = model.kernel_features(z, 512, seed=3)
    assert embedded.shape == (len(z), 5 * 512)
    combined = model.combined(model.targets(z[:50], z))
    error = np.abs(embedded[:50] @ embedded.T - combined)
    assert error.mean() < 0.03 and error.max() < 0.2, (error.mean(), error.max())


def test_auto_search_switches_at_ann_above() -> None:
    cfg = PAIRS | {"candidate_search": "auto", "ann_above": 100}
    assert candidate_search(100, cfg) == "exact"
    assert candidate_search(101, cfg) == "ann"
    with pytest.raises(ValueError, match="candidate_search is 'faiss'"):
        candidate_search(5, cfg | {"candidate_search": "faiss"})


def test_ann_candidates_recall_the_exact_ones() -> None:
    z, frozen, tracks = _world(num_tracks=400)
    model, rows = _model(), np.arange(len(z))
    queries = np.arange(0, len(z), 3)
    found = {}
    for search in ("exact", "ann"):
        cfg = PAIRS | {"candidate_search": search}
        split = split_clips(rows, z, frozen, tracks, model, cfg, SEED)
        assert split.search == search
        found[search] = list(find_candidates(split, queries, model, PAIRS, SEED, 2**18))
    # Nearest by expression is a real approximate search; frozen cosine is flat at this size.
    assert "IVF" in type(split.expression).__name__
    assert split.cosine.ntotal == len(z) and "IVF" not in type(split.cosine).__name__
    exact, ann = found["exact"], found["ann"]
    assert [c.query for c in ann] == [c.query for c in exact]
    nearest = _recall([c.nearest for c in ann], [c.nearest for c in exact])
    hard = _recall([c.hard for c in ann], [c.hard for c in exact])
    assert nearest >= 0.95, nearest
    assert hard >= 0.95, hard
    # The exact path's labels on the same pairs: targets are computed exactly, not estimated.
    for c in ann[:50]:
        expected = model.targets(z[c.query : c.query + 1], z[c.chosen])[0]
        np.testing.assert_allclose(c.targets, expected, rtol=1e-6)
        assert (c.grades == model.grades(expected)).all()


def test_ann_labels_keep_the_rules() -> None:
    z, frozen, tracks = _world(num_tracks=200)
    model, cfg = _model(), PAIRS | {"candidate_search": "ann"}
    rows = np.arange(1, len(z), 2)  # one split: every other clip
    split = split_clips(rows, z, frozen, tracks, model, cfg, SEED)
    queries = np.arange(len(rows))
    pairs, triples = label_queries(split, queries, model, cfg, SEED, 2**18)
    again, _ = label_queries(split, queries[::-1], model, cfg, SEED, 2**18)
    assert set(pairs["query"]) | set(pairs["candidate"]) <= set(rows)  # never across splits
    assert (tracks[pairs["query"]] != tracks[pairs["candidate"]]).all()  # never the same track
    per_query = np.bincount(pairs["query"], minlength=len(z))[rows]
    assert (per_query == cfg["candidates_per_query"]).all()
    assert len({(q, c) for q, c in zip(pairs["query"], pairs["candidate"], strict=True)}) == len(
        pairs["query"]
    )
    assert set(triples.ravel()) <= set(rows) and len(triples)
    # A query's candidates depend on (seed, query) only, not on the shard it is labelled in.
    order = np.lexsort((pairs["candidate"], pairs["query"]))
    order_again = np.lexsort((again["candidate"], again["query"]))
    np.testing.assert_array_equal(pairs["candidate"][order], again["candidate"][order_again])
