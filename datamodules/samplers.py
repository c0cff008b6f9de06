"""A training sampler that gives every batch equal shares of several domains (multi-source tasks)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from dabin.errors import DabinError

__all__ = ["BalancedDomainSampler"]


class BalancedDomainSampler(Sampler[int]):
    """Indices of a dataset made of consecutive domain groups, ``batch_size / k`` of each group per batch.

    The dataset holds the ``k`` groups one after the other (``group_sizes[0]`` items of the first,
    then the second's, ...). Each batch of ``batch_size`` consecutive indices holds exactly
    ``batch_size // k`` items of every group, in shuffled order. Within a group, items come without
    replacement, a fresh permutation per pass, cycling: every item once per pass over its group,
    however small the group, as :class:`~torch.utils.data.RandomSampler` does with ``num_samples``
    beyond the dataset's size. Use it with ``DataLoader(batch_size=batch_size, drop_last=True)``.

    Args:
        group_sizes: Items of each group, in the dataset's order (each at least 1).
        batch_size: Items per batch; divisible by the number of groups.
        num_batches: Batches per pass of the sampler (an epoch).
        generator: Random source; None: a fresh one per epoch, seeded from torch's global generator
            (so ``seed_everything`` fixes the order, as it does a ``RandomSampler``'s).

    Raises:
        DabinError: ``batch_size`` is not divisible by the number of groups, or a group is empty.
    """

    def __init__(self, group_sizes: Sequence[int], batch_size: int, num_batches: int,
                 generator: torch.Generator | None = None) -> None:
        groups = len(group_sizes)
        if groups == 0 or any(size < 1 for size in group_sizes):
            raise DabinError(f"a balanced sampler needs non-empty groups, got sizes {list(group_sizes)}")
        if batch_size % groups:
            raise DabinError(f"source_balance needs batch_size divisible by the number of sources: "
                             f"batch_size {batch_size} is not divisible by {groups}")
        self.group_sizes = list(group_sizes)
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.generator = generator

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = self.generator
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        share = self.batch_size // len(self.group_sizes)
        offsets = [sum(self.group_sizes[:i]) for i in range(len(self.group_sizes))]
        # Each group's stream: permutations chained until it covers every batch's share.
        streams = []
        for size in self.group_sizes:
            passes = -(-self.num_batches * share // size)
            streams.append(torch.cat([torch.randperm(size, generator=generator) for _ in range(passes)]))
        for batch in range(self.num_batches):
            chosen = torch.cat([offset + stream[batch * share:(batch + 1) * share]
                                for offset, stream in zip(offsets, streams)])
            yield from chosen[torch.randperm(len(chosen), generator=generator)].tolist()
