"""The authors' two-pass formulation of BIN, kept only as a reference for tests and benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["batch_instance_norm_reference"]


def batch_instance_norm_reference(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    gate: Tensor,
    use_batch_stats: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Eq. (3) written as the paper's code does: a batch norm, an instance norm, a mix.

    Same arguments as :func:`dabin.nn.batch_instance_norm`. Autograd differentiates it, so it
    also serves as the reference gradient. Slow: each branch reads and writes the whole input.
    """
    n, c = x.shape[:2]
    x_b = F.batch_norm(x, running_mean, running_var, None, None, use_batch_stats, momentum, eps)
    if x[0, 0].numel() == 1:
        x_i = torch.zeros_like(x)  # eq. (3)'s IN term is 0 on a 1x1 map
    else:
        x_i = F.batch_norm(x.reshape(1, n * c, *x.shape[2:]), None, None, None, None, True, 0.0, eps)
        x_i = x_i.reshape(x.shape)
    shape = (1, c) + (1,) * (x.dim() - 2)
    rho = gate.reshape(shape)
    y = rho * x_b + (1 - rho) * x_i
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y
