"""Source-only cross-domain accuracy of the embedded digits: how large is the domain gap?

For each of the four domains (Ink, Neon, Photo, Sketch) a small ResNet-18
(``resnet18(norm="bn", num_classes=10, small_input=True, width=16)``) is trained from scratch on
that domain's 80% split with plain SGD, then tested on every domain's 20% split. The splits are
the ones :class:`~datamodules.transfer.TransferDataModule` serves (seeded by domain and
``--seed``), and so are the transforms (random resized crop at scale 0.6-1, no flip, for
training; the whole 32-px image for testing). The diagonal is in-domain accuracy; the rest is
what a domain-adaptation method has to recover.

Usage::

    python experiments/embedded_gap.py [--steps 500] [--lr 0.1] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor, nn

from dabin.models import resnet18
from datamodules import EMBEDDED_DOMAINS, TransferDataModule
from datamodules.splits import transfer_split


def _stack(dm: TransferDataModule, domain: str) -> tuple[Tensor, Tensor]:
    """The 20% test split of ``domain`` as one batch: the test images are few and 32 px."""
    index = dm.tree.resolve(domain)
    samples = dm.tree.domain_samples(index)
    _, test = transfer_split(samples, dm.domains[index], dm.seed)
    dataset = dm.dataset([samples[i] for i in test], train=False)
    items = [dataset[j] for j in range(len(dataset))]
    return torch.stack([x for x, _, _ in items]), torch.tensor([y for _, y, _ in items])


@torch.no_grad()
def _accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(chunk).argmax(1) for chunk in images.split(256)])
    return (predictions == labels).float().mean().item() * 100


def train_source_only(source: str, steps: int, lr: float, batch_size: int, seed: int,
                      cache_dir: str | None) -> tuple[nn.Module, TransferDataModule, float]:
    """Train the small ResNet-18 on one domain's 80% split.

    Args:
        source: Domain name.
        steps: SGD steps (batches of ``batch_size``).
        lr: Peak learning rate of the cosine schedule.
        batch_size: Images per step.
        seed: Split seed and torch seed (initialisation, shuffling, augmentation).
        cache_dir: Where the embedded dataset is rendered (None: the default cache).

    Returns:
        The trained model (in eval mode), the data module, and the training time in seconds.
    """
    target = next(d for d in EMBEDDED_DOMAINS if d != source)  # any: only the source loader is used
    dm = TransferDataModule(root="embedded", source=source, target=target, image_size=32, batch_size=batch_size,
                            num_workers=0, seed=seed, cache_dir=cache_dir, test_all_splits=True,
                            steps_per_epoch=steps)
    torch.manual_seed(seed)
    model = resnet18(norm="bn", num_classes=dm.num_classes, small_input=True, width=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    # A short linear warm-up: full-size steps on a fresh network and fresh BN statistics diverge.
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    start = time.perf_counter()
    # steps_per_epoch=steps: one "epoch" of the cycled source loader is the whole run.
    for images, labels, _ in dm.train_dataloader()["source"]:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        schedule.step()
    return model.eval(), dm, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="SGD steps per source domain (default 500)")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="split and torch seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machines)")
    parser.add_argument("--cache-dir", default=None, help="where the embedded digits are rendered")
    parser.add_argument("--sources", nargs="+", default=list(EMBEDDED_DOMAINS), choices=EMBEDDED_DOMAINS,
                        help="source domains to train (default: all four)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}, {args.steps} steps of "
          f"{args.batch_size}, SGD momentum 0.9, lr {args.lr} cosine\n", flush=True)
    tests: dict[str, tuple[Tensor, Tensor]] | None = None
    matrix: dict[str, dict[str, float]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for source in args.sources:
        model, dm, seconds = train_source_only(source, args.steps, args.lr, args.batch_size, args.seed,
                                               args.cache_dir)
        if tests is None:
            tests = {domain: _stack(dm, domain) for domain in EMBEDDED_DOMAINS}
        # The module's own test split of the source must be the one stacked above: same splits.
        assert len(dm.splits[source][1]) == len(tests[source][1])
        sizes[source] = (len(dm.splits[source][0]), len(dm.splits[source][1]))
        matrix[source] = {target: _accuracy(model, *tests[target]) for target in EMBEDDED_DOMAINS}
        cells = ", ".join(f"{t} {a:.1f}" for t, a in matrix[source].items())
        print(f"{source}: trained in {seconds:.0f} s on {sizes[source][0]} images; accuracy {cells}", flush=True)
    print("\nSource-only accuracy (%), rows: source (80% split), columns: target (20% split); "
          "diagonal: in-domain\n")
    print("| source \\ target | " + " | ".join(EMBEDDED_DOMAINS) + " | mean off-diagonal |")
    print("| --- |" + " --- |" * (len(EMBEDDED_DOMAINS) + 1))
    for source, row in matrix.items():
        cells = [f"**{a:.1f}**" if t == source else f"{a:.1f}" for t, a in row.items()]
        off = [a for t, a in row.items() if t != source]
        print(f"| {source} | " + " | ".join(cells) + f" | {sum(off) / len(off):.1f} |")
    diagonal = [matrix[d][d] for d in matrix]
    off_all = [matrix[s][t] for s in matrix for t in EMBEDDED_DOMAINS if s != t]
    print(f"\nmean in-domain {sum(diagonal) / len(diagonal):.1f}%, mean cross-domain "
          f"{sum(off_all) / len(off_all):.1f}%, gap {sum(diagonal) / len(diagonal) - sum(off_all) / len(off_all):.1f} "
          "points")


if __name__ == "__main__":
    main()
