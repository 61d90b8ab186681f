import json

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from expressive_retrieval.models import (
    ProjectionConfig,
    ProjectionHead,
    ProjectionTrainParams,
    RoutingPriorLoss,
    TeacherScores,
    fit_projection,
    projection_list_scores,
    state_dict_for_safetensors,
)
from expressive_retrieval.models.training import ListwiseData, ndcg_at_10
from expressive_retrieval.vectors.aspects import track_vectors, weight_query_vectors
from tests.models.test_training import _lists, _planted

S, L, D, A, K = 4, 4, 16, 3, 5
ASPECTS = ["tempo", "dynamics", "phrasing"]
LAYER_SCORES = [[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.2, 0.0], [0.0, 0.0, 0.3, 1.0]]


def _config(**overrides) -> ProjectionConfig:
    values = dict(
        num_layers=L,
        dim=D,
        aspects=ASPECTS,
        clip_segments=S,
        layer_scores=LAYER_SCORES,
        default_weights=[1.0, 2.0, 1.0],
        hidden=8,
        sub_dim=K,
    )
    return ProjectionConfig(**(values | overrides))


@pytest.fixture(scope="module")
def head() -> ProjectionHead:
    model = ProjectionHead(_config(), seed=3).eval()
    rng = np.random.default_rng(1)
    model.set_input_statistics(rng.normal(size=(L, D)), rng.uniform(0.5, 2, (L, D)))
    return model


def _clips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, S, L, D)).astype(np.float32)


def test_shapes_and_unit_sub_vectors(head):
    vectors = head.embed(torch.from_numpy(_clips(6)))
    assert vectors.shape == (6, A, K)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(6, A))
    flat = head.embed_numpy(_clips(6).astype(np.float16), batch_size=4)
    assert flat.shape == (6, head.config.vector_dim) and flat.dtype == np.float32
    assert head.embed_numpy(_clips(0)).shape == (0, A * K)
    lists = head.aspect_similarities(vectors[:2], vectors[None, 2:].expand(2, -1, -1, -1))
    assert lists.shape == (2, 4, A)
    torch.testing.assert_close(lists[0], head.aspect_similarities(vectors[:1], vectors[2:])[0])
    with pytest.raises(ValueError, match="clips must be"):
        head.embed(torch.zeros(2, S + 1, L, D))


def test_inputs_are_standardised_per_layer_and_dim(head):
    plain = ProjectionHead(_config(), seed=3).eval()  # same parameters, identity statistics
    clips = torch.from_numpy(_clips(4, seed=6))
    standardised = (clips - head.input_mean) / head.input_scale
    torch.testing.assert_close(head.embed(clips), plain.embed(standardised), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "weights", [None, [0.2, 3.0, 1.0], [0.0, 0.0, 2.0], [1.0, 0.0, 1.0], "per_query"]
)
def test_weighted_query_vectors_give_weighted_cosines(head, weights):
    queries, cands = head.embed_numpy(_clips(4, seed=1)), head.embed_numpy(_clips(7, seed=2))
    if weights == "per_query":
        weights = np.random.default_rng(0).uniform(0, 1, (4, A)) * [1, 0, 1]
    cosines = head.aspect_similarities(
        torch.from_numpy(queries.reshape(4, A, K)), torch.from_numpy(cands.reshape(7, A, K))
    ).numpy()  # [Q, N, A]
    w = np.asarray(head.config.default_weights if weights is None else weights, dtype=np.float64)
    w = w / w.sum(axis=-1, keepdims=True)
    expected = (cosines * (w[:, None] if w.ndim == 2 else w)).sum(-1)
    np.testing.assert_allclose(head.query_vectors(queries, weights) @ cands.T, expected, atol=1e-5)


