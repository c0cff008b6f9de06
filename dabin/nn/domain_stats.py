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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from dabin.nn.bin import _BatchInstanceNorm

__all__ = ["TARGET_GATE", "add_domain_stats", "target_gate", "target_gates", "target_stats"]

_STATS = ("running_mean", "running_var", "num_batches_tracked")
_PREFIX = "target_"
#: The name of a layer's target gate (domain-specific BIN).
TARGET_GATE = _PREFIX + "gate"


def _layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def add_domain_stats(model: nn.Module, gates: bool = False) -> int:
    """Give every norm layer of ``model`` target statistics, initialized from its current ones.

    Args:
        model: The model.
        gates: Also give every BIN layer with a learned gate a target gate, initialized from its
            gate (domain-specific BIN).

    Returns:
        The number of layers that got them.
    """
    layers = _layers(model)
    for layer in layers:
        for name in _STATS:
            if _PREFIX + name not in layer._buffers:
                layer.register_buffer(_PREFIX + name, layer._buffers[name].detach().clone())
        if gates and isinstance(layer, _BatchInstanceNorm) and layer.learn_gate and TARGET_GATE not in layer._parameters:
            layer.register_parameter(TARGET_GATE, nn.Parameter(layer.gate.detach().clone()))
    return len(layers)


def target_gate(layer: nn.Module) -> torch.Tensor | None:
    """A BIN layer's target gate ρ_t (domain-specific BIN), else None."""
    return layer._parameters.get(TARGET_GATE) if isinstance(layer, _BatchInstanceNorm) else None


def target_gates(model: nn.Module) -> list[torch.Tensor]:
    """The target gates of a domain-specific BIN model (none without them)."""
    return [gate for gate in map(target_gate, model.modules()) if gate is not None]


@contextlib.contextmanager
def target_stats(model: nn.Module) -> Iterator[None]:
    """Within the block every norm layer uses (and, training, updates) the target's statistics and gate.

    The buffers (and target gates) are exchanged, not copied, so what the block's forward passes
    accumulate stays with the target and a gradient reaches the target's gate; on leaving, the
    source's are back in place (also after an exception).
    """
    layers = [layer for layer in _layers(model) if _PREFIX + "running_mean" in layer._buffers]
    _swap(layers)
    try:
        yield
    finally:
        _swap(layers)


def _swap(layers: list[nn.modules.batchnorm._BatchNorm]) -> None:
    for layer in layers:
        buffers = layer._buffers
        for name in _STATS:
            buffers[name], buffers[_PREFIX + name] = buffers[_PREFIX + name], buffers[name]
        parameters = layer._parameters
        if parameters.get(TARGET_GATE) is not None:
            parameters["gate"], parameters[TARGET_GATE] = parameters[TARGET_GATE], parameters["gate"]
