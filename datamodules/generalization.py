"""Domain generalization: train on some domains with labels, test on a domain never seen (DomainBed's protocol).

Every domain is split 80/20 as in the transfer protocol (:func:`~datamodules.splits.transfer_split`:
class-stratified, seeded by ``(domain, seed)`` only), DomainBed's ``in``/``out`` splits with its
``holdout_fraction`` 0.2; a PACS tree with its authors' split files beside it uses their train and
validation lists instead (``official_splits``; :func:`datamodules.catalog.read_pacs_splits`). Training reads the training domains' ``in`` parts, one batch of
``batch_size`` images per training domain and step (DomainBed's minibatches, one per environment),
each domain's batch labelled with the dataset's domain index. What is evaluated (names as the
modules log them, :attr:`GeneralizationDataModule.val_names`):

- ``<train domain>/out``: each training domain's held-out 20 % — training-domain validation;
- ``<unseen domain>/in`` and ``<unseen domain>/out`` for every domain not trained on: the test
  domain's ``out`` part is the test-domain oracle's selection set and its ``in`` part what the
  oracle reports (DomainBed's ``OracleSelectionMethod``); a second unseen domain is a
  leave-one-domain-out run's validation domain (DomainBed's ``LeaveOneOutSelectionMethod`` reads
  its ``in`` part);
- and, at test time only, ``<test domain>``: every image of the held-out domain, the headline.

A run trained on all domains but the test domain is a DG run; one that also leaves out a second
domain ``V`` is the leave-one-domain-out validation run of ``(test, V)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.utils.data import DataLoader, SequentialSampler

from dabin.errors import DabinError
from datamodules.base import DomainDataModule
from datamodules.catalog import DATASETS, pacs_split_folder, read_pacs_splits
from datamodules.naming import domain_list, join_domains
from datamodules.tasks import parse_task
from datamodules.tree import Sample

__all__ = ["GeneralizationDataModule", "IN", "OUT"]

#: Suffix of a domain's 80 % part (trained on, for a training domain).
IN = "in"
#: Suffix of a domain's held-out 20 % part.
OUT = "out"


class GeneralizationDataModule(DomainDataModule):
    """Leave-one-domain-out data: labelled training domains, an unseen test domain.

    Args:
        root: Dataset folder; None or ``"embedded"`` for the embedded digits.
        test_domain: The held-out domain, by name or code; None: the dataset's first domain.
        train_domains: The training domains (a list, or joined: ``"Ar,Cl,Pr"``); None: every
            domain but the test domain. Leaving a further domain out makes a leave-one-domain-out
            validation run.
        task: Alternatively both at once, ``"Ar,Cl,Pr->Rw"`` (training domains -> test domain);
            overrides ``train_domains`` and ``test_domain``.
        image_size: Side of the square crops fed to the network.
        batch_size: Images per training domain and step (DomainBed: 32).
        num_workers: DataLoader worker processes per loader.
        seed: Seed of the 80/20 splits.
        cache_dir: Resized-image cache for image trees; rendering folder for the embedded data.
        image_lists: Optional image-list file or folder (see :class:`DomainDataModule`).
        steps_per_epoch: Training batches per epoch; None: one pass over the largest training part.
        resize_ratio: Evaluation short side / ``image_size`` (None: dataset preset).
        crop_scale: Smallest area fraction of the training crop (None: dataset preset).
        hflip: Random horizontal flips in training (None: dataset preset).
        official_splits: On a PACS tree whose authors' ``*_train_kfold.txt`` / ``*_crossval_kfold.txt``
            files are found (:func:`datamodules.catalog.pacs_split_folder`), use them as each domain's
            ``in`` / ``out`` parts (DomainBed uses its random 80/20 split instead: False).

    Attributes:
        train_names: The training domains' names, in dataset order.
        train_indices: Their dataset domain indices (the ``d`` of their samples), in the same order.
        test_name: The held-out test domain's name.
        unseen_names: Every domain not trained on, the test domain first.
        source_name: The training domains joined (``"Art,Clipart,Product"``), as records write them.
        target_name: Same as :attr:`test_name`.
        val_names: The evaluated sets during training (see the module docstring).
        eval_names: ``[test_name] + val_names``: the whole test domain, then the same sets.
        splits: ``{domain name: (in samples, out samples)}`` for every domain.
    """

    def __init__(
        self,
        root: str | None = None,
        test_domain: str | None = None,
        train_domains: str | Sequence[str] | None = None,
        task: str | None = None,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        cache_dir: str | None = None,
        image_lists: str | None = None,
        steps_per_epoch: int | None = None,
        resize_ratio: float | None = None,
        crop_scale: float | None = None,
        hflip: bool | None = None,
        official_splits: bool = True,
    ) -> None:
        super().__init__(root, image_size, batch_size, num_workers, seed, cache_dir, image_lists,
                         resize_ratio, crop_scale, hflip)
        if task is not None:
            sources, test_domain = parse_task(task)
            train_domains = sources
        if len(self.domains) < 2:
            raise DabinError(f"domain generalization needs at least two domains; {self.root} has only {self.domains}")
        test_index = self.tree.resolve(test_domain if test_domain is not None else self.domains[0])
        wanted = domain_list(train_domains, "train_domains")
        if wanted is None:
            train_indices = [i for i in range(len(self.domains)) if i != test_index]
        else:
            train_indices = [self.tree.resolve(name) for name in wanted]
            if test_index in train_indices:
                raise DabinError(f"the test domain {self.domains[test_index]!r} is also a training domain "
                                 f"(train_domains {join_domains(wanted)!r})")
            repeated = sorted({self.domains[i] for i in train_indices if train_indices.count(i) > 1})
            if repeated:
                raise DabinError(f"train_domains names {', '.join(map(repr, repeated))} twice")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise DabinError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
        self.train_indices = sorted(train_indices)
        self.train_names = [self.domains[i] for i in self.train_indices]
        self.test_name = self.domains[test_index]
        self.unseen_names = [self.test_name] + [name for name in self.domains
                                                if name not in self.train_names and name != self.test_name]
        self.source_name = join_domains(self.train_names)
        self.target_name = self.test_name
        self.splits: dict[str, tuple[list[Sample], list[Sample]]] = {}
        official = (official_splits and self.tree.dataset is DATASETS["pacs"]
                    and pacs_split_folder(self.tree) is not None)
        #: Where the parts come from: ``"official"`` (the PACS authors' files) or ``"random 80/20"``.
        self.split_source = "official" if official else "random 80/20"
        if official:
            self.splits = dict(read_pacs_splits(self.tree))
        for index, name in enumerate(self.domains):
            if name not in self.splits:
                self.splits[name] = self.domain_split(index)
        self.val_names = [f"{name}/{OUT}" for name in self.train_names]
        self.val_names += [f"{name}/{part}" for name in self.unseen_names for part in (IN, OUT)]
        self.eval_names = [self.test_name, *self.val_names]
        largest = max(len(self.splits[name][0]) for name in self.train_names)
        self.steps_per_epoch = steps_per_epoch or max(1, math.ceil(largest / batch_size))

    @property
    def num_train_domains(self) -> int:
        """Training domains (the DG losses' ``num_domains``)."""
        return len(self.train_names)

    def samples(self, name: str) -> list[Sample]:
        """The samples of an evaluated set: ``<domain>`` (all of it), ``<domain>/in`` or ``<domain>/out``."""
        domain, _, part = name.partition("/")
        if domain not in self.splits or part not in ("", IN, OUT):
            raise DabinError(f"unknown evaluated set {name!r}; this module evaluates {', '.join(self.eval_names)}")
        inside, outside = self.splits[domain]
        return inside + outside if not part else (inside if part == IN else outside)

    def train_dataloader(self) -> dict[str, DataLoader]:
        """``{training domain name: its in part}``, each cycled for ``steps_per_epoch`` batches."""
        return {name: self.cycled_loader(self.splits[name][0], self.steps_per_epoch) for name in self.train_names}

    def val_dataloader(self) -> list[DataLoader]:
        """One loader per name of :attr:`val_names`."""
        return [self.loader(self.dataset(self.samples(name), train=False)) for name in self.val_names]

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per name of :attr:`eval_names` (the whole test domain first)."""
        return [self.loader(self.dataset(self.samples(name), train=False)) for name in self.eval_names]

    def probe_dataloaders(self) -> dict[str, DataLoader]:
        """Whole-set loaders of :attr:`val_names` for an evaluation point, never split among processes."""
        loaders = {}
        for name in self.val_names:
            dataset = self.dataset(self.samples(name), train=False)
            loaders[name] = self.loader(dataset, sampler=SequentialSampler(dataset))
        return loaders

    def predict_dataloader(self) -> list[DataLoader]:
        """The test loaders."""
        return self.test_dataloader()
