"""The 80/20 transfer split and the mixed-domain k-fold split."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest

from dabin.errors import DabinError
from datamodules import DatasetWarning, DomainTree, kfold_split, transfer_split

from .conftest import office_home_paths, write_files


@pytest.fixture(scope="module")
def tree(office_home: Path) -> DomainTree:
    return DomainTree.scan(office_home)


def keys(tree: DomainTree, domain: int, positions: list[int]) -> set[str]:
    samples = tree.domain_samples(domain)
    return {samples[i].key for i in positions}


def test_transfer_split_is_80_20_and_stratified(tree: DomainTree) -> None:
    for index, domain in enumerate(tree.domains):
        samples = tree.domain_samples(index)
        train, test = transfer_split(samples, domain.name, seed=0)
        assert sorted(train + test) == list(range(len(samples)))  # a partition
        assert abs(len(test) - 0.2 * len(samples)) <= 1
        per_class = Counter(samples[i].label for i in test)
        totals = Counter(s.label for s in samples)
        for label, total in totals.items():
            assert abs(per_class[label] - 0.2 * total) <= 1.01, (domain.name, label)


def test_transfer_split_depends_on_seed_and_domain_only(tree: DomainTree, tmp_path: Path) -> None:
    art = tree.domain_samples(0)
    first = transfer_split(art, "Art", seed=3)
    assert transfer_split(list(reversed(art)), "Art", seed=3) != first  # positions follow the input...
    assert keys(tree, 0, first[1]) == {list(reversed(art))[i].key
                                       for i in transfer_split(list(reversed(art)), "Art", 3)[1]}  # ...keys do not
    assert transfer_split(art, "Art", seed=3) == first
    assert transfer_split(art, "Art", seed=4) != first
    # The same files elsewhere, with the other Real World spelling, split the same way.
    write_files(tmp_path, office_home_paths(folder="Real_World"))
    moved = DomainTree.scan(tmp_path)
    assert moved.domains[3].folder.name == "Real_World"
    assert keys(moved, 3, transfer_split(moved.domain_samples(3), "Real World", 0)[1]) == \
        keys(tree, 3, transfer_split(tree.domain_samples(3), "Real World", 0)[1])


def test_transfer_split_falls_back_when_a_class_has_one_image(small_tree: Path) -> None:
    for image in sorted((small_tree / "photo" / "cat").iterdir())[1:]:
        image.unlink()
    samples = DomainTree.scan(small_tree).domain_samples(1)
    with pytest.warns(DatasetWarning, match=r"domain 'photo': 1 of 3 classes have a single image .* not stratified"):
        train, test = transfer_split(samples, "photo", 0)
    assert sorted(train + test) == list(range(len(samples))) and len(test) == 3  # ceil(0.2 * 14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stratifiable domain does not warn
        transfer_split(DomainTree.scan(small_tree).domain_samples(0), "cartoon", 0)


def test_transfer_split_too_few_images_for_every_class_on_both_sides(tmp_path: Path) -> None:
    write_files(tmp_path, [f"{d}/{c}/{i}.jpg" for d in ("a", "b") for c in ("x", "y", "z") for i in range(3)])
    samples = DomainTree.scan(tmp_path).domain_samples(0)
    with pytest.warns(DatasetWarning, match="9 images cannot put each of its 3 classes on both sides"):
        train, test = transfer_split(samples, "a", 0)
    assert (len(train), len(test)) == (7, 2)
    with pytest.warns(DatasetWarning):
        assert transfer_split(samples, "a", 0) == (train, test)  # still deterministic
    with pytest.raises(DabinError, match="domain 'a' is too small for the 80/20 split: 1 image"):
        transfer_split(samples[:1], "a", 0)


def test_kfold_partitions_and_stratifies(tree: DomainTree) -> None:
    folds = kfold_split(tree.samples, k=5, seed=0)
    assert sorted(i for fold in folds for i in fold) == list(range(len(tree.samples)))
    groups = Counter((s.domain, s.label) for s in tree.samples)
    for fold in folds:
        held = Counter((tree.samples[i].domain, tree.samples[i].label) for i in fold)
        for group, total in groups.items():
            assert abs(held[group] - total / 5) < 1.01, group
    assert kfold_split(tree.samples, 5, 0) == folds
    assert kfold_split(tree.samples, 5, 1) != folds
    assert len(kfold_split(tree.samples, 3, 0)) == 3


def test_kfold_bad_k(small_tree: Path) -> None:
    samples = DomainTree.scan(small_tree).samples
    with pytest.raises(DabinError, match="k-fold needs k >= 2, got k=1"):
        kfold_split(samples, 1, 0)
    with pytest.raises(DabinError, match="k=100 needs at least 100 images, found 54"):
        kfold_split(samples, 100, 0)
    with pytest.warns(DatasetWarning, match="k=10: every .domain, class. has fewer than 10 images .at most 7.; "
                                            "the folds are not stratified"):
        folds = kfold_split(samples, 10, 0)
    assert sorted(i for fold in folds for i in fold) == list(range(54)) and len(folds) == 10
