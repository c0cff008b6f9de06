"""Side-by-side timing shared by the benchmark scripts in this folder."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def median_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 0) -> dict[str, float]:
    """Median wall time in seconds of each callable over ``repeats`` rounds.

    The callables run in turn within each round, so a drift in machine load (a shared CPU, thermal
    throttling) hits all of them alike and their ratios stay comparable.

    Args:
        fns: Name → callable to time.
        repeats: Number of timed rounds.
        warmup: Untimed rounds first (allocator, caches, lazy compilation).

    Returns:
        Name → median seconds per call.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def layer_step(layer: nn.Module, x: torch.Tensor, train: bool) -> Callable[[], object]:
    """One layer's training step (forward + backward of a fixed gradient) or eval forward, as a callable to time."""
    layer.train(train)
    if not train:
        def run_eval() -> object:
            with torch.no_grad():
                return layer(x)
        return run_eval
    grad = torch.randn_like(x)
    x = x.detach().requires_grad_()

    def run_train() -> object:
        x.grad = None
        layer(x).backward(grad)
        return None
    return run_train
