"""Re-estimating normalization statistics on another domain (AdaBN; Li et al., 2016).

A network trained on a source domain keeps the source's activation statistics in its BatchNorm
(and BIN) layers; on a target domain with another style those statistics are wrong, whatever the
learned weights. Replacing them by the target's (from unlabelled target images) is a classic,
label-free adaptation and a strong baseline beside DANN.

AdaBN's Algorithm 1 replaces each neuron's mean and variance by their values over *all* target
images. :func:`recalibrate_norm_stats` computes exactly that by default (``population``): layer by
layer in execution order, each layer's input statistics over the whole set, with the layers below
it already holding theirs and the model in eval mode, as it will be tested. The alternative
(``shuffled_batch_average``) is the usual shortcut: the norm layers in train mode with a cumulative
average over batches. Its mean of per-batch variances lacks the variance between batch means, and
while collecting, deeper layers see activations normalized with batch statistics; both errors are
small only for large, well-shuffled batches: on a loader in file order (grouped by class) a batch
holds one or two classes and the variance misses most of the between-class part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from dabin.errors import DabinError

__all__ = ["NORM_STATS_ESTIMATES", "NormStatsEstimate", "recalibrate_norm_stats"]

#: How :func:`recalibrate_norm_stats` estimates the statistics (see its docstring).
NormStatsEstimate = Literal["population", "shuffled_batch_average"]
#: The values of :data:`NormStatsEstimate`.
NORM_STATS_ESTIMATES: tuple[str, ...] = get_args(NormStatsEstimate)
#: Batches of input tensors, re-iterable (a list, a DataLoader), or a function returning them anew.
Batches = Iterable[Tensor] | Callable[[], Iterable[Tensor]]

_Norm = nn.modules.batchnorm._BatchNorm


class _StopForward(Exception):
    """Raised by the collecting hook once it has its layer's input: nothing after it is needed."""


def _norm_layers(model: nn.Module) -> list[_Norm]:
    return [m for m in model.modules() if isinstance(m, _Norm) and m.track_running_stats]


