"""How a domain is split: the paper's 80/20 (Table 4), the benchmarks' official splits, mixed-domain k-fold (Table 3).

The random splits depend only on the file set (relative paths, labels), the seed and, for the
80/20 split, the domain's name: never on where the tree lives, on listing order, or on which task
asks for it. :func:`domain_split` is the one place that says what the train and test parts of a
domain are for a transfer task (:class:`~datamodules.transfer.TransferDataModule`; the DG module
asks it for the random split, DomainBed's protocol):

- ``"random"``: :func:`transfer_split`, the BIN paper's seeded class-stratified 80/20.
- ``"official"``, the split the papers reporting on a benchmark use
  (:attr:`~datamodules.presets.DatasetInfo.transfer_protocol`):

  - Office-31, VisDA-2017 (``"transductive"``): every image of a domain is its train part and
    its test part. A source trains on all its labelled images; the target's images are the
    unlabelled training data and the test set (the standard unsupervised protocol: Ganin &
    Lempitsky, ICML 2015; Long et al., ICML 2015; CDAN, NeurIPS 2018; tllib).
  - DomainNet, the digits (``"lists"``): train = the domain's ``<domain>_train.txt``, test = its
    ``<domain>_test.txt`` (Peng et al., ICCV 2019; tllib's DomainNet; the digits' own train/test
    sets), read by :func:`datamodules.official.read_official_lists`.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from dabin.errors import DabinError
from datamodules.naming import domain_key
from datamodules.official import read_official_lists
from datamodules.presets import DATASETS, DatasetInfo
from datamodules.tree import DatasetWarning, DomainTree, Sample

__all__ = ["SPLITS", "TEST_FRACTION", "Split", "default_split", "describe_split", "domain_split", "kfold_split",
           "resolve_split", "transfer_split"]

#: How a transfer task splits its domains (module docstring).
Split = Literal["random", "official"]
#: The values of :data:`Split`.
SPLITS: tuple[Split, ...] = ("random", "official")

#: Share of each domain held out as its test split (the paper's 80/20).
TEST_FRACTION = 0.2


def _domain_seed(seed: int, domain_name: str) -> int:
    # A stable hash (not Python's salted hash()) so every process and machine splits alike, and
    # the spelling of the folder ("Real_World") does not change the split.
    return (seed * 1_000_003 + zlib.crc32(domain_key(domain_name).encode())) % 2**32


def _unstratifiable(labels: Sequence[int], n_test: int) -> str | None:
    """Why a stratified split with ``n_test`` held-out items is impossible (None if it is possible)."""
    counts = Counter(labels)
    small = sorted(label for label, count in counts.items() if count < 2)
    if small:
        return f"{len(small)} of {len(counts)} classes have a single image (e.g. class {small[0]})"
    if n_test < len(counts) or len(labels) - n_test < len(counts):
        return f"{len(labels)} images cannot put each of its {len(counts)} classes on both sides of an 80/20 split"
    return None


def transfer_split(samples: Sequence[Sample], domain_name: str, seed: int) -> tuple[list[int], list[int]]:
    """Split one domain 80/20 at random, stratified by class where the domain allows it.

    The split depends only on ``(domain_name, seed)`` and the domain's files, so a domain is split
    the same whether it is the source of one task or the target of another. A domain too small to
    stratify (a class with a single image, or fewer test images than classes) is split without
    stratification, with one :class:`~datamodules.tree.DatasetWarning` line saying so.

    Args:
        samples: The samples of one domain (any order).
        domain_name: The domain's display name (mixed into the seed).
        seed: Split seed.

    Returns:
        ``(train, test)``: positions into ``samples``, each sorted.

    Raises:
        DabinError: The domain has fewer than 2 images, so one side would be empty.
    """
    if len(samples) < 2:
        raise DabinError(f"domain {domain_name!r} is too small for the 80/20 split: {len(samples)} image(s), "
                         "at least 2 needed")
    # Sort by relative path first so the result is independent of the order samples come in.
    order = sorted(range(len(samples)), key=lambda i: samples[i].key)
    labels = [samples[i].label for i in order]
    # sklearn's own rounding of test_size (ceil), so the check below matches what it will do.
    why = _unstratifiable(labels, math.ceil(TEST_FRACTION * len(order)))
    if why:
        warnings.warn(f"domain {domain_name!r}: {why}; its 80/20 split is not stratified by class",
                      DatasetWarning, stacklevel=2)
    train, test = train_test_split(order, test_size=TEST_FRACTION, stratify=None if why else labels,
                                   random_state=_domain_seed(seed, domain_name))
    return sorted(train), sorted(test)


def kfold_split(samples: Sequence[Sample], k: int, seed: int) -> list[list[int]]:
    """Partition samples of all domains into k folds stratified by (domain, class).

    Where the data are too small for that (every (domain, class) has fewer than ``k`` images), the
    folds are an unstratified shuffled partition, with one :class:`~datamodules.tree.DatasetWarning`.

    Args:
        samples: Samples of every domain, in tree order.
        k: Number of folds (at least 2, at most the number of samples).
        seed: Shuffle seed.

    Returns:
        ``k`` lists of positions into ``samples``, each sorted; together they partition the range.

    Raises:
        DabinError: ``k`` below 2 or above the number of samples.

    Warns:
        DatasetWarning: Once, when the data are too small to stratify (every group below ``k``).
    """
    if k < 2:
        raise DabinError(f"k-fold needs k >= 2, got k={k}")
    if k > len(samples):
        raise DabinError(f"k-fold with k={k} needs at least {k} images, found {len(samples)}")
    order = sorted(range(len(samples)), key=lambda i: (samples[i].domain, samples[i].key))
    num_classes = max(s.label for s in samples) + 1
    strata = np.array([samples[i].domain * num_classes + samples[i].label for i in order])
    largest = max(Counter(strata.tolist()).values())
    if largest < k:
        # StratifiedKFold refuses when every (domain, class) is smaller than k; so small a dataset
        # still partitions into k folds, just not stratified.
        warnings.warn(f"k-fold with k={k}: every (domain, class) has fewer than {k} images (at most {largest}); "
                      "the folds are not stratified", DatasetWarning, stacklevel=2)
        folds: KFold | StratifiedKFold = KFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        # StratifiedKFold warns when some (domain, class) has fewer than k images; the folds still
        # partition the data, so a tiny group is not an error.
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        parts = [held_out for _, held_out in folds.split(np.zeros(len(order)), strata)]
    return [sorted(order[j] for j in held_out) for held_out in parts]


def default_split(dataset: DatasetInfo | None) -> Split:
    """``"official"`` for a dataset with a published transfer protocol, else ``"random"`` (Office-Home, the
    embedded digits, any other tree: the BIN paper's 80/20)."""
    return "official" if dataset is not None and dataset.transfer_protocol is not None else "random"


def resolve_split(split: str | None, dataset: DatasetInfo | None, root: object) -> Split:
    """The split a transfer task uses: ``split`` checked, or the dataset's default for None.

    Args:
        split: ``"random"``, ``"official"`` or None.
        dataset: The tree's recognised dataset, if any.
        root: The tree's root (for messages).

    Raises:
        DabinError: Another value, or ``"official"`` for a dataset without an official split.
    """
    if split is None:
        return default_split(dataset)
    if split not in SPLITS:
        raise DabinError(f"unknown split {split!r}; use 'random' or 'official' "
                         "(or leave it out: the dataset's default)")
    if split == "official" and default_split(dataset) != "official":
        what = dataset.name if dataset is not None else f"{root} (not a dataset dabin knows by name)"
        having = ", ".join(info.name for info in DATASETS.values() if info.transfer_protocol is not None)
        raise DabinError(f"split='official': {what} has no official transfer split (datasets with one: {having}); "
                         f"use split='random'")
    return "official" if split == "official" else "random"


def describe_split(split: Split, dataset: DatasetInfo | None) -> str:
    """What a split is, one line for records: ``"random 80/20"``, ``"official: every image of each domain (...)"``."""
    if split == "random" or dataset is None or dataset.transfer_protocol is None:
        return "random 80/20"
    if dataset.transfer_protocol == "transductive":
        return f"official: every image of each domain (the transductive protocol of {dataset.name})"
    return f"official: the <domain>_train.txt / <domain>_test.txt lists of {dataset.name}"


def domain_split(tree: DomainTree, index: int, split: Split, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A domain's ``(train, test)`` samples for a transfer task (module docstring), in tree order.

    Args:
        tree: The scanned tree.
        index: The domain's index.
        split: ``"random"`` or ``"official"`` (:func:`resolve_split`).
        seed: Seed of the random split.

    Raises:
        DabinError: ``"official"`` on a dataset without one; a missing or wrong official list
            (:func:`~datamodules.official.read_official_lists`).

    Warns:
        DatasetWarning: Images of the domain that no official list names (with the count).
    """
    samples = tree.domain_samples(index)
    if resolve_split(split, tree.dataset, tree.root) == "random":
        train, test = transfer_split(samples, tree.domains[index].name, seed)
        return [samples[i] for i in train], [samples[i] for i in test]
    if tree.dataset is not None and tree.dataset.transfer_protocol == "transductive":
        return samples, list(samples)
    parts, notes = read_official_lists(tree, index)
    for note in notes:
        warnings.warn(note, DatasetWarning, stacklevel=2)
    return parts
