"""The two splits of the paper: 80/20 per domain (Table 4) and mixed-domain k-fold (Table 3).

Both depend only on the file set (relative paths, labels), the seed and, for the 80/20 split, the
domain's name: never on where the tree lives, on listing order, or on which task asks for it.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from dabin.errors import DabinError
from datamodules.naming import domain_key
from datamodules.tree import Sample

__all__ = ["TEST_FRACTION", "kfold_split", "transfer_split"]

#: Share of each domain held out as its test split (the paper's 80/20).
TEST_FRACTION = 0.2


def _domain_seed(seed: int, domain_name: str) -> int:
    # A stable hash (not Python's salted hash()) so every process and machine splits alike, and
    # the spelling of the folder ("Real_World") does not change the split.
    return (seed * 1_000_003 + zlib.crc32(domain_key(domain_name).encode())) % 2**32


def transfer_split(samples: Sequence[Sample], domain_name: str, seed: int) -> tuple[list[int], list[int]]:
    """Split one domain 80/20 at random, stratified by class.

    The split depends only on ``(domain_name, seed)`` and the domain's files, so a domain is split
    the same whether it is the source of one task or the target of another.

    Args:
        samples: The samples of one domain (any order).
        domain_name: The domain's display name (mixed into the seed).
        seed: Split seed.

    Returns:
        ``(train, test)``: positions into ``samples``, each sorted.

    Raises:
        DabinError: A class has fewer than 2 images, so it cannot appear on both sides.
    """
    # Sort by relative path first so the result is independent of the order samples come in.
    order = sorted(range(len(samples)), key=lambda i: samples[i].key)
    labels = [samples[i].label for i in order]
    counts = Counter(labels)
    if min(counts.values()) < 2:
        label = min(counts, key=counts.__getitem__)
        # Name the lone image: its path shows the class folder, which a label number does not.
        lone = next(s.path for s in samples if s.label == label)
        raise DabinError(f"domain {domain_name!r}: class {label} has {counts[label]} image ({lone}); "
                         "the stratified 80/20 split needs at least 2 per class")
    train, test = train_test_split(order, test_size=TEST_FRACTION, stratify=labels,
                                   random_state=_domain_seed(seed, domain_name))
    return sorted(train), sorted(test)


def kfold_split(samples: Sequence[Sample], k: int, seed: int) -> list[list[int]]:
    """Partition samples of all domains into k folds stratified by (domain, class).

    Args:
        samples: Samples of every domain, in tree order.
        k: Number of folds (at least 2, at most the number of samples).
        seed: Shuffle seed.

    Returns:
        ``k`` lists of positions into ``samples``, each sorted; together they partition the range.

    Raises:
        DabinError: ``k`` below 2 or above the number of samples.
    """
    if k < 2:
        raise DabinError(f"k-fold needs k >= 2, got k={k}")
    if k > len(samples):
        raise DabinError(f"k-fold with k={k} needs at least {k} images, found {len(samples)}")
    order = sorted(range(len(samples)), key=lambda i: (samples[i].domain, samples[i].key))
    num_classes = max(s.label for s in samples) + 1
    strata = np.array([samples[i].domain * num_classes + samples[i].label for i in order])
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    # StratifiedKFold warns when a (domain, class) has fewer than k images; the folds still
    # partition the data, so a tiny group is not an error.
    try:
        parts = [held_out for _, held_out in folds.split(np.zeros(len(order)), strata)]
    except ValueError as error:  # every (domain, class) smaller than k
        raise DabinError(f"k-fold with k={k}: {error}") from None
    return [sorted(order[j] for j in held_out) for held_out in parts]
