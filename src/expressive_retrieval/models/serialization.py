"""Model weights as plain tensors for safetensors, never pickled (docs/design.md, "Models")."""

from __future__ import annotations

from torch import Tensor, nn


def state_dict_for_safetensors(model: nn.Module) -> dict[str, Tensor]:
    """The model's persistent state as independent, contiguous CPU tensors.

    Copies, so the result neither shares storage (which safetensors refuses) nor changes
    when the model trains further. Load it back with ``safetensors.torch.load_file`` and the
    model's ``from_state``.
    """
    return {
        name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()
    }