def test_numpy_and_torch_query_vectors_agree(head):
    with torch.no_grad():
        vectors = head.embed(torch.from_numpy(_clips(3)))
    weights = torch.tensor([1.0, 0.0, 4.0])
    from_torch = head.query_vectors(vectors, weights)
    assert isinstance(from_torch, torch.Tensor) and from_torch.shape == (3, A * K)
    flat = vectors.flatten(1).numpy()
    np.testing.assert_array_equal(
        from_torch.numpy(), weight_query_vectors(flat, weights.numpy(), A)
    )
    np.testing.assert_array_equal(
        head.query_vectors(flat), weight_query_vectors(flat, head.config.default_weights, A)
    )


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, -1.0, 0.0], "non-negative"),
        ([1.0, float("inf"), 0.0], "finite"),
        ([0.0, 0.0, 0.0], "all zero"),
        ([1.0, 1.0], "shape"),
        ([[1.0, 1.0, 1.0]] * 3, "shape"),
    ],
)
def test_invalid_weights_are_refused(head, weights, message):
    queries = head.embed_numpy(_clips(2))
    with pytest.raises(ValueError, match=message):
        head.query_vectors(queries, weights)
    with pytest.raises(ValueError, match=message):
        weight_query_vectors(queries, weights, A)


def test_config_round_trip_and_validation():
    config = _config(routing_temperature=0.5)
    again = ProjectionConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.vector_dim == A * K
    with pytest.raises(ValueError, match="unknown"):
        ProjectionConfig.from_dict(config.to_dict() | {"surprise": 1})
    for bad, message in [
        ({"sub_dim": 0}, "sub_dim"),
        ({"track_aggregation": "max"}, "track_aggregation"),
        ({"layer_scores": LAYER_SCORES[:2]}, "layer_scores"),
        ({"default_weights": [0.0, 0.0, 0.0]}, "default_weights"),
    ]:
        with pytest.raises(ValueError, match=message):
            _config(**bad)


def test_from_state_reproduces_embeddings(head):
    state = load(save(state_dict_for_safetensors(head)))
    rebuilt = ProjectionHead.from_state(ProjectionConfig.from_dict(head.config.to_dict()), state)
    clips = _clips(5, seed=4).astype(np.float16)
    np.testing.assert_array_equal(rebuilt.embed_numpy(clips), head.embed_numpy(clips))


def test_initialisation_is_seeded_and_follows_the_evidence(head):
    global_rng = torch.get_rng_state()
    same, other = ProjectionHead(_config(), seed=3), ProjectionHead(_config(), seed=4)
    assert torch.equal(torch.get_rng_state(), global_rng)
    assert torch.equal(same.pool_out.weight, head.pool_out.weight)
    assert not torch.equal(other.pool_out.weight, head.pool_out.weight)
    evidence = torch.tensor(LAYER_SCORES)
    expected = evidence / evidence.sum(-1, keepdim=True)
    torch.testing.assert_close(other.routing.weights(), expected, atol=5e-3, rtol=0)


