from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from expressive_retrieval.models import (
    ListwiseData,
    OracleConfig,
    OracleScorer,
    TrainParams,
    evaluate_ndcg,
    fit_oracle,
    run_epochs,
)
from expressive_retrieval.models.training import input_statistics

S, L, D, N = 4, 4, 16, 60
HISTORY_KEYS = {
    "epoch",
    "loss",
    "loss_ranking",
    "loss_aspect",
    "loss_proxy",
    "val_ndcg@10",
    "seconds",
    "restored",
}


def _planted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clips ``[N, S, L, D]`` of noise with two aspect latents written into layer bands 0-1, 2-3."""
    rng = np.random.default_rng(0)
    latent = rng.uniform(0, 1, (N, 2))
    directions = rng.standard_normal((2, D))
    directions *= 4.0 / np.linalg.norm(directions, axis=1, keepdims=True)
    clips = 0.3 * rng.standard_normal((N, S, L, D)) + 0.3 * rng.standard_normal((N, 1, L, D))
    clips[:, :, :2] += (latent[:, 0, None] * directions[0])[:, None, None, :]
    clips[:, :, 2:] += (latent[:, 1, None] * directions[1])[:, None, None, :]
    proxies = latent + 0.05 * rng.standard_normal(latent.shape)
    proxies[rng.random(proxies.shape) < 0.1] = np.nan
    return clips.astype(np.float32), latent, proxies


def _lists(latent: np.ndarray, rows: np.ndarray, pad: int = 0) -> ListwiseData:
    """Every clip of ``rows`` against the others; relevance from latent distance."""
    cands = np.array([[c for c in rows if c != q] for q in rows])
    targets = np.exp(-((latent[rows][:, None] - latent[cands]) ** 2) / (2 * 0.15**2))
    relevance = (targets.mean(-1)[..., None] >= [0.3, 0.6, 0.85]).sum(-1).astype(float)
    cands[:, len(cands[0]) - pad :] = -1
    return ListwiseData(rows, cands, relevance, targets)


@pytest.fixture(scope="module")
def problem():
    clips, latent, proxies = _planted()
    train = _lists(latent, np.arange(40), pad=5)
    val = _lists(latent, np.arange(40, N))
    return clips, proxies, train, val


def _model(members: int = 1, cosine_branch: bool = False) -> OracleScorer:
    config = OracleConfig(
        num_layers=L,
        dim=D,
        aspects=["tempo", "dynamics"],
        clip_segments=S,
        layer_scores=[[1.0, 0.8, 0.1, 0.1], [0.1, 0.1, 0.8, 1.0]],
        default_weights=[1.0, 1.0],
        hidden=8,
        num_proxy_features=[1, 1],
        members=members,
        cosine_branch=cosine_branch,
    )
    return OracleScorer(config, seed=0)


def _fit(problem, members: int = 1, cosine_branch: bool = False, **params):
    clips, proxies, train, val = problem
    settings = TrainParams(**({"batch_queries": 8, "num_threads": 1, "lr": 1e-2} | params))
    model = _model(members, cosine_branch)
    return fit_oracle(model, train, val, clips.__getitem__, proxies, settings, progress=False)


@pytest.mark.parametrize(("members", "cosine_branch"), [(1, False), (3, False), (1, True)])
def test_fit_oracle_learns_the_planted_aspects(problem, members, cosine_branch):
    clips, _, _, val = problem
    initial = evaluate_ndcg(_model(members, cosine_branch), val, clips.__getitem__)
    model, history = _fit(problem, members, cosine_branch, epochs=4, patience=4)
    final = evaluate_ndcg(model, val, clips.__getitem__)
    assert [h["epoch"] for h in history] == list(range(1, 5))
    branch_loss = {"loss_cosine_ranking"} if cosine_branch else set()
    assert all(set(h) == HISTORY_KEYS | branch_loss for h in history)
    assert final == pytest.approx(max(h["val_ndcg@10"] for h in history))
    assert final > max(initial + 0.1, 0.85), (initial, final)
    assert history[-1]["loss_aspect"] < history[0]["loss_aspect"]


def test_fit_oracle_is_deterministic(problem):
    first, history_first = _fit(problem, epochs=2)
    second, history_second = _fit(problem, epochs=2)
    state_first, state_second = first.state_dict(), second.state_dict()
    assert state_first.keys() == state_second.keys()
    assert all(torch.equal(state_first[k], state_second[k]) for k in state_first)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in history_first]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in history_second]


def _run_scripted(
    model: torch.nn.Module, validate: Callable[[], float], **settings: Any
) -> list[dict]:
    """``run_epochs`` on one constant batch per epoch, validation scores from ``validate``."""

    def step(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ranking": model(batch).pow(2).mean()}

    params = TrainParams(**({"patience": 2, "loss_weights": {"ranking": 1.0}} | settings))
    return run_epochs(
        model, params, lambda rng: iter([torch.ones(4, 2)]), step, validate, progress=False
    )


def test_early_stopping_restores_the_best_epoch():
    model = torch.nn.Linear(2, 1)
    scripted = iter([0.5, 0.6, 0.9, 0.7, 0.8, 0.95])  # initial, then epochs 1..5
    seen: list[dict[str, torch.Tensor]] = []

    def validate() -> float:
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scripted)

    history = _run_scripted(model, validate, epochs=5)
    assert [h["val_ndcg@10"] for h in history] == [0.6, 0.9, 0.7, 0.8]  # stopped after epoch 4
    best = seen[2]  # the state validated after epoch 2
    assert all(torch.equal(model.state_dict()[k], best[k]) for k in best)
    assert not torch.equal(seen[4]["weight"], best["weight"])
    assert [h["restored"] for h in history] == [False, True, False, False]


def test_warm_up_epochs_are_never_kept_or_a_reason_to_stop():
    """``start_from_epoch`` (Keras' warm-up): a lucky first validation score is not kept,
    and the patience counts from the warm-up's end."""
    model = torch.nn.Linear(2, 1)

    def fit(scores: list[float], **settings: int) -> list[dict]:
        return _run_scripted(model, iter(scores).__next__, **settings)

    history = fit([0.1, 0.9, 0.5, 0.6, 0.62, 0.61, 0.6, 0.59], epochs=7, start_from_epoch=3)
    assert [h["epoch"] for h in history if h["restored"]] == [4]  # 0.62, not epoch 1's 0.9
    assert len(history) == 6  # epochs 5 and 6 without a better score
    history = fit([0.1, 0.9, 0.5, 0.6, 0.62], epochs=7, start_from_epoch=0)
    assert [h["epoch"] for h in history if h["restored"]] == [1] and len(history) == 3
    history = fit([0.1, 0.9, 0.5], epochs=2, start_from_epoch=5)  # warm-up longer than the run:
    assert [h["restored"] for h in history] == [False, True]  # the last epoch counts


def test_input_statistics_stream_over_chunks(problem):
    clips = problem[0]
    rows = np.array([3, 5, 8, 13, 21])
    mean, std = input_statistics(clips.__getitem__, rows, batch_size=2)
    segments = clips[rows].reshape(-1, L, D).astype(np.float64)
    np.testing.assert_allclose(mean, segments.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(std, segments.std(axis=0), atol=1e-8)


def test_invalid_inputs_are_refused(problem):
    clips, proxies, train, val = problem
    params = TrainParams(epochs=1)
    with pytest.raises(ValueError, match="clip_proxy_features"):
        fit_oracle(_model(), train, val, clips.__getitem__, proxies[:, :1], params, False)
    no_positive = ListwiseData(val.query_index, val.candidate_index, val.relevance * 0, val.targets)
    with pytest.raises(ValueError, match="no relevant"):
        fit_oracle(_model(), train, no_positive, clips.__getitem__, proxies, params, False)
    with pytest.raises(ValueError, match="candidate_index"):
        ListwiseData(val.query_index[:3], val.candidate_index, val.relevance, val.targets)
