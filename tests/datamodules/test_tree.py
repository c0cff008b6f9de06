"""Scanning multi-domain trees: Office-Home layouts, other trees, warnings and layout errors."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from dabin.errors import DabinError
from datamodules import OFFICE_HOME_COUNTS, DatasetWarning, DomainTree
from datamodules.officehome import lists_folder, office_home_list

from .conftest import image_bytes, office_home_paths, write_files


def scan_quietly(root: Path, **kwargs: object) -> DomainTree:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)  # a clean tree must not warn
        return DomainTree.scan(root, **kwargs)


def test_office_home_replica_has_the_official_counts(office_home: Path) -> None:
    tree = scan_quietly(office_home)
    assert tree.office_home
    assert tree.counts() == OFFICE_HOME_COUNTS
    assert [d.code for d in tree.domains] == ["Ar", "Cl", "Pr", "Rw"]
    assert tree.num_classes == 65 and tree.warnings == []
    # One alphabetical class index, equal to the labels of the official lists.
    by_path = {str(s.path.relative_to(tree.root)): s.label for s in tree.samples}
    for domain in ("Art", "Real World"):
        for path, label in office_home_list(domain)[::97]:
            assert by_path[path] == label


def test_archive_folder_and_its_parent_are_both_roots(office_home: Path) -> None:
    assert office_home.name == "OfficeHomeDataset_10072016"
    assert scan_quietly(office_home.parent).root == office_home
    (office_home.parent / "ImageInfo.csv").write_text("not an image")  # archives ship such files
    assert scan_quietly(office_home.parent).root == office_home


@pytest.mark.parametrize("spelling", ["Real_World", "RealWorld", "Real World"])
def test_real_world_spellings(tmp_path: Path, spelling: str) -> None:
    write_files(tmp_path, office_home_paths(classes=2, folder=spelling))
    with pytest.warns(DatasetWarning):  # 2 classes: counts differ from the release
        tree = DomainTree.scan(tmp_path)
    assert tree.domain_names == ["Art", "Clipart", "Product", "Real World"]
    assert tree.domains[3].folder.name == spelling
    for name in ("Rw", "rw", "Real World", "real_world", "RealWorld", spelling):
        assert tree.resolve(name) == 3
    assert tree.resolve("Cl") == tree.resolve("clipart") == 1


def test_count_difference_warns_with_domain_and_both_counts(office_home_small: Path) -> None:
    with pytest.warns(DatasetWarning) as caught:
        tree = DomainTree.scan(office_home_small)
    messages = [str(w.message) for w in caught]
    assert any("'Art'" in m and f"has {tree.counts()['Art']} images" in m and "expected 2427" in m
               for m in messages)
    assert len(tree.warnings) == 4 and set(tree.warnings) == set(messages)


def test_image_lists_select_files_and_map_spellings(tmp_path: Path, office_home_small: Path) -> None:
    # The packaged lists say "Real World/..."; the tree spells it "Real_World": still found.
    # Only the first 4 classes exist on disk, so cut the lists to those.
    lists = tmp_path / "lists"
    lists.mkdir()
    for source in sorted(lists_folder().glob("office_home_*.txt")):
        kept = [line for line in source.read_text().splitlines() if int(line.rsplit(maxsplit=1)[1]) < 4]
        (lists / source.name).write_text("\n".join(kept[::2]) + "\n")
    with pytest.warns(DatasetWarning):  # counts differ from the full release
        tree = DomainTree.scan(office_home_small, image_lists=str(lists))
    with pytest.warns(DatasetWarning):
        full = DomainTree.scan(office_home_small)
    listed = {line.rsplit(maxsplit=1)[0].replace("Real World/", "Real_World/")
              for f in lists.iterdir() for line in f.read_text().splitlines()}
    assert {str(s.path.relative_to(tree.root)) for s in tree.samples} == listed
    assert len(listed) < len(full.samples)
    assert tree.class_names == full.class_names
    assert tree.domain_names == full.domain_names


def test_image_list_errors(tmp_path: Path, small_tree: Path) -> None:
    bad_line = tmp_path / "bad.txt"
    bad_line.write_text("photo/bird/000.jpg\n")
    with pytest.raises(DabinError, match=r"bad\.txt:1: expected"):
        DomainTree.scan(small_tree, image_lists=str(bad_line))
    missing = tmp_path / "missing.txt"
    missing.write_text("photo/bird/000.jpg 0\nphoto/bird/999.jpg 0\n")
    with pytest.raises(DabinError, match=r"missing\.txt:2: listed image .*999\.jpg does not exist"):
        DomainTree.scan(small_tree, image_lists=str(missing))
    clash = tmp_path / "clash.txt"
    clash.write_text("photo/bird/000.jpg 0\nsketch/bird/000.jpg 1\n")
    with pytest.raises(DabinError, match="class 'bird' has label 1, but 0"):
        DomainTree.scan(small_tree, image_lists=str(clash))


def test_any_tree_works(small_tree: Path) -> None:
    tree = scan_quietly(small_tree)
    assert not tree.office_home
    assert tree.domain_names == ["cartoon", "photo", "sketch"]
    assert [d.code for d in tree.domains] == ["Ca", "Ph", "Sk"]
    assert tree.class_names == ["bird", "cat", "dog"]
    assert tree.counts() == {"cartoon": 18, "photo": 18, "sketch": 18}
    # Samples are ordered by domain, class, path; labels and domains index the lists.
    assert [s.domain for s in tree.samples] == sorted(s.domain for s in tree.samples)
    assert {(tree.domains[s.domain].name, tree.class_names[s.label]) for s in tree.samples} == {
        (d, c) for d in ("cartoon", "photo", "sketch") for c in ("bird", "cat", "dog")}


def test_non_image_files_are_ignored_and_counted(small_tree: Path) -> None:
    (small_tree / "photo" / "bird" / "notes.txt").write_text("x")
    (small_tree / "sketch" / "Thumbs.db").write_bytes(b"x")
    (small_tree / "sketch" / "cat" / ".DS_Store").write_bytes(b"x")  # hidden: not even counted
    with pytest.warns(DatasetWarning, match="ignored 2 non-image file"):
        tree = DomainTree.scan(small_tree)
    assert sorted(p.name for p in tree.ignored) == ["Thumbs.db", "notes.txt"]
    assert tree.counts()["photo"] == 18


def test_nested_images_inside_a_class_count(small_tree: Path) -> None:
    (small_tree / "photo" / "cat" / "more").mkdir()
    (small_tree / "photo" / "cat" / "more" / "x.png").write_bytes(image_bytes(1, fmt="PNG"))
    assert scan_quietly(small_tree).counts()["photo"] == 19


def test_unknown_domain_lists_the_found_ones(small_tree: Path) -> None:
    tree = scan_quietly(small_tree)
    with pytest.raises(DabinError, match=r"unknown domain 'paintng' in .*; found: cartoon \(Ca\), photo \(Ph\), sketch \(Sk\)"):
        tree.resolve("paintng")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DabinError, match=f"dataset root {tmp_path / 'nope'} does not exist"):
        DomainTree.scan(tmp_path / "nope")


def test_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f.jpg").write_bytes(image_bytes(0))
    with pytest.raises(DabinError, match="is not a folder"):
        DomainTree.scan(tmp_path / "f.jpg")


def test_empty_root(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(DabinError, match=r"expected .*/<domain>/<class>/<image>, found no folders in .* \(1 files\)"):
        DomainTree.scan(tmp_path)


def test_images_directly_in_root(small_tree: Path) -> None:
    (small_tree / "stray.jpg").write_bytes(image_bytes(0))
    with pytest.raises(DabinError, match=r"expected .*<domain>/<class>/<image>, found images directly in"):
        DomainTree.scan(small_tree)


def test_single_domain_image_folder_is_not_a_domain_tree(tmp_path: Path) -> None:
    for name in ("bird", "cat"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "0.jpg").write_bytes(image_bytes(0))
    with pytest.raises(DabinError, match=r"found images directly in .*bird \(a class folder at domain level"):
        DomainTree.scan(tmp_path)


def test_domain_without_class_folders(small_tree: Path) -> None:
    (small_tree / "painting").mkdir()
    with pytest.raises(DabinError, match=r"domain folder .*painting has no class folders"):
        DomainTree.scan(small_tree)


def test_empty_class_folder(small_tree: Path) -> None:
    for image in (small_tree / "sketch" / "cat").iterdir():
        image.unlink()
    (small_tree / "sketch" / "cat" / "readme.txt").write_text("x")
    with pytest.raises(DabinError, match=r"empty class folder .*sketch/cat \(no images\)"):
        DomainTree.scan(small_tree)


def test_class_missing_from_one_domain(small_tree: Path) -> None:
    shutil.rmtree(small_tree / "cartoon" / "dog")
    with pytest.raises(DabinError, match=r"class 'dog' is missing from domain 'cartoon' \(no folder .*cartoon/dog\)"):
        DomainTree.scan(small_tree)


def test_missing_office_home_domain(tmp_path: Path) -> None:
    write_files(tmp_path, [p for p in office_home_paths(classes=1) if not p.startswith("Product/")])
    with pytest.raises(DabinError, match=r"Office-Home tree .* lacks domain 'Product' \(found: Art, Clipart, Real World\)"):
        DomainTree.scan(tmp_path)
