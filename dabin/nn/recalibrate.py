"""Re-estimating normalization statistics on another domain (AdaBN; Li et al., 2016).

A network trained on a source domain keeps the source's activation statistics in its BatchNorm
(and BIN) layers; on a target domain with another style those statistics are wrong, whatever the
learned weights. Replacing them by the target's (from unlabelled target images) is a classic,
label-free adaptation and a strong baseline beside DANN.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = ["recalibrate_norm_stats"]


@torch.no_grad()
def recalibrate_norm_stats(model: nn.Module, batches: Iterable[Tensor], device: torch.device | str | None = None) -> int:
    """Replace the running statistics of every BatchNorm/BIN layer by their average over ``batches``.

    Statistics are reset and re-accumulated as a cumulative average (``momentum=None``), so the
    result is the mean over all batches, independent of their order; everything else of the model
    (dropout, weights, train/eval mode) is left as it was.

    Args:
        model: The network.
        batches: Input tensors (unlabelled images of the new domain).
        device: Where to move each batch (default: the model's device).

    Returns:
        Number of layers recalibrated.
    """
    layers = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    device = device or next(model.parameters()).device
    saved = [(layer.momentum, layer.training) for layer in layers]
    was_training = model.training
    model.eval()  # dropout and the rest in inference mode; only the norm layers collect statistics
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    try:
        for images in batches:
            model(images.to(device))
    finally:
        for layer, (momentum, training) in zip(layers, saved):
            layer.momentum = momentum
            layer.train(training)
        model.train(was_training)
    return len(layers)
