"""What an adaptation method is: a loss module over one step's source and target outputs.

A method sees what the transfer task computed for one training step and returns the adaptation
term added to the source classification loss:

.. math::

    L = \\frac{1}{B_s}\\sum_{i \\in S} \\mathrm{CE}(y_i, \\hat y_i) + L_{\\text{adapt}}(f_s, f_t, g_s, g_t; p),

with ``f`` the bottleneck features ``(B, D)``, ``g`` the classifier's logits ``(B, C)`` and ``p`` the
training progress in [0, 1] (from the trainer's step counter, so a resumed run continues every
schedule exactly). A method may own parameters (a domain discriminator, an adversarial head):
they train at the heads' learning rate. Source-only is "no adaptation loss".
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from torch import Tensor, nn

__all__ = ["AdaptationLoss", "NamedMethod", "StepOutputs"]


@dataclasses.dataclass(frozen=True)
class StepOutputs:
    """One training step's outputs, split by domain.

    Attributes:
        features_s: Source bottleneck features ``(B_s, D)``.
        features_t: Target bottleneck features ``(B_t, D)``.
        logits_s: Source class logits ``(B_s, C)``.
        logits_t: Target class logits ``(B_t, C)`` (target labels are never used); empty ``(0, C)``
            for a method whose ``uses_target_logits`` is False (the classifier is not run on them).
        progress: Training progress ``p`` in [0, 1].
    """

    features_s: Tensor
    features_t: Tensor
    logits_s: Tensor
    logits_t: Tensor
    progress: float


class NamedMethod:
    """A method that knows its registry name: the naming both kinds of loss modules share.

    A subclass names itself where it is defined (``class DANNLoss(AdaptationLoss, name="dann")``);
    the registry (:mod:`dabin.methods.registry`) checks on import that every line's class does, so a
    run records a loss by the name that rebuilds it without asking the registry. Used by
    :class:`AdaptationLoss` and :class:`~dabin.methods.generalization.GeneralizationLoss`, before
    :class:`torch.nn.Module` in their bases.
    """

    #: This class's name in its registry (:data:`dabin.methods.METHODS` or
    #: :data:`dabin.methods.GENERALIZATION`), given where the class is defined; None for a method of
    #: one's own. A subclass does not inherit it: it is another method, unless it names itself.
    registry_name: ClassVar[str | None] = None

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        """Give a subclass its :attr:`registry_name`.

        Args:
            name: The method's name in its registry, which checks that it lists the class under it
                (a checkpoint rebuilds the method by this name), so only for the methods it lists;
                None, the default, for a method of one's own.
            **kwargs: For the other classes' ``__init_subclass__``.
        """
        super().__init_subclass__(**kwargs)
        cls.registry_name = name

    @property
    def method_name(self) -> str:
        """The name runs record: :attr:`registry_name`, else the class path."""
        cls = type(self)
        return cls.registry_name if cls.registry_name is not None else f"{cls.__module__}.{cls.__qualname__}"


class AdaptationLoss(NamedMethod, nn.Module):
    """Base of the adaptation methods: ``forward(outputs) -> (loss, logs)``.

    Subclasses implement :meth:`forward`; its docstring gives the method's equation, the shapes
    and the paper's defaults. ``logs`` are scalars worth plotting (e.g. a discriminator's
    accuracy, the current λ), logged under ``train/<name>``. A subclass names itself in
    :data:`dabin.methods.METHODS` with ``name=`` (:class:`NamedMethod`).

    Args:
        features_dim: ``D``, the width of the bottleneck features.
        num_classes: ``C``.
    """

    #: Whether :meth:`forward` reads ``logits_t``; a method that does not (DANN, DAN) spares the
    #: classifier a pass over the target batch, and its dropout draws stay those of source-only.
    uses_target_logits: ClassVar[bool] = True

    def __init__(self, features_dim: int, num_classes: int) -> None:
        super().__init__()
        self.features_dim = features_dim
        self.num_classes = num_classes

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The adaptation loss of one step and what to log."""
        raise NotImplementedError
