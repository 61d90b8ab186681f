import json

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from expressive_retrieval.models import OracleConfig, OracleScorer, state_dict_for_safetensors
from expressive_retrieval.models.oracle import _alignment_features
from expressive_retrieval.models.training import deterministic

S, L, D, A, H = 4, 4, 16, 3, 8


def _config(**overrides) -> OracleConfig:
    values = dict(
        num_layers=L,
        dim=D,
        aspects=["tempo", "dynamics", "phrasing"],
        clip_segments=S,
        layer_scores=[[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.2, 0.0], [0.0, 0.0, 0.3, 1.0]],
        default_weights=[1.0, 2.0, 1.0],
        hidden=H,
        num_proxy_features=[1, 0, 2],
    )
    return OracleConfig(**(values | overrides))


@pytest.fixture(scope="module")
def model() -> OracleScorer:
    return OracleScorer(_config(), seed=3).eval()


def _clips(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, S, L, D, generator=torch.Generator().manual_seed(seed))


def test_shapes(model):
    enc = model.encode(_clips(5))
    assert enc.shape == (5, A, S, H)
    assert model.score_encoded(enc[:2], enc[None].expand(2, -1, -1, -1, -1)).shape == (2, 5, A)
    total, per_aspect = model(_clips(2), _clips(2, 7, seed=1))
    assert total.shape == (2, 7) and per_aspect.shape == (2, 7, A)
    assert ((per_aspect > 0) & (per_aspect < 1)).all()
    assert model.predict_proxies(enc).shape == (5, 3)
    with pytest.raises(ValueError, match="clips must be"):
        model.encode(torch.randn(5, S + 1, L, D))


def test_proxy_head_keeps_aspects_apart(model):
    enc = model.encode(_clips(4))
    changed = enc.clone()
    changed[:, 1:] += 1.0  # dynamics and phrasing only
    before, after = model.predict_proxies(enc), model.predict_proxies(changed)
    assert torch.equal(before[:, 0], after[:, 0])  # tempo's feature reads tempo only
    assert not torch.equal(before[:, 1:], after[:, 1:])
    no_head = OracleScorer(_config(num_proxy_features=None))
    assert no_head.predict_proxies(enc).shape == (4, 0)


def _member(ensemble: OracleScorer, k: int) -> OracleScorer:
    """Member ``k`` of an ensemble as a model of its own: its heads' slice of every map."""
    heads = ensemble.num_members * A
    config = OracleConfig.from_dict(ensemble.config.to_dict() | {"members": 1})
    state = {
        name: value[k * A : (k + 1) * A] if value.shape[:1] == (heads,) else value
        for name, value in ensemble.state_dict().items()
    }
    return OracleScorer.from_state(config, state).eval()


@pytest.mark.parametrize("cosine_branch", [False, True])
def test_an_ensemble_averages_members_that_share_no_weight(cosine_branch):
    ensemble = OracleScorer(_config(members=2, cosine_branch=cosine_branch), seed=5).eval()
    members = [_member(ensemble, k) for k in range(2)]
    query, cands, clips = _clips(2), _clips(2, 6, seed=1), _clips(5, seed=2)
    enc = ensemble.encode(clips)
    assert enc.shape == (5, 2 * A, S, H)
    per_member = ensemble.score_members(enc[:2], enc[None])
    assert per_member.shape == (2, 5, 2, A)
    for k, member in enumerate(members):  # member k reads only its own slices
        alone = member.encode(clips)
        torch.testing.assert_close(
            per_member[:, :, k], member.score_encoded(alone[:2], alone[None])
        )
        torch.testing.assert_close(
            ensemble.member_proxies(enc)[:, k], member.predict_proxies(alone)
        )
    _, per_aspect = ensemble(query, cands)
    parts = [member(query, cands)[1] for member in members]
    torch.testing.assert_close(per_aspect, (parts[0] + parts[1]) / 2)
    assert (parts[0] - parts[1]).abs().max() > 1e-3  # initialised apart
    assert ensemble.encode_clips(clips[:0]).shape == (0, 2 * A, S, H)
    with pytest.raises(ValueError, match="members"):
        _config(members=0)


