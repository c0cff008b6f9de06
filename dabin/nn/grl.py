"""Gradient reversal (Ganin & Lempitsky, 2015), the adversarial link of DANN."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["GradientReversal", "gradient_reversal"]


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (coeff,) = ctx.saved_tensors
        return -coeff.to(grad_out.dtype) * grad_out, None


def gradient_reversal(x: Tensor, coeff: Tensor | float = 1.0) -> Tensor:
    """Identity forward, ``-λ·grad`` backward.

    Args:
        x: Any tensor, e.g. bottleneck features ``(B, D)``.
        coeff: ``λ``, a float or a 0-d tensor.

    Returns:
        ``x`` (a view), whose gradient is multiplied by ``-λ``.
    """
    return _GradientReversal.apply(x, torch.as_tensor(coeff, device=x.device))


class GradientReversal(nn.Module):
    """The gradient reversal layer: ``R(x) = x``, ``dR/dx = -λ I``.

    ``λ`` is a buffer, so it is saved in checkpoints and moves with the module; the training loop
    sets it from its schedule (e.g. DANN's ``λ_p = 2 / (1 + exp(-10 p)) - 1``) with
    :meth:`set_coeff`, the layer keeps no counter of its own.

    Args:
        coeff: Initial ``λ``.
    """

    coeff: Tensor

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("coeff", torch.tensor(float(coeff)))

    def set_coeff(self, value: float) -> None:
        """Set ``λ`` (in place, so the buffer keeps its device)."""
        self.coeff.fill_(float(value))

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: ``(B, D)`` features. Returns: ``x`` with reversed, scaled gradient."""
        return _GradientReversal.apply(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff.item():g}"
