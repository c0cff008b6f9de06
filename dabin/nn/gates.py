"""Training the BIN gates: parameter groups (Section 4) and the clip of eq. (4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from dabin.errors import DabinError
from dabin.nn.bin import _BatchInstanceNorm
from dabin.nn.domain_stats import is_gate_name

__all__ = ["GATE_LR_BASES", "GateClamp", "GateLrBase", "bin_param_groups", "clamp_gates_", "gate_parameters"]

#: What the gates' ×10 multiplies: their own group's rate, or the optimizer's base rate.
GateLrBase = Literal["group", "base"]
GATE_LR_BASES: tuple[str, ...] = get_args(GateLrBase)


def gate_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The trainable gates ``ρ`` of every BIN layer in ``module`` (fixed gates are buffers).

    With domain-specific BIN (:func:`dabin.nn.add_domain_stats` with ``gates=True``) a layer's
    target gate is one too (and each domain's, with several: :func:`dabin.nn.domain_stats.domain_slots`):
    it trains at the gates' rate, without decay, and is clipped.
    """
    return [
        gate
        for m in module.modules()
        if isinstance(m, _BatchInstanceNorm)
        for name, gate in m._parameters.items()
        if is_gate_name(name) and isinstance(gate, nn.Parameter)
    ]


def bin_param_groups(
    module: nn.Module,
    groups: Iterable[Mapping[str, Any]] | None = None,
    *,
    lr: float,
    weight_decay: float = 0.0,
    gate_lr_mult: float = 10.0,
    gate_lr_base: GateLrBase = "group",
) -> list[dict[str, Any]]:
    """Optimizer parameter groups in which the gates train at ``gate_lr_mult ×`` a rate, without decay.

    Section 4 of the paper: "the style gates (ρ) are initialized to 1 and trained with a learning
    rate multiplied by 10. Weight decay is not applied to the gate parameters." Every other
    setting of every group is left as it is, so this composes with other group rules (e.g. DANN's
    pretrained backbone at 1/10 lr): each input group that holds gates is split in two.

    What the ×10 multiplies matters only where groups differ (DANN: backbone at ``lr/10``, heads
    at ``lr``). ``"group"`` (the default) multiplies the rate of the layer the gate sits in: the
    paper's reason for the ×10 is that ∂ℓ/∂ρ (eq. 5) is small *next to the gradients of the same
    layer's weights*, so the gate is sped up relative to them, and eq. (4) updates ρ with the η of
    its layer. In every experiment whose rates the paper states (ImageNet, CIFAR, mixed-domain)
    all layers share one rate, so the two choices coincide there. ``"base"`` multiplies ``lr``
    itself, putting a DANN backbone's gates 100× above its weights.

    Args:
        module: The model whose BIN gates are to be found.
        groups: Existing parameter groups (``{"params": [...], "lr": ...}``); default one group
            with all of ``module``'s parameters.
        lr: Learning rate of groups that do not set one.
        weight_decay: Weight decay of groups that do not set one.
        gate_lr_mult: Gate learning-rate multiplier.
        gate_lr_base: ``"group"``: gates at ``gate_lr_mult ×`` their group's rate; ``"base"``: at
            ``gate_lr_mult × lr``.

    Returns:
        Groups for ``torch.optim`` optimizers, each with explicit ``lr`` and ``weight_decay``.
    """
    if gate_lr_base not in GATE_LR_BASES:
        raise DabinError(f"unknown gate_lr_base {gate_lr_base!r}; expected one of {', '.join(GATE_LR_BASES)}")
    if groups is None:
        groups = [{"params": list(module.parameters())}]
    gate_ids = {id(p) for p in gate_parameters(module)}
    result: list[dict[str, Any]] = []
    for group in groups:
        params = list(group["params"])
        base = {**group, "lr": group.get("lr", lr), "weight_decay": group.get("weight_decay", weight_decay)}
        others = [p for p in params if id(p) not in gate_ids]
        gates = [p for p in params if id(p) in gate_ids]
        if others:
            result.append({**base, "params": others})
        if gates:
            rate = base["lr"] if gate_lr_base == "group" else lr
            result.append({**base, "params": gates, "lr": rate * gate_lr_mult, "weight_decay": 0.0})
    return result


@torch.no_grad()
def clamp_gates_(module: nn.Module) -> None:
    """Clip every trainable gate to [0, 1] in place: eq. (4), ``ρ ← clip(ρ − ηΔρ)``."""
    for gate in gate_parameters(module):
        gate.clamp_(0.0, 1.0)


class GateClamp(pl.Callback):
    """Clip the gates after every optimizer step (eq. 4).

    The clip hangs on each optimizer's step post-hook rather than on a batch hook, so it follows
    the optimizer exactly: once per real step under gradient accumulation, after each of several
    optimizers, under manual optimization, and not at all for a step AMP skips.
    """

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        clamp_gates_(pl_module)
        for optimizer in trainer.optimizers:
            self._handles.append(
                optimizer.register_step_post_hook(lambda *_: clamp_gates_(pl_module))
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
