"""Benchmark: every normalization of the lab against BatchNorm, side by side in one run.

Measures, interleaving the contenders and taking the median of repeats:

* one layer, training forward+backward, at the shapes of a ResNet-18 (target: each <= 1.5x BN,
  or a measured reason in the README);
* one layer, eval forward (information);
* a whole ResNet-18 SGD step with each norm, as the transfer module trains it: one joint batch
  (TransNorm split into its source and target halves), two passes for dsbin (the target's with
  its statistics and gates swapped in), MixStyle mixing at every insertion (p = 1).

Usage::

    python experiments/bench_norms.py [--repeats 9] [--step-repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

import torch
from torch import nn

from dabin.models import resnet18
from dabin.nn import (IBN, BatchInstanceNorm2d, MixStyle, SwitchNorm2d, TransNorm2d, add_domain_stats, domain_split,
                      target_stats)
from dabin.nn.mixstyle import set_mixstyle
from timing import layer_step, median_interleaved

LAYER_SHAPES = [(32, 64, 56, 56), (32, 128, 28, 28), (32, 256, 14, 14), (32, 512, 7, 7)]
TRAIN_TARGET = 1.5
STEP_NORMS = ("bn", "bin", "dsbin", "switchable", "transnorm", "ibn_a", "ibn_b", "mixstyle")


class BNMixStyle(nn.Sequential):
    """BatchNorm followed by MixStyle mixing every batch: what MixStyle adds where it sits."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), MixStyle(p=1.0))


def _layers(channels: int) -> dict[str, nn.Module]:
    bin_layer = BatchInstanceNorm2d(channels)
    with torch.no_grad():
        bin_layer.gate.uniform_()  # every channel mixes both branches: no shortcut applies
    return {"bn": nn.BatchNorm2d(channels), "bin": bin_layer, "switchable": SwitchNorm2d(channels),
            "transnorm": TransNorm2d(channels), "ibn": IBN(channels), "bn+mixstyle": BNMixStyle(channels)}


def _resnet_step(norm: str, batch: int, size: int) -> Callable[[], object]:
    torch.manual_seed(0)
    model = resnet18(norm=norm, num_classes=65)  # type: ignore[arg-type]
    if norm == "dsbin":
        add_domain_stats(model, gates=True)
    set_mixstyle(model, active=True)
    for module in model.modules():
        if isinstance(module, MixStyle):
            module.p = 1.0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 65, (batch,))
    half = batch // 2

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        if norm == "dsbin":
            logits_s = model(x[:half])
            with target_stats(model):
                logits_t = model(x[half:])
            logits = torch.cat([logits_s, logits_t])
        else:
            with domain_split(model, half) if norm == "transnorm" else contextlib.nullcontext():
                logits = model(x)
        nn.functional.cross_entropy(logits, y).backward()
        optimizer.step()
        return None
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--step-repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=32, help="ResNet-18 step batch (default 32)")
    parser.add_argument("--size", type=int, default=64, help="ResNet-18 step image size (default 64)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of interleaved repeats "
          f"({args.repeats} per layer, {args.step_repeats} per step)\n")
    names = list(_layers(8))
    worst: dict[str, float] = dict.fromkeys(names, 0.0)
    print("| layer | mode | shape | " + " | ".join(f"{n}/bn" for n in names[1:]) + " | BN ms |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in names[1:]) + " | --- |")
    for shape in LAYER_SHAPES:
        x = torch.randn(*shape)
        for mode in ("train", "eval"):
            med = median_interleaved({name: layer_step(layer, x, mode == "train")
                                      for name, layer in _layers(shape[1]).items()}, args.repeats, warmup=2)
            if mode == "train":
                for name in names:
                    worst[name] = max(worst[name], med[name] / med["bn"])
            print(f"| layer | {mode} | {'x'.join(map(str, shape))} | "
                  + " | ".join(f"{med[n] / med['bn']:.2f}x" for n in names[1:]) + f" | {med['bn'] * 1e3:.2f} |")
    steps = median_interleaved({norm: _resnet_step(norm, args.batch, args.size) for norm in STEP_NORMS},
                               args.step_repeats, warmup=1)
    print(f"\n| ResNet-18 SGD step, {args.batch}x3x{args.size}x{args.size} | ms | /bn |")
    print("| --- | --- | --- |")
    for norm in STEP_NORMS:
        print(f"| {norm} | {steps[norm] * 1e3:.0f} | {steps[norm] / steps['bn']:.2f}x |")
    over = {name: ratio for name, ratio in worst.items() if ratio > TRAIN_TARGET}
    print("\nlayer training, worst ratio to BN: " + ", ".join(f"{n} {r:.2f}x" for n, r in worst.items() if n != "bn")
          + (f"; over {TRAIN_TARGET}x: {', '.join(over)}" if over else f"; all within {TRAIN_TARGET}x"))


if __name__ == "__main__":
    main()
