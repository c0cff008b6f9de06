"""Source->target data for unsupervised domain adaptation, one or several sources.

**Splits** (``split``, :func:`datamodules.splits.domain_split`). ``"random"`` (the paper's Table 4
protocol, the default for Office-Home, the embedded digits and any tree dabin does not know by
name): every domain is split 80/20 at random, stratified by class and seeded by ``(domain, seed)``
only, so a domain's split is the same in every task that uses it. ``"official"`` (the default for
Office-31, VisDA-2017, DomainNet and the digits): the split the papers reporting on the benchmark
use. On Office-31 and VisDA-2017 every image of a domain is both its train and its test part: the
source trains on all its labelled images, the target's images are the unlabelled training data
and the test set (the standard transductive protocol). The source's "validation" is then its
training images: the published protocol holds nothing out, so its source accuracy measures fit,
not generalization (``split="random"`` gives an honest held-out source split). On DomainNet and
the digits train is the domain's ``<domain>_train.txt`` and test its ``<domain>_test.txt``.

Training pairs the labelled source train part with the target train part, whose labels travel in
the batch but must not be used. Validation is the source's test part only, so nothing can select
a model on target labels. Test is the target's test part, optionally followed by every part of
both domains.

**Training length.** Both training loaders draw ``steps_per_epoch`` batches per epoch (by default
enough for one pass over the larger train split); each reshuffles after every pass over its split
and cycles, so neither runs out before the other, whatever ``CombinedLoader`` mode the task uses,
and the run's length is set by ``trainer.max_steps`` (leave ``max_epochs`` at -1 or large enough).
The shuffling follows the global torch seed (``seed_everything``), the split follows ``seed``.

**Several sources** (``task="Ar,Cl,Pr->Rw"``, or ``source=["Ar", "Cl", "Pr"]``): the source batches
are drawn from the union of the sources' train splits, uniformly over its images (so a domain's
share follows its size), or with ``source_balance`` the same number of images of each source in
every batch (:class:`~datamodules.samplers.BalancedDomainSampler`). Validation is one loader per
source (its test part), so ``val/acc/avg`` is the unweighted mean of the sources' accuracies; the
evaluation points score source validation on the union of those splits. Every item's domain id is
its domain's index in the dataset, as with one source.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from dabin.errors import DabinError
from datamodules.base import DomainDataModule
from datamodules.naming import domain_list, join_domains
from datamodules.samplers import BalancedDomainSampler
from datamodules.splits import describe_split, resolve_split
from datamodules.tasks import parse_multi_task, transfer_tasks
from datamodules.tree import Sample

__all__ = ["TransferDataModule"]


class TransferDataModule(DomainDataModule):
    """One source->target task over a multi-domain tree (Office-Home, the embedded digits, ...).

    Args:
        root: Dataset folder; None or ``"embedded"`` for the embedded digits.
        source: Source domain, by name or code (``"Ar"``, ``"Real World"``, ``"real_world"``), or
            several: a list (``["Ar", "Cl", "Pr"]``) or joined by commas (``"Ar,Cl,Pr"``);
            None: the first task of :func:`~datamodules.tasks.transfer_tasks`.
        target: Target domain, likewise (one domain, not among the sources).
        task: Alternatively both at once, ``"Ar->Cl"``, ``"Ar,Cl,Pr->Rw"``; overrides ``source``
            and ``target``.
        image_size: Side of the square crops fed to the network.
        batch_size: Images per batch, per domain (32 source + 32 target per step in the paper).
        num_workers: DataLoader worker processes per loader.
        seed: Seed of the 80/20 splits.
        cache_dir: Resized-image cache for image trees; rendering folder for the embedded data.
        image_lists: Optional image-list file or folder (see :class:`DomainDataModule`).
        test_all_splits: Test on every split of both domains, not only the target's test split.
        steps_per_epoch: Training batches per epoch; None: one pass over the larger train split.
        resize_ratio: Evaluation short side / ``image_size`` (None: dataset preset).
        crop_scale: Smallest area fraction of the training crop (None: dataset preset).
        hflip: Random horizontal flips in training (None: dataset preset).
        source_balance: With several sources, every source batch holds ``batch_size / k`` images
            of each of the ``k`` sources (``batch_size`` must be divisible by ``k``); off: batches
            drawn uniformly from the union of their train splits.
        split: ``"random"`` (seeded 80/20), ``"official"`` (the benchmark's published split), or
            None: the dataset's default (module docstring).

    Attributes:
        source_names: The source domains' names, in dataset order (one for a single source).
        source_name: Those names joined by commas (``"Art,Clipart,Product"``; one source: its
            name), as records and logs write the source.
        target_name: The target domain's name.
        val_names: Names of the validation loaders: each source's (its test part).
        eval_names: Names of the test loaders, in order: the target's name (its test split),
            then, with ``test_all_splits``, ``"<target>/train"`` and, for each source,
            ``"<source>/test"``, ``"<source>/train"``.
        splits: ``{domain name: (train samples, test samples)}`` for the task's domains.
        split: The split used, ``"random"`` or ``"official"`` (``split`` resolved).
        split_source: What the split is, one line for records (``"random 80/20"``,
            ``"official: the <domain>_train.txt / <domain>_test.txt lists of DomainNet"``).
    """

    def __init__(
        self,
        root: str | None = None,
        source: str | list[str] | None = None,
        target: str | None = None,
        task: str | None = None,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        cache_dir: str | None = None,
        image_lists: str | None = None,
        test_all_splits: bool = False,
        steps_per_epoch: int | None = None,
        resize_ratio: float | None = None,
        crop_scale: float | None = None,
        hflip: bool | None = None,
        source_balance: bool = False,
        split: Literal["random", "official"] | None = None,
    ) -> None:
        super().__init__(root, image_size, batch_size, num_workers, seed, cache_dir, image_lists,
                         resize_ratio, crop_scale, hflip)
        sources = domain_list(source, "source")
        if task is not None:
            sources, target = parse_multi_task(task)
        if len(self.domains) < 2:
            raise DabinError(f"a transfer task needs two domains; {self.root} has only {self.domains}")
        default_source, default_target = transfer_tasks(self.domains)[0]
        sources = sources if sources is not None else [default_source]
        target = target if target is not None else default_target
        shown = f"{join_domains(sources)}->{target}"
        source_indices = self._resolve_sources(sources, shown)
        target_index = self.tree.resolve(target)
        if target_index in source_indices:
            if len(source_indices) == 1:
                raise DabinError(f"unknown task {shown}: source and target are both {self.domains[target_index]!r}")
            raise DabinError(f"unknown task {shown}: the target {self.domains[target_index]!r} is also a source")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise DabinError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
        self.source_names = [self.domains[index] for index in source_indices]
        if source_balance and batch_size % len(self.source_names):
            raise DabinError(f"source_balance needs batch_size divisible by the number of sources: batch_size "
                             f"{batch_size} is not divisible by {len(self.source_names)} "
                             f"({', '.join(self.source_names)})")
        self.source_name = join_domains(self.source_names)
        self.target_name = self.domains[target_index]
        self.source_balance = source_balance
        self.split = resolve_split(split, self.tree.dataset, self.root)
        self.split_source = describe_split(self.split, self.tree.dataset)
        self.splits: dict[str, tuple[list[Sample], list[Sample]]] = {}
        for index in (*source_indices, target_index):
            self.splits[self.domains[index]] = self.domain_split(index, self.split)
        self.test_all_splits = test_all_splits
        self.val_names = list(self.source_names)
        self.eval_names = [self.target_name]
        if test_all_splits:
            self.eval_names.append(f"{self.target_name}/train")
            for name in self.source_names:
                self.eval_names += [f"{name}/test", f"{name}/train"]
        larger = max(len(self._source_split(0)), len(self.splits[self.target_name][0]))
        self.steps_per_epoch = steps_per_epoch or max(1, math.ceil(larger / batch_size))

    def _resolve_sources(self, sources: list[str], shown: str) -> list[int]:
        """The sources' domain indices in dataset order (each named once)."""
        indices: dict[int, str] = {}
        for written in sources:
            index = self.tree.resolve(written)
            if index in indices:
                raise DabinError(f"unknown task {shown}: source {self.domains[index]!r} is given twice "
                                 f"({indices[index]!r} and {written!r})")
            indices[index] = written
        return sorted(indices)

    def _source_split(self, split: int) -> list[Sample]:
        """The sources' train (0) or test (1) splits, one after the other in dataset order."""
        return [sample for name in self.source_names for sample in self.splits[name][split]]

    def _balanced(self) -> DataLoader:
        dataset = self.dataset(self._source_split(0), train=True)
        sampler = BalancedDomainSampler([len(self.splits[name][0]) for name in self.source_names],
                                        self.batch_size, self.steps_per_epoch)
        return self.loader(dataset, sampler=sampler, drop_last=True)

    def train_dataloader(self) -> dict[str, DataLoader]:
        """``{"source": labelled source train, "target": target train (labels unused)}``, equal lengths.

        Several sources: the union of their train splits (``source_balance``: equal shares per batch).
        """
        balanced = self.source_balance and len(self.source_names) > 1
        steps = self.steps_per_epoch
        return {"source": self._balanced() if balanced else self.cycled_loader(self._source_split(0), steps),
                "target": self.cycled_loader(self.splits[self.target_name][0], steps)}

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The source's test part (several sources: one loader each): model selection never sees target labels."""
        loaders = [self.loader(self.dataset(self.splits[name][1], train=False)) for name in self.source_names]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per name in :attr:`eval_names` (the target's test split first)."""
        chosen = {self.target_name: self.splits[self.target_name][1]}
        for name in self.eval_names[1:]:
            domain, split = name.rsplit("/", 1)
            chosen[name] = self.splits[domain][0 if split == "train" else 1]
        return [self.loader(self.dataset(chosen[name], train=False)) for name in self.eval_names]

    def target_dataloader(self, shuffle_seed: int | None = None) -> DataLoader:
        """The target's train split, unlabelled use only, with the evaluation transform (e.g. for AdaBN).

        Never split among processes: every process that re-estimates statistics from it sees every
        image, so all of them arrive at the same statistics.

        Args:
            shuffle_seed: None: file order (grouped by class). An int: shuffled by a generator
                seeded with it, the same order in every run (estimates that average per-batch
                statistics need batches that mix the classes).
        """
        dataset = self.dataset(self.splits[self.target_name][0], train=False)
        if shuffle_seed is None:
            return self.loader(dataset, sampler=SequentialSampler(dataset))
        generator = torch.Generator().manual_seed(shuffle_seed)
        return self.loader(dataset, sampler=RandomSampler(dataset, generator=generator))

    def probe_dataloaders(self, max_target_images: int | None = None) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Whole-split loaders for an evaluation point: source val, target train (unlabelled), target test.

        Unlike the trainer's loaders they are never split among processes: the point is scored by
        one process over every image, so its record does not depend on the number of devices.

        Args:
            max_target_images: Score at most this many target train images, a fixed random subset
                (seeded by ``seed``, the same at every point of the run); None: all of them. Caps
                the memory MixVal needs, which keeps the images it mixes.

        Returns:
            ``(source validation, target train, target test)`` loaders, in file order; several
            sources' validation splits are one loader, one after the other in dataset order.
        """
        def whole(samples: list[Sample], indices: list[int] | None = None) -> DataLoader:
            dataset = self.dataset(samples, train=False)
            return self.loader(dataset, sampler=indices if indices is not None else SequentialSampler(dataset))

        target_train = self.splits[self.target_name][0]
        subset = None
        if max_target_images is not None and len(target_train) > max_target_images:
            generator = torch.Generator().manual_seed(self.seed)
            subset = sorted(torch.randperm(len(target_train), generator=generator)[:max_target_images].tolist())
        return (whole(self._source_split(1)), whole(target_train, subset),
                whole(self.splits[self.target_name][1]))

    def predict_dataloader(self) -> list[DataLoader]:
        """The test loaders (the target's test split first)."""
        return self.test_dataloader()
