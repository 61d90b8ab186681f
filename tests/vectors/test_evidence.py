"""The one reading of discovery evidence, and that every consumer uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expressive_retrieval.evaluation.baselines import discovery_layer_weights
from expressive_retrieval.models.losses.routing_prior_loss import RoutingPriorLoss
from expressive_retrieval.models.routing import LayerRouting
from expressive_retrieval.vectors.evidence import has_evidence, layer_priors

# Probe-style scores: slightly negative where a layer knows nothing.
PROBE = [[-0.05, 0.2, 0.6, -0.01], [-0.03, -0.02, -0.04, 0.0], [0.5, 0.5, 0.0, 0.0]]


def test_scores_at_or_below_zero_are_no_evidence() -> None:
    priors = layer_priors(PROBE)
    np.testing.assert_allclose(priors[0], [0, 0.25, 0.75, 0])
    np.testing.assert_allclose(priors[1], [0.25] * 4)  # no evidence: uniform
    np.testing.assert_allclose(priors[2], [0.5, 0.5, 0, 0])
    assert [has_evidence(row) for row in PROBE] == [True, False, True]


@pytest.mark.parametrize("bad", [[[0.1, float("nan")]], [[float("inf"), 0.0]], [[]]])
def test_non_finite_or_empty_evidence_is_refused(bad: list) -> None:
    with pytest.raises(ValueError, match="layer_scores"):
        layer_priors(bad)


def test_routing_loss_and_baseline_read_evidence_the_same_way() -> None:
    priors = layer_priors(PROBE)
    routing = LayerRouting(torch.tensor(PROBE), eps=1e-9)
    np.testing.assert_allclose(routing.weights().detach().numpy(), priors, atol=1e-6)
    evidence = {f"a{i}": {"layer_scores": row} for i, row in enumerate(PROBE)}
    np.testing.assert_allclose(discovery_layer_weights(evidence, list(evidence)), priors)
    exact = torch.tensor(priors, dtype=torch.float32)
    loss = RoutingPriorLoss.compute_loss(exact, torch.tensor(PROBE))
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    assert float(RoutingPriorLoss.compute_loss(torch.full((3, 4), 0.25), torch.tensor(PROBE))) > 0
