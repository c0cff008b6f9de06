"""Evaluation points: a run scores every validator a few times during training, beside the oracle.

At each point the model (in eval mode, no gradient) is run over the **labelled source validation
split** and the **unlabelled target train split** (evaluation transform), and every validator of
:mod:`dabin.selection.validators` scores it from those outputs alone. Kept apart and labelled
``oracle``, the target test accuracy at the same point is recorded too: it is what a selection
would have obtained, never what selects. A run's points go into its ``metrics.json``
(``evaluation_points``), so a report can pick a point per validator and compare it with the last
checkpoint and with the oracle's pick.

A module that can be probed declares :class:`Probed`; a data module provides the three loaders of
:class:`~datamodules.transfer.TransferDataModule` (``val_dataloader``, ``target_dataloader``,
``test_dataloader`` with the target's test split first).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Protocol

import torch
from torch import Tensor

from dabin.record import EvaluationPoint
from dabin.selection.validators import VALIDATOR_NAMES, UndefinedScore, ValidationInputs, score_all

__all__ = ["EvaluationPoint", "Probed", "evaluation_steps", "max_class_share", "probe"]


class Probed(Protocol):
    """What a module provides to be probed: its features and its classifier on them."""

    def embed(self, images: Tensor) -> Tensor:
        """Features ``(B, D)`` the classifier reads."""

    def classify_features(self, features: Tensor) -> Tensor:
        """Logits ``(B, C)`` from features."""

    def target_context(self) -> contextlib.AbstractContextManager[None]:
        """The state in which the module evaluates target images (e.g. target statistics)."""


#: Fewest training steps per evaluation point: a short run gets fewer points (at least the last),
#: because scoring a point costs as much as many steps of training.
MIN_STEPS_PER_POINT = 10


def evaluation_steps(total_steps: int, points: int) -> list[int]:
    """Up to ``points`` steps spread evenly over training, the last one at its end (none if ``points`` is 0).

    A run gets at most one point per :data:`MIN_STEPS_PER_POINT` steps, and at least one, at its end:
    ``min(points, max(1, total_steps // MIN_STEPS_PER_POINT))`` points at ``round(T (i + 1) / K)``.

    Args:
        total_steps: Steps of the whole run.
        points: How many evaluation points were asked for.

    Returns:
        Distinct steps in ``[1, total_steps]``, ascending.
    """
    if points <= 0 or total_steps <= 0:
        return []
    points = min(points, max(1, total_steps // MIN_STEPS_PER_POINT))
    return sorted({max(1, round(total_steps * (i + 1) / points)) for i in range(points)})


def _collect(model: Probed, batches: Iterable[tuple[Tensor, ...]], device: torch.device,
             keep_images: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Logits, features and labels over all batches (and the images, if kept), on the CPU."""
    logits, features, labels, images = [], [], [], []
    for batch_images, batch_labels, *_ in batches:
        batch_features = model.embed(batch_images.to(device))
        logits.append(model.classify_features(batch_features).float().cpu())
        features.append(batch_features.float().cpu())
        labels.append(batch_labels)
        images.append(batch_images)
    return torch.cat(logits), torch.cat(features), torch.cat(labels), torch.cat(images) if keep_images else None


@torch.no_grad()
def probe(model: Probed, source_val: Iterable[tuple[Tensor, ...]], target_train: Iterable[tuple[Tensor, ...]],
          target_test: Iterable[tuple[Tensor, ...]], step: int, device: torch.device) -> EvaluationPoint:
    """Score the model now with every validator, and record the oracle's target test accuracy.

    Args:
        model: The module, already in eval mode.
        source_val: Batches ``(images, labels, ...)`` of the labelled source validation split.
        target_train: Batches of the target train split (labels present in the batches are not read).
        target_test: Batches of the target test split (for the oracle only).
        step: Steps done.
        device: Where the model is.

    Returns:
        The evaluation point, with the largest share of the target train predictions in one class;
        a validator not defined on these outputs (too few target images for ClassAMI's k-means, NaN
        logits of a diverged model, no inter-cluster pair for MixVal) scores NaN.
    """
    source_logits, source_features, source_labels, _ = _collect(model, source_val, device)
    with model.target_context():
        target_logits, target_features, _, target_images = _collect(model, target_train, device, keep_images=True)
        test_logits, _, test_labels, _ = _collect(model, target_test, device)

        def classify(images: Tensor) -> Tensor:
            return model.classify_features(model.embed(images.to(device))).float().cpu()

        try:
            inputs = ValidationInputs(source_logits=source_logits, source_labels=source_labels.long(),
                                      source_features=source_features, target_logits=target_logits,
                                      target_features=target_features, target_images=target_images, classify=classify)
        except UndefinedScore:
            # Too few images or a diverged model: no validator is defined at this point.
            scores = dict.fromkeys(VALIDATOR_NAMES, math.nan)
        else:
            scores = {name: float(value) for name, value in score_all(inputs).items()}
    oracle = float((test_logits.argmax(1) == test_labels).float().mean() * 100)
    return EvaluationPoint(step=step, scores=scores, oracle_target_test=oracle,
                           max_class_share=max_class_share(target_logits))


def max_class_share(logits: Tensor) -> float:
    """Percent of the rows predicted as the most predicted class (100: every prediction in one class)."""
    counts = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1])
    return float(counts.max()) * 100.0 / max(1, logits.shape[0])