def test_the_cosine_branch_adds_its_scaled_cosine_to_the_pair_logit():
    plain = OracleScorer(_config(), seed=5).eval()
    branched = OracleScorer(_config(cosine_branch=True), seed=5).eval()
    clips = _clips(5)
    enc = plain.encode(clips)
    assert torch.equal(enc, branched.encode(clips))  # the branch is drawn after the rest
    with torch.no_grad():
        branched.cosine_scale.copy_(torch.tensor([0.5, 1.0, 2.0]))
        scores, cosine = branched.member_outputs(enc[:2], enc[None])
        plain_scores, no_cosine = plain.member_outputs(enc[:2], enc[None])
    assert no_cosine is None and cosine.shape == scores.shape == (2, 5, 1, A)
    torch.testing.assert_close(cosine[[0, 1], [0, 1]], torch.ones(2, 1, A))  # clip vs itself
    assert cosine.abs().max() <= 1 + 1e-6 and (cosine < 1 - 1e-3).any()
    shift = torch.nn.functional.softplus(torch.tensor([0.5, 1.0, 2.0])) * cosine
    torch.testing.assert_close(scores, torch.sigmoid(torch.logit(plain_scores) + shift))
    torch.testing.assert_close(branched.score_encoded(enc[:2], enc[None]), scores[:, :, 0])
    state = state_dict_for_safetensors(branched)
    assert {"cosine_scale", "embed_hidden.weight", "embed_out.bias"} <= set(state)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        OracleScorer.from_state(_config(), state)  # a config without the branch refuses it


def test_weights_combine_aspect_scores(model):
    query, cands = _clips(2), _clips(2, 6, seed=1)
    weights = torch.tensor([0.0, 3.0, 1.0])
    total, per_aspect = model(query, cands, weights)
    torch.testing.assert_close(total, (per_aspect * weights / weights.sum()).sum(-1))
    per_query = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    total, per_aspect = model(query, cands, per_query)
    torch.testing.assert_close(total, torch.stack([per_aspect[0, :, 0], per_aspect[1, :, 2]]))
    default, per_aspect = model(query, cands)
    torch.testing.assert_close(default, (per_aspect * torch.tensor([0.25, 0.5, 0.25])).sum(-1))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, -1.0, 0.0], "non-negative"),
        ([1.0, 1.0], "shape"),
        ([[1.0, 1.0, 1.0]] * 3, "shape"),
        ([0.0, 0.0, 0.0], "all zero"),
        ([1.0, float("nan"), 0.0], "finite"),
    ],
)
def test_invalid_weights_are_refused(model, weights, message):
    with pytest.raises(ValueError, match=message):
        model(_clips(2), _clips(2, 3), torch.tensor(weights))
    with pytest.raises(ValueError, match=message):
        model.score(_clips(1)[0], _clips(3), np.asarray(weights))


def test_score_matches_forward_per_candidate(model):
    query, cands = _clips(1)[0], _clips(7, seed=2)
    weights = np.array([2.0, 0.5, 1.0])
    total, per_aspect = model.score(query.numpy().astype(np.float16), cands.numpy(), weights, 3)
    assert total.shape == (7,) and per_aspect.shape == (7, A)
    with torch.no_grad():
        reference = [
            model(query.half().float()[None], cands[i][None, None], torch.tensor(weights))
            for i in range(7)
        ]
    np.testing.assert_allclose(total, [t.item() for t, _ in reference], atol=1e-5)
    np.testing.assert_allclose(per_aspect, torch.cat([p[0] for _, p in reference]), atol=1e-5)


@pytest.mark.parametrize("chunk", [5, 2048])
def test_score_many_matches_score(model, chunk):
    queries, cands = _clips(3, seed=4), _clips(7, seed=5)
    weights = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    total, per_aspect = model.score_many(
        model.encode_clips(queries), model.encode_clips(cands), weights, chunk=chunk
    )
    assert total.shape == (3, 7) and per_aspect.shape == (3, 7, A)
    for q in range(3):
        expected_total, expected_aspects = model.score(queries[q], cands, weights[q])
        np.testing.assert_allclose(total[q], expected_total, atol=1e-6)
        np.testing.assert_allclose(per_aspect[q], expected_aspects, atol=1e-6)


