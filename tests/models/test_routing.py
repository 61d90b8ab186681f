import pytest
import torch

from expressive_retrieval.models.routing import AspectLinear, LayerRouting


def _evidence() -> torch.Tensor:
    return torch.tensor(
        [[0.1, 0.9, 0.3, 0.0], [0.0, 0.2, 0.4, 1.0], [0.7, 0.1, 0.1, 0.1]]
    )  # [A=3, L=4]


def test_init_follows_evidence():
    routing = LayerRouting(_evidence())
    weights = routing.weights()
    assert weights.shape == (3, 4)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert torch.equal(weights.argmax(dim=1), _evidence().argmax(dim=1))
    # temperature 1 reproduces the normalised evidence up to the eps floor
    share = _evidence() / _evidence().sum(dim=1, keepdim=True)
    torch.testing.assert_close(weights, share, atol=5e-3, rtol=0)


def test_lower_temperature_sharpens_and_zero_evidence_is_uniform():
    sharp = LayerRouting(_evidence(), temperature=0.25).weights()
    assert (sharp.max(dim=1).values > LayerRouting(_evidence()).weights().max(dim=1).values).all()
    uniform = LayerRouting(torch.zeros(2, 5)).weights()
    torch.testing.assert_close(uniform, torch.full((2, 5), 0.2))


@pytest.mark.parametrize(
    "scores",
    [torch.tensor([[1.0, float("nan")]]), torch.tensor([1.0, 2.0]), torch.zeros(0, 3)],
)
def test_invalid_evidence_is_refused(scores):
    with pytest.raises(ValueError, match="layer_scores"):
        LayerRouting(scores)


def test_forward_routes_layers_per_aspect():
    routing = LayerRouting(_evidence())
    x = torch.randn(2, 5, 6, 4, 16)  # [..., S, L, D]
    out = routing(x)
    assert out.shape == (2, 5, 3, 6, 16)  # [..., A, S, D]
    expected = torch.einsum("al,...sld->...asd", routing.weights(), x)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="layers"):
        routing(torch.randn(2, 6, 3, 16))


def test_aspect_linear_keeps_aspects_apart():
    torch.manual_seed(0)
    layer = AspectLinear(3, 5, 2)
    x = torch.randn(4, 7, 3, 5)
    out = layer(x)
    for a in range(3):
        torch.testing.assert_close(out[..., a, :], x[..., a, :] @ layer.weight[a] + layer.bias[a])
    changed = x.clone()
    changed[..., 0, :] += 1.0
    assert torch.equal(layer(changed)[..., 1:, :], out[..., 1:, :])