def _default_device(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _iterate(batches: Batches) -> Iterator[Tensor]:
    for images in batches() if callable(batches) else batches:
        if not isinstance(images, Tensor):
            raise DabinError(f"recalibrate_norm_stats: batches must yield tensors, got a {type(images).__name__}")
        yield images


class _Moments:
    """Per-channel count, mean and sum of squared deviations in float64, merged batch by batch.

    Chan et al.'s parallel update: exact whatever the batch sizes and order, and free of the
    cancellation of ``E[x²] − E[x]²`` when the mean is large against the spread.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, x: Tensor) -> None:
        x64 = x.detach().double()
        dims = [0, *range(2, x64.dim())]  # every axis but the channels'
        n_b = x64.numel() // x64.shape[1]
        var_b, mean_b = torch.var_mean(x64, dim=dims, correction=0)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n_b, mean_b, var_b * n_b
            return
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / total)
        self.m2 = self.m2 + var_b * n_b + delta.square() * (self.count * n_b / total)
        self.count = total


def _discover(model: nn.Module, layers: list[_Norm], images: Tensor) -> list[_Norm]:
    """The layers ``model`` runs on ``images``, in the order it runs them (one full forward)."""
    calls: dict[_Norm, int] = {}

    def record(module: nn.Module, args: tuple[Any, ...]) -> None:
        calls[module] = calls.get(module, 0) + 1  # type: ignore[index]

    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()
    names = {module: name for name, module in model.named_modules()}
    for layer, count in calls.items():
        if count > 1:
            # Its input population would mix calls whose inputs depend on layers after it.
            raise DabinError(f"norm layer {names.get(layer, '?')!r} runs {count} times in one forward pass; "
                             f"population statistics need each norm layer to run once (use shuffled_batch_average)")
    return list(calls)  # dicts keep insertion order: the order of first calls


def _population(model: nn.Module, layers: list[_Norm], batches: Batches, device: torch.device) -> int:
    iterator = _iterate(batches)
    first = next(iterator, None)
    iterator.close()  # the order needs one batch; each layer's pass starts the batches anew
    if first is None:
        raise DabinError("recalibrate_norm_stats: batches is empty")
    ordered = _discover(model, layers, first.to(device))
    names = {module: name for name, module in model.named_modules()}
    for layer in ordered:
        moments = _Moments()

        def collect(module: nn.Module, args: tuple[Any, ...], moments: _Moments = moments) -> None:
            moments.add(args[0])
            raise _StopForward

        handle = layer.register_forward_pre_hook(collect)
        seen = 0
        try:
            for images in _iterate(batches):
                seen += 1
                try:
                    model(images.to(device))
                except _StopForward:
                    pass
        finally:
            handle.remove()
        if moments.mean is None or moments.m2 is None or moments.count < 2:
            raise DabinError(f"norm layer {names.get(layer, '?')!r} saw {moments.count} value(s) per channel; "
                             f"its variance needs at least 2")
        assert layer.running_mean is not None and layer.running_var is not None
        layer.running_mean.copy_(moments.mean)
        # BatchNorm's running_var is the unbiased estimate: n / (n − 1) times the population's.
        layer.running_var.copy_(moments.m2 / (moments.count - 1))
        if layer.num_batches_tracked is not None:
            # The batches that went in, as a cumulative average (momentum=None) would have counted.
            layer.num_batches_tracked.fill_(seen)
    return len(ordered)


def _statistics(layer: _Norm) -> list[Tensor]:
    return [buffer for buffer in (layer.running_mean, layer.running_var, layer.num_batches_tracked)
            if buffer is not None]


def _batch_average(model: nn.Module, layers: list[_Norm], batches: Batches, device: torch.device) -> int:
    saved = [[buffer.clone() for buffer in _statistics(layer)] for layer in layers]  # for layers never reached
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average: every batch weighs the same
        layer.train()
    for images in _iterate(batches):
        model(images.to(device))
    reached = 0
    for layer, before in zip(layers, saved):
        if layer.num_batches_tracked is not None and int(layer.num_batches_tracked) == 0:
            # Not on the forward path (e.g. a loss module's): keep the statistics it had.
            for buffer, value in zip(_statistics(layer), before):
                buffer.copy_(value)
        else:
            reached += 1
    return reached


@torch.no_grad()
def recalibrate_norm_stats(
    model: nn.Module,
    batches: Batches,
    device: torch.device | str | None = None,
    estimate: NormStatsEstimate = "population",
) -> int:
    r"""Replace the running statistics of every BatchNorm/BIN layer by the statistics of ``batches``.

    Every :class:`~torch.nn.modules.batchnorm._BatchNorm` with ``track_running_stats`` that the
    model's forward runs is recalibrated (BIN's BN branch normalizes with these statistics in
    eval mode, so BIN layers are too); layers off the forward path keep theirs.

    ``population`` (the default; AdaBN's Algorithm 1): for layer ``k``, in execution order, with
    ``x`` its input over all ``n`` values of channel ``c`` (every image and position) and every
    layer before ``k`` already holding its new statistics (the model in eval mode),

    .. math::

        \mu_c = \frac{1}{n}\sum_{i=1}^{n} x_{ic}, \qquad
        \sigma^2_c = \frac{1}{n - 1}\sum_{i=1}^{n} (x_{ic} - \mu_c)^2,

    accumulated in float64, so the result does not depend on batch sizes or order (up to
    rounding). It takes one pass over ``batches`` per layer, each forward stopped at that layer,
    plus one forward of the first batch to find the order; ``batches`` must therefore be
    re-iterable and yield the same images each time (any order): a list, a DataLoader without
    random augmentation, or a function returning a fresh iterable.

    ``shuffled_batch_average``: the norm layers in train mode over one pass, with a cumulative
    average (``momentum=None``): the mean of the batch means and of the unbiased batch variances,
    each deeper layer fed activations normalized with batch statistics. Its variance lacks the
    variance between batch means, so feed it shuffled batches (e.g.
    ``target_dataloader(shuffle_seed=...)``); one-shot iterators are accepted.

    Momentum and the train/eval mode of every module are restored afterwards, and the hooks
    removed, also after an error; after an error the statistics are those from before the call.

    Args:
        model: The network; called as ``model(images)``.
        batches: Input tensors (unlabelled images of the new domain): a re-iterable or a function
            returning an iterable.
        device: Where to move each batch (default: the model's device).
        estimate: ``population`` or ``shuffled_batch_average`` (above).

    Returns:
        Number of layers recalibrated.

    Raises:
        DabinError: An unknown ``estimate``; for ``population``, a one-shot iterator, empty
            ``batches``, a norm layer run more than once per forward or seeing a single value per
            channel.
    """
    if estimate not in NORM_STATS_ESTIMATES:
        raise DabinError(f"unknown norm statistics estimate {estimate!r}; expected one of {', '.join(NORM_STATS_ESTIMATES)}")
    if isinstance(batches, Tensor):
        raise DabinError(f"recalibrate_norm_stats: batches must be a collection of batches, got one tensor "
                         f"of shape {list(batches.shape)} (wrap it in a list)")
    if estimate == "population" and not callable(batches) and iter(batches) is batches:
        raise DabinError(f"recalibrate_norm_stats: population statistics take one pass per norm layer, but batches "
                         f"is a one-shot {type(batches).__name__}; pass a list, a DataLoader or a function returning "
                         f"the batches")
    layers = _norm_layers(model)
    if not layers:
        return 0
    target = torch.device(device) if device is not None else _default_device(model)
    modes = [(module, module.training) for module in model.modules()]
    momenta = [layer.momentum for layer in layers]
    saved = [[buffer.clone() for buffer in _statistics(layer)] for layer in layers]
    model.eval()  # dropout and the rest in inference mode, as the model will be used
    try:
        if estimate == "population":
            return _population(model, layers, batches, target)
        return _batch_average(model, layers, batches, target)
    except BaseException:
        # Half the layers recalibrated is neither domain's statistics: leave the model as it was.
        for layer, before in zip(layers, saved):
            for buffer, value in zip(_statistics(layer), before):
                buffer.copy_(value)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for module, training in modes:
            module.training = training
