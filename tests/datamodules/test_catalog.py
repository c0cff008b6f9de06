"""The known datasets: recognised trees and their checks, layout errors, PACS split files, replicas (the
adaptation benchmarks and their official splits: test_benchmarks.py)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from dabin.cli import main
from dabin.errors import DabinError
from dabin.testing.replicas import make_replica
from datamodules import DATASETS, DatasetWarning, DomainTree, identify, read_pacs_splits
from datamodules.catalog import dataset_info, pacs_split_folder
from datamodules.officehome import OFFICE_HOME_COUNTS, OFFICE_HOME_DOMAINS

from .conftest import image_bytes, make_tree

NEW = ("pacs", "vlcs", "terra_incognita", "domainnet")


def scan(root: Path, **kwargs: object) -> tuple[DomainTree, list[str]]:
    """Scan, returning the tree and its warnings (each also in ``tree.warnings``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = DomainTree.scan(root, **kwargs)
    assert [str(w.message) for w in caught if w.category is DatasetWarning] == tree.warnings
    return tree, tree.warnings


def count_warnings_only(info_name: str, notes: list[str]) -> bool:
    return all(note.startswith(f"{info_name} domain ") and " images, expected " in note for note in notes)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One image per class and domain of every new dataset (read-only: copy before changing)."""
    base = tmp_path_factory.mktemp("replicas")
    return {key: make_replica(key, base / key) for key in NEW}


@pytest.fixture()
def pacs(tmp_path: Path, replicas: dict[str, Path]) -> Path:
    """A PACS replica a test may change."""
    return Path(shutil.copytree(replicas["pacs"], tmp_path / "PACS"))


@pytest.mark.parametrize(("key", "total"), [("pacs", 9991), ("vlcs", 10729), ("terra_incognita", 24788),
                                            ("domainnet", 586575), ("office_home", 15588)])
def test_counts_sum_to_the_published_totals(key: str, total: int) -> None:
    info = DATASETS[key]
    assert info.total == sum(info.counts.values()) == total
    assert tuple(info.counts) == info.domains
    assert info.classes is not None and len(set(info.classes)) == len(info.classes) == info.num_classes


def test_office_home_entry_is_built_from_its_module() -> None:
    info = DATASETS["office_home"]
    assert info.domains is OFFICE_HOME_DOMAINS and info.counts == OFFICE_HOME_COUNTS and info.num_classes == 65
    assert dataset_info("Office-Home") is dataset_info("office_home") is info
    assert DATASETS["domainnet"].num_classes == 345 and dataset_info("TerraIncognita") is DATASETS["terra_incognita"]


@pytest.mark.parametrize("key", NEW)
def test_replica_scans_to_its_dataset(replicas: dict[str, Path], key: str) -> None:
    info = DATASETS[key]
    tree, notes = scan(replicas[key])
    assert tree.dataset is info and not tree.office_home
    assert tree.domain_names == list(info.domains)
    assert tree.class_names == sorted(info.classes or (), key=lambda c: (c.lower(), c))
    assert tree.counts() == {domain: info.num_classes for domain in info.domains}
    assert identify([d.folder.name for d in tree.domains]) is info
    # Only the counts differ from the release, one warning per domain with both numbers.
    assert len(notes) == len(info.domains) and count_warnings_only(info.name, notes)
    assert f"{info.name} domain {info.domains[0]!r} has {info.num_classes} images, expected " \
           f"{info.counts[info.domains[0]]} ({tree.root})" in notes


def test_identify() -> None:
    assert identify(["Art", "Real_World"]) is DATASETS["office_home"]
    assert identify(["clipart", "sketch"]) is DATASETS["domainnet"]
    assert identify(["Location 100", "LOCATION_38"]) is DATASETS["terra_incognita"]
    assert identify(["photo"]) is None and identify(["photo", "Photo"]) is None
    assert identify(["photo", "sketch", "Neon"]) is None


@pytest.mark.parametrize("spelling", ["Art_Painting", "art painting", "ArtPainting", "art-painting"])
def test_domain_spellings_resolve(pacs: Path, spelling: str) -> None:
    (pacs / "art_painting").rename(pacs / spelling)
    (pacs / "photo").rename(pacs / "Photo")
    tree, notes = scan(pacs)
    assert tree.dataset is DATASETS["pacs"] and count_warnings_only("PACS", notes)
    assert tree.domain_names == ["art_painting", "cartoon", "photo", "sketch"]
    assert [d.folder.name for d in tree.domains] == [spelling, "cartoon", "Photo", "sketch"]
    assert tree.resolve(spelling) == tree.resolve("art_painting") == tree.resolve("Ap") == 0
    # The split files name the official folders; they still find the renamed ones.
    assert {name: len(train) for name, (train, _) in read_pacs_splits(tree).items()}["art_painting"] == 7


def test_missing_domain_warns_with_numbers(pacs: Path) -> None:
    shutil.rmtree(pacs / "sketch")
    tree, notes = scan(pacs)
    assert tree.domain_names == ["art_painting", "cartoon", "photo"]
    assert notes[0] == f"PACS tree {pacs} has 3 of its 4 domains: missing 'sketch' (3929 images in the release)"
    assert count_warnings_only("PACS", notes[1:]) and len(notes) == 4


def test_class_mismatch_warns_with_numbers(pacs: Path) -> None:
    for domain in DATASETS["pacs"].domains:
        shutil.rmtree(pacs / domain / "person")
        shutil.copytree(pacs / domain / "dog", pacs / domain / "cat")
    tree, notes = scan(pacs)
    assert tree.dataset is DATASETS["pacs"]
    assert f"PACS tree {pacs} has 6 of its 7 classes: missing 'person'" in notes
    assert f"PACS tree {pacs} has 1 class folder(s) that are not PACS classes: 'cat'" in notes


def one_line_error(root: Path, *fragments: str) -> None:
    with pytest.raises(DabinError) as caught:
        DomainTree.scan(root)
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_class_folders_directly_under_root_name_the_layout(replicas: dict[str, Path], tmp_path: Path) -> None:
    # One domain folder given: the message names the folder above it.
    root = replicas["pacs"] / "photo"
    one_line_error(root, "found images directly in", "these are PACS classes and 'photo' is one of its domains",
                   f"give the folder above it, expected {root.parent}/<Domain>/<Class>/<image> with <Domain> one of "
                   "art_painting, cartoon, photo, sketch (PACS)")
    root = tmp_path / "camera_traps"  # root/<class>/<image>, the folder not named after a domain
    for class_name in DATASETS["terra_incognita"].classes or ():
        (root / class_name).mkdir(parents=True)
        (root / class_name / "0.jpg").write_bytes(image_bytes(0))
    one_line_error(root, f"these are TerraIncognita classes: expected {root}/<Domain>/<Class>/<image>",
                   "location_100, location_38, location_43, location_46")


def test_dabin_data_gives_the_layout_error_as_one_line(capsys: pytest.CaptureFixture[str],
                                                       replicas: dict[str, Path]) -> None:
    assert main(["data", str(replicas["vlcs"] / "SUN09")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert "<Domain>/<Class>/<image> with <Domain> one of Caltech101, LabelMe, SUN09, VOC2007" in captured.err


def test_unknown_extra_domain_is_an_error(pacs: Path) -> None:
    shutil.copytree(pacs / "sketch", pacs / "doodle")
    one_line_error(pacs, f"PACS tree {pacs}: folder 'doodle' is not a PACS domain; expected {pacs}/<Domain>/<Class>/",
                   "one of art_painting, cartoon, photo, sketch")


def test_one_domain_spelled_twice_is_an_error(pacs: Path) -> None:
    shutil.copytree(pacs / "photo", pacs / "PHOTO")
    one_line_error(pacs, "folders 'PHOTO' and 'photo' are both domain 'photo'")


def test_classes_and_domains_swapped_is_an_error(tmp_path: Path) -> None:
    spec = {c: {d: 1 for d in ("art_painting", "cartoon")} for c in ("dog", "elephant", "giraffe", "guitar")}
    root = make_tree(tmp_path / "swapped", spec)
    one_line_error(root, "holds <Class>/<Domain> folders", "one of art_painting, cartoon, photo, sketch")


def test_other_trees_are_not_a_known_dataset(small_tree: Path, tmp_path: Path) -> None:
    # PACS's domain words over other classes: someone's own dataset, left alone.
    tree, notes = scan(small_tree)
    assert tree.dataset is None and notes == [] and tree.domain_names == ["cartoon", "photo", "sketch"]
    # Office-Home keeps its rules: another folder beside its four makes a custom tree, as before.
    root = make_tree(tmp_path / "oh", {d: {"Mug": 1, "Pen": 1} for d in (*OFFICE_HOME_DOMAINS, "Extra")})
    tree, _ = scan(root)
    assert tree.dataset is None and not tree.office_home and len(tree.domains) == 5


def test_pacs_split_files_read_into_the_trees_samples(tmp_path: Path) -> None:
    root = make_replica("pacs", tmp_path / "PACS", per_class=3)
    tree, _ = scan(root)
    assert pacs_split_folder(tree) == root
    splits = read_pacs_splits(tree)
    assert list(splits) == ["art_painting", "cartoon", "photo", "sketch"]
    # The authors' labels 1..7 are dabin's 0-based alphabetical class indices plus one.
    assert tree.class_names == list(DATASETS["pacs"].classes or ())
    for d, (name, (train, val)) in enumerate(splits.items()):
        assert (len(train), len(val)) == (14, 7) and not {id(s) for s in train} & {id(s) for s in val}
        assert {id(s) for s in train + val} == {id(s) for s in tree.domain_samples(d)}
        listed = {}
        for split in ("train", "crossval"):
            for line in (root / f"{name}_{split}_kfold.txt").read_text().splitlines():
                path, label = line.rsplit(maxsplit=1)
                listed[path] = int(label)
        for sample in train + val:
            relative = f"{name}/{sample.key}"
            assert sample.domain == d and listed[relative] == sample.label + 1
            assert tree.class_names[sample.label] == sample.key.split("/")[0]


def test_pacs_split_files_elsewhere_and_their_errors(tmp_path: Path, pacs: Path) -> None:
    splits = tmp_path / "labels"  # not where dabin looks (the root, its parent, splits/ in either)
    splits.mkdir()
    for path in pacs.glob("*_kfold.txt"):
        path.rename(splits / path.name)
    tree, _ = scan(pacs)
    assert pacs_split_folder(tree) is None
    with pytest.raises(DabinError, match="no PACS split files"):
        read_pacs_splits(tree)
    assert len(read_pacs_splits(tree, splits)["sketch"][0]) == 7
    bad = splits / "photo_train_kfold.txt"
    bad.write_text("/data/pacs/photo/dog/00001.jpg 2\n")  # a path prefix is fine, the label is not
    with pytest.raises(DabinError, match=r"photo_train_kfold\.txt:1: label 2 is not the class of folder 'dog'"):
        read_pacs_splits(tree, splits)
    bad.write_text("photo/dog/99999.jpg 1\n")
    with pytest.raises(DabinError, match=r"photo_train_kfold\.txt:1: listed image photo/dog/99999\.jpg is not in"):
        read_pacs_splits(tree, splits)
    (splits / "cartoon_crossval_kfold.txt").unlink()
    with pytest.raises(DabinError, match=r"PACS split file .*cartoon_crossval_kfold\.txt does not exist"):
        read_pacs_splits(tree, splits)


def test_dabin_data_names_the_dataset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = make_replica("vlcs", tmp_path / "VLCS", per_class=5)
    assert main(["data", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"dataset {root}", "recognised as VLCS (release: 4 domains, 5 classes, 10729 images)"]
    assert main(["data", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dataset"] == {"name": "VLCS", "domains": 4, "classes": 5, "images": 10729}
    assert [d["name"] for d in data["domains"]] == ["Caltech101", "LabelMe", "SUN09", "VOC2007"]


def test_catalog_re_exports_the_facts_and_the_pacs_reader() -> None:
    # The facts live in presets.py and the list readers in official.py; modules importing them from
    # catalog.py (the DG module, the DG report) get the same objects.
    from datamodules import catalog, official, presets

    assert catalog.DATASETS is presets.DATASETS and catalog.DatasetInfo is presets.DatasetInfo
    assert catalog.read_pacs_splits is official.read_pacs_splits
    assert catalog.pacs_split_folder is official.pacs_split_folder
