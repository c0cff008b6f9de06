"""The building blocks the adversarial methods (DANN, CDAN, MDD) share.

The two-layer head of the transfer module (:func:`mlp_head`), the reversal coefficient ``λ_p`` as a
function of the training progress (:func:`grl_lambda`) with the check of its options
(:func:`check_schedule`), and the domain labels of a source-then-target batch (:func:`domain_labels`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.schedules import dann_lambda

__all__ = ["check_schedule", "domain_labels", "grl_lambda", "mlp_head"]


def mlp_head(in_features: int, hidden: int, out_features: int, dropout: float) -> nn.Sequential:
    """``Linear(in, hidden) → ReLU → Dropout → Linear(hidden, out)``.

    The architecture of the label predictor and the domain classifier of :class:`dabin.modules.TransferModule`
    (its ``_mlp``), so the methods' heads match the task's and results stay comparable.

    Args:
        in_features: Input width.
        hidden: Hidden width.
        out_features: Output width (2 for a domain discriminator, ``C`` for a classifier head).
        dropout: Dropout probability of the hidden layer, in [0, 1).

    Returns:
        The head, mapping ``(B, in_features)`` to ``(B, out_features)``.

    Raises:
        DabinError: A dropout outside [0, 1) or a hidden width below 1.
    """
    if not 0.0 <= dropout < 1.0:
        raise DabinError(f"dropout must be in [0, 1), got {dropout}")
    if hidden < 1:
        raise DabinError(f"hidden width must be positive, got {hidden}")
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, out_features))


def grl_lambda(progress: float, gamma: float, max_value: float) -> float:
    """Reversal coefficient ``λ_p = max_value · (2 / (1 + exp(−γ p)) − 1)`` at training progress ``p``.

    :func:`dabin.schedules.dann_lambda` with the method's own γ and cap.

    Args:
        progress: ``p`` in [0, 1] (:attr:`~dabin.methods.base.StepOutputs.progress`).
        gamma: ``γ`` of the schedule.
        max_value: Final value of ``λ``.

    Returns:
        ``λ_p`` (0 at ``p = 0``).
    """
    return dann_lambda(progress, gamma, max_value)


def check_schedule(lambda_gamma: float, lambda_max: float) -> None:
    """Check the options of a :func:`grl_lambda` schedule.

    Args:
        lambda_gamma: ``γ`` of the schedule.
        lambda_max: Final value of ``λ``.

    Raises:
        DabinError: Either is negative.
    """
    if lambda_gamma < 0:
        raise DabinError(f"lambda_gamma must be non-negative, got {lambda_gamma}")
    if lambda_max < 0:
        raise DabinError(f"lambda_max must be non-negative, got {lambda_max}")


def domain_labels(n_source: int, n_target: int, device: torch.device) -> Tensor:
    """Domain labels of a batch of ``n_source`` source rows followed by ``n_target`` target rows.

    Args:
        n_source: Source rows, labelled 0.
        n_target: Target rows, labelled 1.
        device: Device of the labels.

    Returns:
        ``(n_source + n_target,)`` long labels (the transfer module's domain labels).
    """
    return torch.cat([torch.zeros(n_source, dtype=torch.long, device=device),
                      torch.ones(n_target, dtype=torch.long, device=device)])
