"""Training schedules as pure functions of the training progress ``p ∈ [0, 1]``.

They are computed from the trainer's step counter (``p = global_step / total_steps``), never from a
counter of their own, so a run resumed from a checkpoint continues them exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["dann_lambda", "dann_lr_factor", "progress", "step_decay_factor"]


def progress(step: int, total_steps: int) -> float:
    """Training progress ``p = step / total_steps``, clipped to [0, 1].

    Args:
        step: Optimizer steps taken so far (``trainer.global_step``).
        total_steps: Steps of the whole run (``trainer.estimated_stepping_batches``).

    Returns:
        ``p``; 0 when the total is unknown or not positive.
    """
    if total_steps <= 0 or not math.isfinite(total_steps):
        return 0.0
    return min(1.0, max(0.0, step / total_steps))


def dann_lr_factor(p: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """Learning-rate factor of DANN (Ganin et al., JMLR 2016, Section 5.2.2): ``1 / (1 + α p)^β``.

    With the base rate ``μ₀ = 0.01`` this is the author's ``μ_p = μ₀ / (1 + 10 p)^0.75``.

    Args:
        p: Training progress in [0, 1].
        alpha: ``α`` (10 in the paper).
        beta: ``β`` (0.75 in the paper).

    Returns:
        The factor multiplying every group's base learning rate (1 at ``p = 0``, ``11^-0.75`` ≈ 0.166 at 1).
    """
    return (1.0 + alpha * p) ** -beta


def dann_lambda(p: float, gamma: float = 10.0, max_value: float = 1.0) -> float:
    """Gradient-reversal coefficient of DANN: ``λ_p = 2 / (1 + exp(−γ p)) − 1`` (times ``max_value``).

    It rises from 0 to about 1, so the domain classifier's noisy early gradients do not disturb the
    features while they are still being learned.

    Args:
        p: Training progress in [0, 1].
        gamma: ``γ`` (10 in the paper).
        max_value: Scale of the coefficient (1 in the paper).

    Returns:
        ``λ_p`` (0 at ``p = 0``, ≈ 0.9866 at ``p = 0.5``, ≈ 0.99991 at ``p = 1``).
    """
    return max_value * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


def step_decay_factor(epoch: int, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Step decay of the ImageNet policy (Section 4.1): ``γ^k`` after the k-th milestone epoch.

    Args:
        epoch: Current epoch (0-based).
        milestones: Epochs at which the rate is multiplied by ``gamma`` (the paper: 30 and 60).
        gamma: Decay factor.

    Returns:
        The learning-rate factor for ``epoch``.
    """
    return gamma ** sum(epoch >= milestone for milestone in milestones)