def test_track_vectors_are_renormalised_means(head):
    clips = head.embed_numpy(_clips(5, seed=5))
    tracks = track_vectors(clips, np.array([2, 0, 2, 2, 0]), num_tracks=4, num_aspects=A)
    assert tracks.shape == (4, A * K)
    per_aspect = clips.reshape(5, A, K)[[0, 2, 3]].mean(0)
    expected = per_aspect / np.linalg.norm(per_aspect, axis=-1, keepdims=True)
    np.testing.assert_allclose(tracks[2], expected.ravel(), atol=1e-6)
    np.testing.assert_array_equal(tracks[[1, 3]], 0.0)  # no clips
    query = head.query_vectors(clips[:1], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(query @ tracks[2], expected[1] @ clips[0, K : 2 * K], atol=1e-6)


def test_routing_prior_loss():
    prior = torch.tensor(LAYER_SCORES)
    routing = prior / prior.sum(-1, keepdim=True)
    assert RoutingPriorLoss.compute_loss(routing, 3 * prior).item() == pytest.approx(0, abs=1e-7)
    uniform = torch.full((A, L), 1 / L)
    share = routing[0, :2]
    expected = (share * torch.log(share * L)).sum() / A  # aspect 0; the others below
    expected += sum((r[r > 0] * torch.log(r[r > 0] * L)).sum() for r in routing[1:]) / A
    assert RoutingPriorLoss()(uniform, prior).item() == pytest.approx(expected.item(), rel=1e-5)
    assert RoutingPriorLoss.compute_loss(uniform, torch.zeros(A, L)).item() == pytest.approx(0)
    with pytest.raises(ValueError, match=r"\[A, L\]"):
        RoutingPriorLoss.compute_loss(uniform, prior[:2])


# A tiny planted problem (the oracle's, tests/models/test_training.py): two aspect latents
# written into layer bands 0-1 and 2-3; relevance from latent distance.
PLANTED_LAYER_SCORES = [[1.0, 0.8, 0.1, 0.1], [0.1, 0.1, 0.8, 1.0]]


def planted() -> tuple[np.ndarray, ListwiseData, ListwiseData]:
    """Clips ``[60, S, L, D]``, train lists (40 queries, padded) and val lists (20)."""
    clips, latent, _ = _planted()
    return clips, _lists(latent, np.arange(40), pad=5), _lists(latent, np.arange(40, 60))


def planted_head() -> ProjectionHead:
    config = ProjectionConfig(
        num_layers=L,
        dim=D,
        aspects=["tempo", "dynamics"],
        clip_segments=S,
        layer_scores=PLANTED_LAYER_SCORES,
        default_weights=[1.0, 1.0],
        hidden=8,
        sub_dim=4,
    )
    return ProjectionHead(config, seed=0)


def fit_planted(problem, teacher=None, **params):
    """Fit the planted head.

    An array ``teacher`` gives the totals of the train lists' own candidates; its per-aspect
    scores are the lists' targets.
    """
    clips, train, val = problem
    if isinstance(teacher, np.ndarray):
        teacher = TeacherScores(train.query_index, train.candidate_index, teacher, train.targets)
    settings = ProjectionTrainParams(
        **({"epochs": 8, "patience": 8, "batch_queries": 8, "num_threads": 1, "lr": 1e-2} | params)
    )
    return fit_projection(
        planted_head(), train, val, clips.__getitem__, teacher, settings, progress=False
    )


@pytest.fixture(scope="module")
def problem():
    return planted()


def test_fit_projection_learns_the_planted_aspects(problem):
    clips, _, val = problem
    initial = ndcg_at_10(projection_list_scores(planted_head(), val, clips.__getitem__), val)
    head, history = fit_planted(problem)
    final = ndcg_at_10(projection_list_scores(head, val, clips.__getitem__), val)
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert {"loss_ranking", "loss_aspect", "loss_routing"} <= set(history[0])
    assert "loss_distillation" not in history[0]  # no teacher: the `projection` ablation
    assert final == pytest.approx(max(h["val_ndcg@10"] for h in history))
    assert final > max(initial + 0.1, 0.83), (initial, final)
    assert history[-1]["loss_aspect"] < history[0]["loss_aspect"]


def test_fit_projection_is_deterministic(problem):
    teacher = problem[1].targets.mean(-1)
    first, history_first = fit_planted(problem, teacher, epochs=2)
    second, history_second = fit_planted(problem, teacher, epochs=2)
    state_first, state_second = first.state_dict(), second.state_dict()
    assert state_first.keys() == state_second.keys()
    assert all(torch.equal(state_first[k], state_second[k]) for k in state_first)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in history_first]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in history_second]


def test_fit_projection_refuses_bad_inputs(problem):
    clips, train, val = problem
    with pytest.raises(ValueError, match="teacher scores"):
        fit_planted(problem, TeacherScores(train.query_index, train.candidate_index, np.zeros(3)))
    with pytest.raises(ValueError, match="one row per training list"):
        fit_planted(problem, TeacherScores(train.query_index[1:], train.candidate_index[1:], None))
    with pytest.raises(ValueError, match="aspects"):
        fit_projection(
            ProjectionHead(_config()), train, val, clips.__getitem__, None, ProjectionTrainParams()
        )
    with pytest.raises(ValueError, match="distillation"):
        ProjectionTrainParams(distillation="mse")
