"""What a validator is given: one model's outputs on the source validation and target train splits.

:class:`ValidationInputs` is the one argument of every validator of :mod:`dabin.selection`
(:mod:`~dabin.selection.validators`, :mod:`~dabin.selection.mixval`); it checks shapes once, where
the outputs enter, so the validators can trust them. It has no field for a target label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dabin.errors import DabinError

__all__ = ["UndefinedScore", "ValidationInputs"]


class UndefinedScore(DabinError):
    """A validator is not defined on these outputs (too few samples, a diverged model's NaN logits).

    Not a mistake of the caller: :func:`score_all` records such a score as NaN, so an evaluation
    point on a tiny target split or after a divergence does not stop training.
    """


@dataclass(frozen=True)
class ValidationInputs:
    """What one model outputs on the source validation split and the target training split.

    All tensors live on the CPU; logits, features and images are floating point (float32 as the
    trainer writes them), labels are int64. Rows are aligned within a domain: row ``i`` of
    ``target_logits``, ``target_features`` and ``target_images`` is the same target image.

    There is deliberately **no target-label field**: a validator cannot read what it is not given.

    ``target_images`` and ``classify`` are needed only by :func:`mixval`, which feeds the model new
    (mixed) images; every other validator works from the logits and features alone. Give both or
    neither; :func:`mixval` raises :class:`~dabin.errors.DabinError` when they are missing.

    Attributes:
        source_logits: ``(N_s, C)`` logits on the source validation images.
        source_labels: ``(N_s,)`` int64 class indices in ``[0, C)`` of the source validation images.
        source_features: ``(N_s, D)`` features (the classifier head's input) on the same images.
        target_logits: ``(N_t, C)`` logits on the unlabelled target training images.
        target_features: ``(N_t, D)`` features on the same images.
        target_images: ``(N_t, channels, H, W)`` the target images as the model takes them
            (normalized, 3 channels for RGB); only for :func:`mixval`.
        classify: The model as a function images → logits, ``(B, channels, H, W) → (B, C)``, in
            eval mode and without gradients (e.g. ``torch.no_grad()`` around ``model.eval()``'s
            forward; it may move the batch to its device and must return ``C`` logits a row);
            only for :func:`mixval`.

    Raises:
        DabinError: In ``__post_init__``, on the first inconsistency: a non-tensor, a tensor not on
            the CPU, a wrong number of dimensions, sizes that do not agree (``N_s``, ``N_t``, ``C``,
            ``D``), fewer than 2 source or target samples or classes, a non-integer label or one
            outside ``[0, C)``, non-finite logits or features, or only one of ``target_images`` and
            ``classify``.
    """

    source_logits: Tensor
    source_labels: Tensor
    source_features: Tensor
    target_logits: Tensor
    target_features: Tensor
    target_images: Tensor | None = None
    classify: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        float_fields = ("source_logits", "source_features", "target_logits", "target_features")
        for name in (*float_fields, "source_labels"):
            _check_tensor(name, getattr(self, name))
        for name in float_fields:
            value: Tensor = getattr(self, name)
            _check_dims(name, value, 2, "(N, C)" if name.endswith("logits") else "(N, D)")
            if not value.is_floating_point():
                raise DabinError(f"ValidationInputs.{name} must be floating point, got dtype {value.dtype}")
        _check_dims("source_labels", self.source_labels, 1, "(N_s,)")
        if self.source_labels.dtype != torch.int64:
            raise DabinError(f"ValidationInputs.source_labels must be int64 class indices, got dtype "
                             f"{self.source_labels.dtype}")
        n_s, c = self.source_logits.shape
        n_t = self.target_logits.shape[0]
        _check_size("source_labels", self.source_labels, 0, n_s, "N_s (rows of source_logits)")
        _check_size("source_features", self.source_features, 0, n_s, "N_s (rows of source_logits)")
        _check_size("target_features", self.target_features, 0, n_t, "N_t (rows of target_logits)")
        _check_size("target_logits", self.target_logits, 1, c, "C (columns of source_logits)")
        _check_size("target_features", self.target_features, 1, self.source_features.shape[1],
                    "D (columns of source_features)")
        if n_s < 2 or n_t < 2:
            raise UndefinedScore(f"ValidationInputs needs at least 2 source and 2 target samples, got N_s={n_s}, "
                                 f"N_t={n_t}")
        if c < 2:
            raise DabinError(f"ValidationInputs needs at least 2 classes, got C={c}")
        low, high = int(self.source_labels.min()), int(self.source_labels.max())
        if low < 0 or high >= c:
            raise DabinError(f"ValidationInputs.source_labels must lie in [0, {c}), got values in [{low}, {high}]")
        for name in float_fields:
            if not torch.isfinite(getattr(self, name)).all():
                raise UndefinedScore(f"ValidationInputs.{name} has non-finite values (nan or inf)")
        if (self.target_images is None) != (self.classify is None):
            given = "target_images" if self.classify is None else "classify"
            raise DabinError(f"ValidationInputs: {given} is given without "
                             f"{'classify' if given == 'target_images' else 'target_images'}; MixVal needs both")
        if self.target_images is not None:
            _check_tensor("target_images", self.target_images)
            _check_dims("target_images", self.target_images, 4, "(N_t, channels, H, W)")
            _check_size("target_images", self.target_images, 0, n_t, "N_t (rows of target_logits)")
            if not self.target_images.is_floating_point():
                raise DabinError(f"ValidationInputs.target_images must be floating point, got dtype "
                                 f"{self.target_images.dtype}")
        if self.classify is not None and not callable(self.classify):
            raise DabinError(f"ValidationInputs.classify must be callable, got {type(self.classify).__name__}")

    @property
    def num_classes(self) -> int:
        """``C``, the number of classes."""
        return int(self.source_logits.shape[1])


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise DabinError(f"ValidationInputs.{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.device.type != "cpu":
        raise DabinError(f"ValidationInputs.{name} must be on the CPU, got device {value.device}")


def _check_dims(name: str, value: Tensor, dims: int, shape: str) -> None:
    if value.dim() != dims:
        raise DabinError(f"ValidationInputs.{name} must have shape {shape}, got {tuple(value.shape)}")


def _check_size(name: str, value: Tensor, dim: int, expected: int, what: str) -> None:
    if value.shape[dim] != expected:
        raise DabinError(f"ValidationInputs.{name} has size {value.shape[dim]} in dim {dim}, expected {expected} = "
                         f"{what}; shape {tuple(value.shape)}")
