"""``projection_retriever`` end to end on small data: weights, vectors, index."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kedro.io import DatasetError

from expressive_retrieval.models import OracleConfig, OracleScorer
from expressive_retrieval.models.training import listwise_data
from expressive_retrieval.pipelines.projection_retriever.nodes import oracle_teacher_scores
from expressive_retrieval.pipelines.projection_retriever.pipeline import create_pipeline
from expressive_retrieval.vectors.aspects import weight_query_vectors
from expressive_retrieval.vectors.index import search


def test_corpus_vectors_cover_every_clip(projected) -> None:
    clips, ids = projected.load("clips"), projected.load("clip_ids")
    vectors = projected.load("clip_vectors")
    assert list(ids["clip_id"]) == list(clips["clip_id"])
    config = projected.load("projection_config")
    assert vectors.shape == (len(clips), 5 * config["sub_dim"])
    per_aspect = np.asarray(vectors).reshape(len(vectors), 5, -1)
    np.testing.assert_allclose(np.linalg.norm(per_aspect, axis=-1), 1.0, atol=1e-4)
    tracks, track_ids = projected.load("track_vectors"), projected.load("track_ids")
    assert tracks.shape == (clips["track_id"].nunique(), vectors.shape[1])
    assert set(track_ids["track_id"]) == set(clips["track_id"])


def test_index_answers_weighted_queries_like_exact_search(projected) -> None:
    index, manifest = projected.load("clip_index")
    vectors = np.asarray(projected.load("clip_vectors"))
    assert manifest["ntotal"] == len(vectors) and manifest["factory"] == "Flat"
    weights = np.array([3.0, 0.0, 1.0, 0.5, 1.0])
    queries = weight_query_vectors(vectors[:20], weights, 5)
    scores, ids = search(index, queries, 10)
    exact = queries @ vectors.T
    np.testing.assert_allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :10], atol=1e-5)
    # The inner product is the weighted mean of per-aspect cosines.
    per_aspect = np.einsum(
        "ak,nak->na", vectors[0].reshape(5, -1), vectors.reshape(len(vectors), 5, -1)
    )
    np.testing.assert_allclose(exact[0], per_aspect @ (weights / weights.sum()), atol=1e-5)
    assert (ids[:, 0] == np.arange(20)).all()  # each clip is its own nearest neighbour


def test_both_projections_are_trained_and_the_test_split_is_left_to_evaluation(projected) -> None:
    assert projected.load("projection_training_metadata")["distilled"] is True
    assert projected.load("projection_ablation_training_metadata")["distilled"] is False
    outputs = create_pipeline().all_outputs()
    assert {"clip_index", "clip_vectors"} <= outputs and not any("report" in o for o in outputs)


def test_corrupted_index_is_refused(projected) -> None:
    (version,) = projected.versions("clip_index")[-1:]
    path = (
        projected.data
        / "07_model_output/projection_retriever/index"
        / version
        / "index"
        / "index.faiss"
    )
    original = path.read_bytes()
    path.write_bytes(original[:-16])
    try:
        with pytest.raises(DatasetError, match="truncated or altered"):
            projected.load("clip_index")
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize("pool", [{"size": 100000, "mined": 0}, {"size": 12, "mined": 4}])
def test_the_teacher_pool_stays_in_the_train_split(projected, pool) -> None:
    catalog = projected.catalog()
    clips, pairs = catalog.load("clips"), catalog.load("pairs")
    params = catalog.load("params:projection_retriever") | {"teacher_pool": pool}
    teacher = oracle_teacher_scores(
        catalog.load("oracle_model"),
        catalog.load("oracle_config"),
        catalog.load("segments"),
        clips,
        pairs,
        params,
        seed=0,
    )
    train = listwise_data(pairs, clips, catalog.load("oracle_config")["aspects"], "train")
    np.testing.assert_array_equal(teacher.query_index, train.query_index)
    valid = teacher.candidate_index >= 0
    split, tracks = clips["split"].to_numpy(), clips["track_id"].to_numpy()
    candidates = np.where(valid, teacher.candidate_index, teacher.query_index[:, None])
    assert (split[candidates][valid] == "train").all()
    assert (tracks[candidates] != tracks[teacher.query_index][:, None])[valid].all()
    assert np.isfinite(teacher.scores[valid]).all()
    assert ((teacher.scores[valid] >= 0) & (teacher.scores[valid] <= 1)).all()
    # Per aspect too (aspect_distillation): sub-scores in [0, 1] whose weighted sum is the total.
    oracle = OracleScorer.from_state(
        OracleConfig.from_dict(catalog.load("oracle_config")), catalog.load("oracle_model")
    )
    assert teacher.aspect_scores.shape == (*valid.shape, oracle.num_aspects)
    sub_scores = teacher.aspect_scores[valid]
    assert ((sub_scores >= 0) & (sub_scores <= 1)).all()
    totals = oracle.combine(torch.from_numpy(teacher.aspect_scores)).numpy()
    np.testing.assert_allclose(totals[valid], teacher.scores[valid], rtol=1e-5, atol=1e-6)
    if pool["size"] < (split == "train").sum() - 1:  # capped: the labelled candidates first
        assert teacher.candidate_index.shape[1] == pool["size"]
        lists = zip(teacher.candidate_index, train.candidate_index, train.valid, strict=True)
        for row, labelled, keep in lists:
            first = labelled[keep][: pool["size"]]
            np.testing.assert_array_equal(row[: len(first)], first)
    else:  # every train clip of another track
        expected = [(split == "train") & (tracks != tracks[q]) for q in teacher.query_index]
        assert (valid.sum(1) == np.sum(expected, axis=1)).all()