def test_alignment_features_match_explicit_soft_alignment():
    q, c = torch.randn(2, 1, A, S, H, dtype=torch.float64), torch.randn(1, 5, A, S, H).double()
    cross = q @ c.transpose(-1, -2)
    got = _alignment_features(cross, q @ q.transpose(-1, -2), c @ c.transpose(-1, -2), H)
    q_aligned = torch.softmax(cross / H**0.5, dim=-1) @ c  # candidate mix per query segment
    c_aligned = torch.softmax(cross / H**0.5, dim=-2).transpose(-1, -2) @ q
    expected = torch.stack(
        [
            (q * q_aligned).sum(-1).mean(-1),
            (c * c_aligned).sum(-1).mean(-1),
            (q - q_aligned).pow(2).sum(-1).mean(-1),
            (c - c_aligned).pow(2).sum(-1).mean(-1),
            (q - c).pow(2).sum(-1).mean(-1),
        ],
        dim=-1,
    )
    torch.testing.assert_close(got, expected / H)
    assert got.shape == (2, 5, A, 5)


def test_config_round_trip_and_validation():
    config = _config()
    assert OracleConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown"):
        OracleConfig.from_dict(config.to_dict() | {"extra": 1})
    with pytest.raises(ValueError, match="layer_scores"):
        _config(layer_scores=[[1.0] * L] * 2)
    with pytest.raises(ValueError, match="default_weights"):
        _config(default_weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="track_aggregation"):
        _config(track_aggregation="median")


def test_input_statistics_standardise_and_travel_with_the_state():
    model = OracleScorer(_config(), seed=3)
    clips = 3.0 + 2.0 * _clips(6)
    model.set_input_statistics(torch.full((L, D), 3.0), np.full((L, D), 2.0))
    reference = OracleScorer(_config(), seed=3)
    torch.testing.assert_close(model.encode(clips), reference.encode((clips - 3.0) / 2.0))
    assert {"input_mean", "input_scale"} <= set(state_dict_for_safetensors(model))
    with pytest.raises(ValueError, match="input statistics"):
        model.set_input_statistics(torch.zeros(L, D + 1), torch.ones(L, D + 1))


def test_from_state_reproduces_scores(model):
    model.set_input_statistics(torch.full((L, D), 0.1), torch.full((L, D), 1.5))
    payload = save(state_dict_for_safetensors(model))
    restored = OracleScorer.from_state(
        OracleConfig.from_dict(model.config.to_dict()), load(payload)
    )
    query, cands = _clips(1)[0], _clips(9, seed=6)
    for got, expected in zip(restored.score(query, cands), model.score(query, cands), strict=True):
        np.testing.assert_array_equal(got, expected)
    different_seed = OracleScorer(model.config, seed=4)
    assert not np.array_equal(different_seed.score(query, cands)[0], model.score(query, cands)[0])


def test_an_aspect_visible_only_across_segments_is_learned():
    """Arc depth ±d alternating over segments: every clip's segment mean is 0, its std is d."""
    rng = np.random.default_rng(0)
    n = 40
    depth = np.where(np.arange(n) % 2 == 0, 0.3, 1.5)
    direction = rng.standard_normal(D)
    direction *= 2.0 / np.linalg.norm(direction)
    sign = (-1.0) ** np.arange(S)
    clips = 0.5 * rng.standard_normal((n, S, L, D)) + rng.standard_normal((n, 1, L, D))
    arc = depth[:, None, None] * sign[None, :, None] * direction  # [n, S, D]
    assert np.allclose(arc.mean(axis=1), 0.0)
    clips[:, :, :2, :] += arc[:, :, None, :]  # the "phrasing" layer band
    clips = torch.tensor(clips, dtype=torch.float32)
    same = torch.tensor(depth[:, None] == depth[None, :], dtype=torch.float32)
    config = _config(
        layer_scores=[[1.0, 1.0, 0.1, 0.1], [0.1, 0.1, 1.0, 1.0], [0.1, 1.0, 1.0, 0.1]],
        num_proxy_features=None,
    )
    model = OracleScorer(config, seed=0)
    train, test = slice(0, 26), slice(26, n)

    def gap(rows: slice) -> float:
        with torch.no_grad():
            enc = model.encode(clips[rows])
            s = model.score_encoded(enc, enc[None])[..., 0]
        return (s[same[rows, rows] == 1].mean() - s[same[rows, rows] == 0].mean()).item()

    initial = gap(test)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with deterministic(seed=0, num_threads=1):  # tiny tensors: one thread is fastest
        for _ in range(40):
            enc = model.encode(clips[train])
            s = model.score_encoded(enc, enc[None])[..., 0]
            loss = (s - same[train, train]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert abs(initial) < 0.1
    assert gap(test) > 0.5
