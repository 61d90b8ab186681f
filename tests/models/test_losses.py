import math

import pytest
import torch

from expressive_retrieval.models.losses import (
    AspectRegressionLoss,
    ListwiseRankingLoss,
    ProxyPredictionLoss,
)

listnet = ListwiseRankingLoss.compute_loss


def test_listnet_reference_values():
    # one positive: cross-entropy = -log softmax(score of the positive)
    loss = listnet(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    # graded: gains 2^rel - 1 = [3, 1, 0] -> target [0.75, 0.25, 0]
    scores, tau = [0.5, 0.2, 0.1], 0.5
    log_z = math.log(sum(math.exp(s / tau) for s in scores))
    expected = -(0.75 * (scores[0] / tau - log_z) + 0.25 * (scores[1] / tau - log_z))
    loss = listnet(torch.tensor([scores]), torch.tensor([[2.0, 1.0, 0.0]]), temperature=tau)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_listnet_prefers_the_right_order():
    relevance = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    perfect = torch.tensor([[0.9, 0.6, 0.3, 0.0]])
    assert listnet(perfect, relevance) < listnet(perfect.flip(-1), relevance)


def test_listnet_ignores_padding_and_lists_without_positive():
    scores = torch.tensor([[0.9, 0.2, 0.4]], requires_grad=True)
    relevance = torch.tensor([[2.0, 0.0, 1.0]])
    reference = listnet(scores[:, :2], relevance[:, :2])
    padded_scores = torch.cat([scores, torch.tensor([[5.0]])], dim=1)
    padded_relevance = torch.cat([relevance, torch.tensor([[3.0]])], dim=1)
    mask = torch.tensor([[True, True, False, False]])
    torch.testing.assert_close(listnet(padded_scores, padded_relevance, mask), reference)
    # a second list with no positive leaves the mean unchanged
    two = listnet(
        torch.cat([padded_scores, torch.rand(1, 4)]),
        torch.cat([padded_relevance, torch.zeros(1, 4)]),
        torch.cat([mask, torch.ones(1, 4, dtype=torch.bool)]),
    )
    torch.testing.assert_close(two, reference)
    two.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[0, 2] == 0


def test_listnet_without_any_positive_is_zero():
    scores = torch.rand(2, 3, requires_grad=True)
    loss = ListwiseRankingLoss()(scores, torch.zeros(2, 3))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(scores.grad, torch.zeros(2, 3))


def test_aspect_regression_hand_values_with_mask_and_nan():
    scores = torch.tensor([[[0.5, 0.2], [0.9, 0.1], [0.3, 0.3]]])  # [1, 3, 2]
    targets = torch.tensor([[[1.0, float("nan")], [0.4, 0.1], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    expected = (0.5**2 + 0.5**2 + 0.0**2) / 3
    assert AspectRegressionLoss()(scores, targets, mask).item() == pytest.approx(expected)
    # smooth L1 with beta=0.1: |0.5| >= beta -> 0.5 - beta/2 each
    smooth = AspectRegressionLoss("smooth_l1", beta=0.1)(scores, targets, mask)
    assert smooth.item() == pytest.approx(2 * (0.5 - 0.05) / 3)
    with pytest.raises(ValueError, match="kind"):
        AspectRegressionLoss("huber")


def test_proxy_prediction_ignores_missing_targets():
    predicted = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    targets = torch.tensor([[0.0, float("nan")], [float("nan"), 1.0]])
    loss = ProxyPredictionLoss()(predicted, targets)
    assert loss.item() == pytest.approx((1.0 + 4.0) / 2)
    loss.backward()
    assert torch.isfinite(predicted.grad).all() and predicted.grad[0, 1] == 0
    all_missing = ProxyPredictionLoss.compute_loss(predicted, torch.full((2, 2), float("nan")))
    assert all_missing.item() == 0.0
