"""Tiny inputs for the method losses: random heads and step outputs, from a seeded numpy generator."""

from __future__ import annotations

import numpy as np
import torch

from dabin.methods import StepOutputs


def set_head(head: torch.nn.Sequential, rng: np.random.Generator) -> list[np.ndarray]:
    """Fill a Linear-ReLU-Dropout-Linear head with random values; returns them (float64) for hand maths."""
    arrays = []
    for layer in (head[0], head[3]):
        for param in (layer.weight, layer.bias):
            value = rng.normal(size=tuple(param.shape)).astype(np.float32)
            with torch.no_grad():
                param.copy_(torch.from_numpy(value))
            arrays.append(value.astype(np.float64))
    return arrays


def step_outputs(rng: np.random.Generator, n_s: int, n_t: int, d: int, c: int, p: float) -> StepOutputs:
    """Random source/target features ``(n, d)`` and logits ``(n, c)`` that record their gradients."""
    def t(*shape: int) -> torch.Tensor:
        return torch.tensor(rng.normal(size=shape), dtype=torch.float32, requires_grad=True)

    return StepOutputs(t(n_s, d), t(n_t, d), t(n_s, c), t(n_t, c), p)
