"""Per-domain running statistics for every BatchNorm/BIN layer (domain-specific BN, DSBN-style).

Chang et al. (CVPR 2019) give each domain its own BatchNorm; here each domain gets its own
*running statistics* (mean, variance, batch count) while the affine parameters, the BIN gates and
every other weight are shared. :func:`add_domain_stats` gives every norm layer a second set of
statistics buffers for the target (``target_running_mean``, ``target_running_var``,
``target_num_batches_tracked``: saved in checkpoints), and :func:`target_stats` swaps them in for
a block: a target batch then normalizes and updates the target's statistics, and evaluation on
the target uses them. Outside the block the layers hold the source's statistics, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["add_domain_stats", "target_stats"]

_STATS = ("running_mean", "running_var", "num_batches_tracked")
_PREFIX = "target_"


def _layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def add_domain_stats(model: nn.Module) -> int:
    """Give every norm layer of ``model`` target statistics, initialized from its current ones.

    Returns:
        The number of layers that got them.
    """
    layers = _layers(model)
    for layer in layers:
        for name in _STATS:
            if _PREFIX + name not in layer._buffers:
                layer.register_buffer(_PREFIX + name, layer._buffers[name].detach().clone())
    return len(layers)


@contextlib.contextmanager
def target_stats(model: nn.Module) -> Iterator[None]:
    """Within the block every norm layer uses (and, training, updates) the target's statistics.

    The buffers are exchanged, not copied, so what the block's forward passes accumulate stays with
    the target; on leaving, the source's are back in place (also after an exception).
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
