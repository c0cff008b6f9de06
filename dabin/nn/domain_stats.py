"""Per-domain running statistics (DSBN-style) and per-domain BIN gates (``dsbin``) for every norm layer.

Chang et al. (CVPR 2019) give each domain its own BatchNorm; here each domain gets its own
*running statistics* (mean, variance, batch count) while the affine parameters and every other
weight are shared. :func:`add_domain_stats` gives every norm layer a second set of statistics
buffers for the target (``target_running_mean``, ``target_running_var``,
``target_num_batches_tracked``: saved in checkpoints), and :func:`target_stats` swaps them in for
a block: a target batch then normalizes and updates the target's statistics, and evaluation on
the target uses them. Outside the block the layers hold the source's statistics, as before.

With ``gates=True`` every BIN layer with a learned gate also gets a target gate
(``target_gate``, a parameter initialized from its gate and trained like it): domain-specific
BIN, dabin's ``dsbin`` norm. It is in the spirit of DSON (Seo et al., ECCV 2020, "Learning to
Optimize Domain Specific Normalization for Domain Generalization"), which gives each domain its own
batch statistics and its own mixture weight between batch and instance normalization. Where
dabin differs: DSON mixes the *statistics* (μ = w μ_BN + (1 − w) μ_IN, likewise σ²) and gives each
domain its own affine γ_d, β_d; dabin keeps BIN's eq. (3), a mixture of the two *normalized*
activations through ρ_d, with the affine parameters shared; DSON averages the predictions of all
domain branches for an unseen test domain, while here the target is seen (unlabelled) in
training and is tested through its own branch, as DSBN does. (DSON's authors' code could not be
read here; this follows the paper's description.)

For domain generalization over ``k`` training domains the same mechanism holds ``k`` sets: the
layer's own buffers and gate are domain 0's, and :func:`domain_slots` names the others
(``domain1_running_mean``, ``domain1_gate``, ...); :func:`branch` swaps domain ``i``'s in, as
:func:`target_stats` swaps the target's. A model with several slots is DSON's arrangement of
domain-specific branches sharing every weight but the statistics and gates
(:class:`~dabin.modules.GeneralizationModule` with ``norm: dsbin``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from dabin.nn.bin import _BatchInstanceNorm

__all__ = ["TARGET", "TARGET_GATE", "add_domain_stats", "branch", "domain_slots", "is_gate_name", "is_slot_gate_name",
           "slot_stats", "target_gate", "target_gates", "target_stats"]

_STATS = ("running_mean", "running_var", "num_batches_tracked")
#: The slot of a source -> target model's second domain (its buffers are ``target_running_mean``, ...).
TARGET = "target"
#: The name of a layer's target gate (domain-specific BIN).
TARGET_GATE = f"{TARGET}_gate"


def domain_slots(num_domains: int) -> tuple[str, ...]:
    """The slots of domains 1 .. k−1 of a ``k``-domain model (domain 0 holds the layers' own statistics)."""
    return tuple(f"domain{index}" for index in range(1, num_domains))


def is_slot_gate_name(name: str) -> bool:
    """Whether a BIN layer's parameter ``name`` is a slot's gate (``<slot>_gate``: ``target_gate``, ``domain1_gate``)."""
    return name.endswith("_gate")


def is_gate_name(name: str) -> bool:
    """Whether a BIN layer's parameter ``name`` is a gate: its own ``gate`` or a slot's ``<slot>_gate``."""
    return name == "gate" or is_slot_gate_name(name)


def _layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def add_domain_stats(model: nn.Module, gates: bool = False, slots: tuple[str, ...] = (TARGET,)) -> int:
    """Give every norm layer of ``model`` each slot's statistics, initialized from its current ones.

    Args:
        model: The model.
        gates: Also give every BIN layer with a learned gate each slot's gate, initialized from its
            gate (domain-specific BIN).
        slots: The slots: the target's (a source -> target model) or :func:`domain_slots`.

    Returns:
        The number of layers that got them.
    """
    layers = _layers(model)
    for layer in layers:
        for slot in slots:
            for name in _STATS:
                if f"{slot}_{name}" not in layer._buffers:
                    layer.register_buffer(f"{slot}_{name}", layer._buffers[name].detach().clone())
            gate = f"{slot}_gate"
            if gates and isinstance(layer, _BatchInstanceNorm) and layer.learn_gate and gate not in layer._parameters:
                layer.register_parameter(gate, nn.Parameter(layer.gate.detach().clone()))
    return len(layers)


def target_gate(layer: nn.Module) -> torch.Tensor | None:
    """A BIN layer's target gate ρ_t (domain-specific BIN), else None."""
    return layer._parameters.get(TARGET_GATE) if isinstance(layer, _BatchInstanceNorm) else None


def target_gates(model: nn.Module) -> list[torch.Tensor]:
    """The target gates of a domain-specific BIN model (none without them)."""
    return [gate for gate in map(target_gate, model.modules()) if gate is not None]


def target_stats(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Within the block every norm layer uses (and, training, updates) the target's statistics and gate."""
    return slot_stats(model, TARGET)


def branch(model: nn.Module, index: int) -> contextlib.AbstractContextManager[None]:
    """Within the block the model is domain ``index``'s branch (0: the layers' own statistics)."""
    return contextlib.nullcontext() if index == 0 else slot_stats(model, f"domain{index}")


@contextlib.contextmanager
def slot_stats(model: nn.Module, slot: str) -> Iterator[None]:
    """Within the block every norm layer uses (and, training, updates) ``slot``'s statistics and gate.

    The buffers (and gates) are exchanged, not copied, so what the block's forward passes
    accumulate stays with the slot and a gradient reaches the slot's gate; on leaving, the
    layers' own are back in place (also after an exception).
    """
    layers = [layer for layer in _layers(model) if f"{slot}_running_mean" in layer._buffers]
    _swap(layers, slot)
    try:
        yield
    finally:
        _swap(layers, slot)


def _swap(layers: list[nn.modules.batchnorm._BatchNorm], slot: str) -> None:
    for layer in layers:
        buffers = layer._buffers
        for name in _STATS:
            buffers[name], buffers[f"{slot}_{name}"] = buffers[f"{slot}_{name}"], buffers[name]
        parameters = layer._parameters
        if parameters.get(f"{slot}_gate") is not None:
            parameters["gate"], parameters[f"{slot}_gate"] = parameters[f"{slot}_gate"], parameters["gate"]
