"""Benchmark: Batch-Instance Normalization against BatchNorm, side by side in one run.

Measures, interleaving the contenders and taking the median of repeats:

* one layer, training forward+backward, at the shapes of a ResNet-18 (target: BIN/BN <= 1.2x);
* one layer, eval forward (target: <= 2.5x);
* a whole ResNet-18 SGD step, batch 64 at 64x64 (target: BIN model / BN model <= 1.05x).

The authors' two-pass formulation (``dabin.nn.reference``) runs beside them for comparison.

Usage::

    python experiments/bench_bin.py [--repeats 15] [--threads 2] [--markdown]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from dabin.models import resnet18
from dabin.nn import BatchInstanceNorm2d
from dabin.nn.reference import batch_instance_norm_reference
from timing import layer_step, median_interleaved

LAYER_SHAPES = [(32, 64, 56, 56), (32, 128, 28, 28), (32, 256, 14, 14), (32, 512, 7, 7), (64, 64, 16, 16)]
TARGETS = {"train": 1.2, "eval": 2.5, "resnet18 step": 1.05}


class NaiveBIN(BatchInstanceNorm2d):
    """BIN computed the authors' way (two normalizations and a mix), for comparison only."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return batch_instance_norm_reference(
            input, self.running_mean, self.running_var, self.weight, self.bias, self.gate,
            self.training, self.momentum or 0.0, self.eps,
        )


def _resnet_step(norm: str, batch: int, size: int) -> Callable[[], object]:
    torch.manual_seed(0)
    model = resnet18(norm=norm, num_classes=65)  # type: ignore[arg-type]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 65, (batch,))

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        return None
    return step


def _resnet_eval(norm: str, batch: int, size: int) -> Callable[[], object]:
    torch.manual_seed(0)
    model = resnet18(norm=norm, num_classes=65).eval()  # type: ignore[arg-type]
    x = torch.randn(batch, 3, size, size)

    def forward() -> object:
        with torch.no_grad():
            return model(x)
    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--step-repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} interleaved repeats\n")
    rows: list[tuple[str, str, float, float, float]] = []
    for shape in LAYER_SHAPES:
        x = torch.randn(*shape)
        for mode in ("train", "eval"):
            layers = {"bn": nn.BatchNorm2d(shape[1]), "bin": BatchInstanceNorm2d(shape[1]), "naive": NaiveBIN(shape[1])}
            for layer in (layers["bin"], layers["naive"]):
                with torch.no_grad():
                    layer.gate.uniform_()  # every channel mixes both branches: no shortcut applies
            med = median_interleaved(
                {name: layer_step(layer, x, mode == "train") for name, layer in layers.items()}, args.repeats, warmup=2
            )
            rows.append((mode, "x".join(map(str, shape)), med["bn"], med["bin"], med["naive"]))
    steps = {norm: _resnet_step(norm, 64, 64) for norm in ("bn", "bin")}
    med = median_interleaved(steps, args.step_repeats, warmup=2)
    evals = median_interleaved({norm: _resnet_eval(norm, 64, 64) for norm in ("bn", "bin")}, args.step_repeats, warmup=2)
    print("| measurement | shape | BN ms | BIN ms | BIN/BN | naive BIN/BN | target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    worst = {"train": 0.0, "eval": 0.0}
    for mode, shape, bn, bin_, naive in rows:
        worst[mode] = max(worst[mode], bin_ / bn)
        print(f"| layer {mode} | {shape} | {bn * 1e3:.2f} | {bin_ * 1e3:.2f} | {bin_ / bn:.2f}x | "
              f"{naive / bn:.2f}x | <= {TARGETS[mode]}x |")
    ratio = med["bin"] / med["bn"]
    print(f"| resnet18 SGD step | 64x3x64x64 | {med['bn'] * 1e3:.1f} | {med['bin'] * 1e3:.1f} | {ratio:.3f}x | "
          f"- | <= {TARGETS['resnet18 step']}x |")
    print(f"| resnet18 eval forward (info) | 64x3x64x64 | {evals['bn'] * 1e3:.1f} | {evals['bin'] * 1e3:.1f} | "
          f"{evals['bin'] / evals['bn']:.3f}x | - | - |")
    verdicts = {
        "train": worst["train"] <= TARGETS["train"],
        "eval": worst["eval"] <= TARGETS["eval"],
        "resnet18 step": ratio <= TARGETS["resnet18 step"],
    }
    print("\n" + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in verdicts.items()))


if __name__ == "__main__":
    main()
