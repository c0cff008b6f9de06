"""The adaptation benchmarks as presets: Office-31, VisDA-2017, DomainNet's lists, the digits; official splits."""

from __future__ import annotations

import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

import pytest

from dabin.errors import DabinError
from dabin.testing.replicas import make_replica, make_scaled_replica
from datamodules import DATASETS, DatasetWarning, DomainTree, GeneralizationDataModule, TransferDataModule
from datamodules.presets import class_counts
from datamodules.splits import transfer_split

from .conftest import image_bytes

BENCHMARKS = ("office_31", "visda2017", "domainnet", "digits")


def scan(root: Path) -> DomainTree:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = DomainTree.scan(root)
    assert [str(w.message) for w in caught if w.category is DatasetWarning] == tree.warnings
    return tree


def transfer(root: Path, **kwargs: object) -> TransferDataModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # replicas: counts differ from the release
        return TransferDataModule(root=str(root), num_workers=0, image_size=8, **kwargs)


def one_line(call: object, message: str) -> None:
    """``call()`` raises a DabinError whose whole text is ``message``."""
    with pytest.raises(DabinError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        call()  # type: ignore[operator]
    assert str(caught.value) == message


def list_lines(path: Path) -> list[tuple[str, int]]:
    pairs = []
    for line in path.read_text().splitlines():
        relative, label = line.rsplit(maxsplit=1)
        pairs.append((relative, int(label)))
    return pairs


def keys(samples: list) -> list[str]:
    return [sample.key for sample in samples]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Replicas of the four benchmarks (read-only: copy before changing)."""
    base = tmp_path_factory.mktemp("benchmarks")
    return {key: make_replica(key, base / key, per_class=1 if key == "domainnet" else 2) for key in BENCHMARKS}


def copy(replicas: dict[str, Path], key: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(replicas[key], tmp_path / key))


@pytest.mark.parametrize(("key", "total", "lists"), [("office_31", 4110, None), ("visda2017", 207785, None),
                                                     ("domainnet", 586575, (409832, 176743)),
                                                     ("digits", 178587, (140548, 38039))])
def test_presets_sum_to_the_published_counts(key: str, total: int, lists: tuple[int, int] | None) -> None:
    info = DATASETS[key]
    assert info.total == total and tuple(info.counts) == info.domains
    assert info.classes is not None and len(set(info.classes)) == len(info.classes) == info.num_classes
    if lists is not None:  # train + test lists of every domain are the domain
        assert tuple(map(sum, zip(*info.split_sizes.values()))) == lists
        assert all(sum(info.split_sizes[d]) == info.counts[d] for d in info.domains)
    for domain in info.domains:  # the per-class counts read from the sources sum to the published ones
        official = zip(("train", "test"), info.split_sizes.get(domain, ()))
        for split, expected in [("all", info.counts[domain]), *official]:
            counts = class_counts(key, domain, split)
            assert counts is None or (len(counts) == info.num_classes and sum(counts) == expected)
    assert class_counts("office_31", "amazon")[:3] == (92, 82, 72)  # back_pack, bike, bike_helmet


@pytest.mark.parametrize("key", BENCHMARKS)
def test_replica_is_recognised(replicas: dict[str, Path], key: str) -> None:
    info = DATASETS[key]
    tree = scan(replicas[key])
    per_class = 1 if key == "domainnet" else 2
    assert tree.dataset is info and tree.domain_names == list(info.domains)
    assert tree.class_names == sorted(info.classes or (), key=lambda c: (c.lower(), c))
    assert tree.counts() == {domain: per_class * info.num_classes for domain in info.domains}
    aside = [f"set aside {tree.root / 'test'}: VisDA-2017's unlabelled test images (test/<trunk>/), not a labelled "
             "domain"] if key == "visda2017" else []
    counts = [f"{info.name} domain {d!r} has {per_class * info.num_classes} images, expected {info.counts[d]} "
              f"({tree.root})" for d in info.domains]
    assert tree.warnings == aside + counts and tree.ignored == []  # image_list.txt files are read, not ignored


def test_office_31_archive_and_flat_copies(replicas: dict[str, Path], tmp_path: Path) -> None:
    archive = tmp_path / "office31" / "domain_adaptation_images"
    shutil.copytree(replicas["office_31"], archive)
    tree = scan(archive.parent)
    assert tree.root == archive and tree.dataset is DATASETS["office_31"]
    sample = tree.domain_samples(0)[0]
    assert sample.key == "images/back_pack/frame_0001.jpg" and sample.path == archive / "amazon" / sample.key
    assert tree.class_names[sample.label] == "back_pack"
    for domain in DATASETS["office_31"].domains:  # a copy without the images/ level reads the same
        (archive / domain / "images").rename(archive / domain / "flat")
        for folder in (archive / domain / "flat").iterdir():
            folder.rename(archive / domain / folder.name)
        (archive / domain / "flat").rmdir()
    flat = scan(archive)
    assert flat.counts() == tree.counts() and flat.domain_samples(0)[0].key == "back_pack/frame_0001.jpg"
    # Image lists that name the images/ level (CDTrans's ./amazon/images/<class>/frame_0001.jpg <label>).
    lists = tmp_path / "amazon_list.txt"
    lists.write_text("".join(f"./amazon/{s.key} {s.label}\n" for s in tree.domain_samples(0)))  # key: images/...
    listed = DomainTree.scan(replicas["office_31"], image_lists=lists)
    assert keys(listed.samples) == keys(tree.domain_samples(0)) and listed.class_names == tree.class_names


def test_official_split_of_office_31_is_every_image(replicas: dict[str, Path]) -> None:
    data = transfer(replicas["office_31"], task="amazon->webcam", test_all_splits=True)
    assert (data.split, data.split_source) == ("official", "official: every image of each domain (the transductive "
                                                           "protocol of Office-31)")
    tree = data.tree
    for name, index in (("amazon", 0), ("webcam", 2)):
        train, test = data.splits[name]
        assert keys(train) == keys(test) == keys(tree.domain_samples(index)) and len(train) == 62
    assert keys(data.val_dataloader().dataset.samples) == keys(tree.domain_samples(0))  # nothing held out
    assert [len(loader.dataset) for loader in data.test_dataloader()] == [62, 62, 62, 62]
    random = transfer(replicas["office_31"], task="amazon->webcam", split="random")
    assert random.split_source == "random 80/20" and len(random.splits["amazon"][1]) == 13  # ceil(0.2 * 62)


def test_official_split_of_visda_reads_the_whole_domains(replicas: dict[str, Path]) -> None:
    data = transfer(replicas["visda2017"])
    assert (data.source_name, data.target_name, data.split) == ("train", "validation", "official")
    for name in ("train", "validation"):
        listed = [path for path, _ in list_lines(replicas["visda2017"] / name / "image_list.txt")]
        assert keys(data.splits[name][0]) == keys(data.splits[name][1]) == sorted(listed) and len(listed) == 24
    assert data.steps_per_epoch == 1  # ceil(24 / 32)


@pytest.mark.parametrize(("key", "task"), [("domainnet", "clipart->real"), ("digits", "MNIST->USPS")])
def test_official_split_of_domainnet_and_digits_reads_their_lists(replicas: dict[str, Path], key: str,
                                                                  task: str) -> None:
    root = replicas[key]
    data = transfer(root, task=task)
    assert data.split == "official"
    assert data.split_source == f"official: the <domain>_train.txt / <domain>_test.txt lists of {DATASETS[key].name}"
    for name in (data.source_name, data.target_name):
        train, test = (list_lines(root / f"{name}_{split}.txt") for split in ("train", "test"))
        domain = data.tree.domain_samples(data.domains.index(name))
        for part, listed in zip(data.splits[name], (train, test)):  # the listed images, in tree order
            paths = {path for path, _ in listed}
            assert keys(part) == [s.key for s in domain if f"{name}/{s.key}" in paths] and len(part) == len(paths)
        total = DATASETS[key].num_classes * (1 if key == "domainnet" else 2)
        release_train, release_test = DATASETS[key].split_sizes[name]
        assert (len(train) + len(test), len(test)) == (total, total * release_test // (release_train + release_test))
        official = DATASETS[key].classes or ()
        assert all(official[label] == path.split("/")[1] for path, label in train + test)
    assert keys(data.val_dataloader().dataset.samples) == keys(data.splits[data.source_name][1])
    assert keys(data.target_dataloader().dataset.samples) == keys(data.splits[data.target_name][0])


def test_default_split_is_random_on_office_home_embedded_and_other_trees(office_home_small: Path,
                                                                         small_tree: Path) -> None:
    for root in (office_home_small, small_tree):
        data = transfer(root)
        assert (data.split, data.split_source) == ("random", "random 80/20")
        assert data.splits == {name: data.domain_split(data.domains.index(name)) for name in data.splits}
    one_line(lambda: transfer(office_home_small, split="official"),
             "split='official': Office-Home has no official transfer split (datasets with one: DomainNet, "
             "Office-31, VisDA-2017, Digits); use split='random'")
    one_line(lambda: transfer(small_tree, split="official"),
             f"split='official': {small_tree} (not a dataset dabin knows by name) has no official transfer split "
             "(datasets with one: DomainNet, Office-31, VisDA-2017, Digits); use split='random'")
    one_line(lambda: transfer(small_tree, split="80/20"),
             "unknown split '80/20'; use 'random' or 'official' (or leave it out: the dataset's default)")


def test_generalization_keeps_the_random_split_on_domainnet(replicas: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # one image per class: not stratified
        data = GeneralizationDataModule(root=str(replicas["domainnet"]), test_domain="sketch", num_workers=0, seed=3)
        tree = data.tree
        for index, name in enumerate(tree.domain_names):
            samples = tree.domain_samples(index)
            train, test = transfer_split(samples, name, 3)
            assert keys(data.splits[name][0]) == keys([samples[i] for i in train])
            assert keys(data.splits[name][1]) == keys([samples[i] for i in test])
    assert data.split_source == "random 80/20"


def test_layout_errors_name_the_layout_and_the_first_misfit(replicas: dict[str, Path], tmp_path: Path) -> None:
    office = replicas["office_31"]
    classes = Path(shutil.copytree(office / "amazon" / "images", tmp_path / "classes"))
    one_line(lambda: DomainTree.scan(classes),
             f"expected {classes}/<domain>/<class>/<image>, found images directly in {classes}/back_pack (a class "
             "folder at domain level: put single-domain class folders inside a domain folder); these are Office-31 "
             f"classes: expected {classes}/<Domain>/images/<Class>/<image> with <Domain> one of amazon, dslr, webcam "
             "(Office-31)")
    one_line(lambda: DomainTree.scan(office / "amazon"),
             f"expected {office}/amazon/<domain>/<class>/<image>, found only {office}/amazon/images, one domain's "
             "images folder; these are Office-31 classes and 'amazon' is one of its domains: give the folder above "
             f"it, expected {office}/<Domain>/images/<Class>/<image> with <Domain> one of amazon, dslr, webcam "
             "(Office-31)")
    stray = copy(replicas, "office_31", tmp_path)
    shutil.copytree(stray / "dslr", stray / "caltech")
    one_line(lambda: DomainTree.scan(stray),
             f"Office-31 tree {stray}: folder 'caltech' is not an Office-31 domain; expected "
             f"{stray}/<Domain>/images/<Class>/<image> with <Domain> one of amazon, dslr, webcam (Office-31)")
    visda = copy(replicas, "visda2017", tmp_path)
    shutil.rmtree(visda / "train")
    one_line(lambda: DomainTree.scan(visda),
             f"VisDA-2017 tree {visda} lacks domain 'train' (no folder {visda}/train); expected "
             f"{visda}/<Domain>/<Class>/<image> with <Domain> one of train, validation (VisDA-2017)")


def test_visda_image_lists_are_checked_at_scan(replicas: dict[str, Path], tmp_path: Path) -> None:
    root = copy(replicas, "visda2017", tmp_path)
    listed = root / "validation" / "image_list.txt"
    lines = listed.read_text().splitlines()
    listed.write_text("\n".join(lines[1:]) + "\n")  # an image the list does not name: a warning with the count
    tree = scan(root)
    assert f"VisDA-2017 domain 'validation': 1 image(s) in {root}/validation are in no official list ({listed}); " \
           "the official split leaves them out" in tree.warnings
    listed.write_text("\n".join(lines) + "\ncar/car_9.jpg 3\n")
    one_line(lambda: DomainTree.scan(root), f"{listed}:25: listed image car/car_9.jpg is not in {root}/validation")
    # A test/ of class folders is someone's own split, not VisDA's unlabelled test set: a stray domain.
    shutil.rmtree(root / "test")
    shutil.copytree(root / "validation", root / "test")
    listed.write_text("\n".join(lines) + "\n")
    one_line(lambda: DomainTree.scan(root), f"VisDA-2017 tree {root}: folder 'test' is not a VisDA-2017 domain; "
             f"expected {root}/<Domain>/<Class>/<image> with <Domain> one of train, validation (VisDA-2017)")


def test_official_list_errors(replicas: dict[str, Path], tmp_path: Path) -> None:
    root = copy(replicas, "digits", tmp_path)
    task = {"task": "MNIST->USPS"}
    (root / "USPS" / "3" / "extra_00000.png").write_bytes(image_bytes(0, fmt="PNG"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = TransferDataModule(root=str(root), num_workers=0, **task)
    assert f"Digits domain 'USPS': 1 image(s) in {root}/USPS are in no official list (USPS_train.txt / " \
           "USPS_test.txt); the official split leaves them out" in [str(w.message) for w in caught]
    assert len(data.splits["USPS"][0]) == len(list_lines(root / "USPS_train.txt"))  # the extra image: in neither
    test_list = root / "USPS_test.txt"
    kept = test_list.read_text()
    test_list.write_text(kept + "USPS/3/test_99999.png 3\n")
    one_line(lambda: transfer(root, **task),
             f"{test_list}:{len(kept.splitlines()) + 1}: listed image USPS/3/test_99999.png is not in {root}")
    three = next(path for path, label in list_lines(root / "USPS_train.txt") if label == 3)
    test_list.write_text(f"{three} 4\n")
    one_line(lambda: transfer(root, **task), f"{test_list}:1: label 4 is not the class of folder '3' (label 3; Digits "
             "labels 0..9 follow its class order: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)")
    test_list.unlink()
    one_line(lambda: transfer(root, **task),
             f"the official split of Digits needs {test_list} (beside {root}/USPS_train.txt)")
    for path in root.glob("*.txt"):  # tllib keeps the lists in image_list/ beside the domains
        (root / "image_list").mkdir(exist_ok=True)
        path.rename(root / "image_list" / path.name)
    (root / "image_list" / "USPS_test.txt").write_text(kept)
    data = transfer(root, **task)
    assert f"set aside {root}/image_list: tllib's folder of image lists" in data.tree.warnings
    assert len(data.splits["USPS"][1]) == len(kept.splitlines())
    shutil.rmtree(root / "image_list")
    one_line(lambda: transfer(root, **task), f"the official split of Digits needs {root}/MNIST_train.txt (also looked "
             f"in {root.parent}, {root}/image_list, {root.parent}/image_list)")


def test_scaled_replica_has_the_release_counts(tmp_path: Path) -> None:
    root = make_scaled_replica("office_31", tmp_path / "office31")
    tree = scan(root)
    assert tree.counts() == DATASETS["office_31"].counts and tree.warnings == []
    per_class = Counter((sample.domain, sample.label) for sample in tree.samples)
    assert tuple(per_class[0, label] for label in range(31)) == class_counts("office_31", "amazon")
    assert os.stat(tree.samples[0].path).st_nlink == 92  # back_pack's images are one file
    digits = make_scaled_replica("digits", tmp_path / "digits", scale=0.01)
    for domain, (train, test) in DATASETS["digits"].split_sizes.items():
        listed = [len(list_lines(digits / f"{domain}_{split}.txt")) for split in ("train", "test")]
        assert listed == [round(train / 100), round(test / 100)]
    data = transfer(digits, task="USPS->MNIST")
    assert [len(part) for part in data.splits["USPS"]] == [73, 20]  # 7,291 and 2,007 at 1 %
    usps = Counter(label for _, label in list_lines(digits / "USPS_train.txt"))
    real = class_counts("digits", "USPS", "train") or ()
    assert all(abs(usps[digit] - real[digit] / 100) < 1 for digit in range(10))
    visda = scan(make_scaled_replica("visda2017", tmp_path / "visda", scale=0.01))
    assert visda.counts() == {"train": 1524, "validation": 554}
    assert sum(1 for _ in (tmp_path / "visda" / "test").glob("trunk*/*.jpg")) == 724
    with pytest.raises(ValueError, match=r"^scale 0.001 gives DomainNet domain 'clipart' 49 images, fewer than its "
                       r"345 classes$"):
        make_scaled_replica("domainnet", tmp_path / "domainnet", scale=0.001)
