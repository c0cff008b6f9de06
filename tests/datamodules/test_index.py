"""The fast walk and the persistent tree index: same layout as the pathlib walk, and never stale."""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from datamodules import index
from datamodules.presets import DATASETS
from datamodules.index import IMAGE_EXTENSIONS, Layout, cached_layout, index_path, walk_layout
from datamodules.tree import DatasetWarning, DomainTree

from .conftest import image_bytes

REPO = Path(__file__).resolve().parents[2]
_AGES = itertools.count(1)


def _bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_index", REPO / "experiments" / "bench_index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(len(name)))


def age(root: Path) -> None:
    """Date every folder an hour back (a new time each call), like a tree nobody touched lately.

    An index is not written while a folder was modified in the last seconds (a later change in
    the same clock tick would keep its time); real trees are old, test trees are seconds old.
    """
    past = time.time() - 3600 - next(_AGES)
    for folder, _, _ in os.walk(root):
        os.utime(folder, (past, past))


def walked(root: Path) -> tuple[Layout, list[Path]]:
    ignored: list[Path] = []
    return walk_layout(root, ignored), ignored


def cached(root: Path, folder: Path) -> tuple[Layout, list[Path]]:
    ignored: list[Path] = []
    return cached_layout(root, ignored, folder, min_images=0), ignored


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    write(root, "A/cat/1.jpg", "A/cat/2.JPG", "A/dog/a b é.png", "A/dog/sub/deep/3.jpeg", "A/readme.txt",
          "B/cat/x.webp", "B/dog/y.jpg", "B/dog/notes.csv")
    return root


def test_walk_layout_equals_the_pathlib_walk_on_odd_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "odd"
    write(root, "Art/cat/1.jpg", "Art/cat/2.JPG", "Art/cat/.hidden.jpg", "Art/cat/__MACOSX_copy.jpg",
          "Art/cat/sub/3.png", "Art/cat/sub/deeper/4.Jpeg", "Art/cat/sub/.git/5.jpg", "Art/cat/__MACOSX/6.jpg",
          "Art/cat/thumbs.db", "Art/cat/sub/info.txt", "Art/dog/with space é.tif", "Art/.DS_Store",
          "Art/labels.csv", "Art/__MACOSX/dog/7.jpg", "Art/.cache/dog/8.jpg",
          "Clip/cat/9.bmp", "Clip/dog/10.ppm", "Clip/dog/11.pgm", "Clip/dog/12.tiff",
          "OnlyFiles/readme.md", ".trash/cat/13.jpg", "__MACOSX/Art/cat/14.jpg")
    (root / "Art" / "empty").mkdir()
    (root / "Clip" / "dog" / "emptysub").mkdir()
    outside = tmp_path / "outside"
    write(outside, "linked/15.jpg", "classdir/16.jpg")
    os.symlink(outside / "linked", root / "Art" / "dog" / "link")  # a linked folder below a class: not followed
    os.symlink(tmp_path / "missing.jpg", root / "Art" / "dog" / "dangling.jpg")  # listed, as os.walk does
    os.symlink(outside / "classdir", root / "Clip" / "bird")  # a linked class folder: followed
    expected_ignored: list[Path] = []
    expected = _bench(monkeypatch).pathlib_walk(root, expected_ignored)  # the walk tree.py had before, verbatim
    layout, ignored = walked(root)
    assert layout == expected and ignored == expected_ignored
    assert list(layout) == ["Art", "Clip", "OnlyFiles"] and layout["OnlyFiles"] == {}
    assert sorted(layout["Art"]["cat"]) == ["cat/1.jpg", "cat/2.JPG", "cat/__MACOSX_copy.jpg", "cat/sub/3.png",
                                            "cat/sub/deeper/4.Jpeg"]
    assert layout["Clip"]["bird"] == ["bird/16.jpg"]
    assert walk_layout(f"{root}/", []) == expected  # a trailing separator changes no key


def test_image_extensions_are_the_trees() -> None:
    from datamodules import tree

    assert tree.IMAGE_EXTENSIONS == IMAGE_EXTENSIONS


def test_a_valid_index_is_read_without_listing_the_tree(tree: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    age(tree)
    folder = tmp_path / "index"
    first = cached(tree, folder)
    assert first == walked(tree) and index_path(tree, folder).is_file()

    def refuse(*args: object) -> Layout:
        raise AssertionError("listed the tree despite a valid index")

    monkeypatch.setattr(index, "_walk", refuse)
    assert cached(tree, folder) == first
    # Another spelling of the same folder shares the index; ignored files keep the caller's spelling.
    os.symlink(tree, tmp_path / "alias")
    layout, ignored = cached(tmp_path / "alias", folder)
    assert layout == first[0] and ignored == [tmp_path / "alias" / p.relative_to(tree) for p in first[1]]


@pytest.mark.parametrize("change", ["add file", "remove file", "rename file", "add class", "remove class",
                                    "rename class", "add nested file", "add domain", "add hidden folder"])
def test_any_change_of_the_layout_invalidates_the_index(tree: Path, tmp_path: Path, change: str) -> None:
    age(tree)
    folder = tmp_path / "index"
    cached(tree, folder)
    assert index_path(tree, folder).is_file()
    if change == "add file":
        write(tree, "A/cat/new.jpg")
    elif change == "remove file":
        (tree / "B/dog/y.jpg").unlink()
    elif change == "rename file":
        (tree / "A/cat/1.jpg").rename(tree / "A/cat/renamed.jpg")
    elif change == "add class":
        write(tree, "A/bird/1.jpg", "B/bird/1.jpg")
    elif change == "remove class":
        shutil.rmtree(tree / "B" / "dog")
    elif change == "rename class":
        (tree / "A/dog").rename(tree / "A/hound")
    elif change == "add nested file":
        write(tree, "A/dog/sub/deep/4.jpg")
    elif change == "add domain":
        write(tree, "C/cat/1.jpg")
    else:
        (tree / "A" / "cat" / ".thumbnails").mkdir()  # changes nothing listed, but the folder's time
    assert cached(tree, folder) == walked(tree)
    age(tree)  # once the tree is old again, the index is rewritten, and valid
    assert cached(tree, folder) == walked(tree)
    assert index._read(index_path(tree, folder), os.fspath(tree)) is not None


def test_an_index_is_not_written_for_a_tree_modified_seconds_ago(tree: Path, tmp_path: Path) -> None:
    assert cached(tree, tmp_path / "index") == walked(tree)
    assert not index_path(tree, tmp_path / "index").exists()


def test_a_small_tree_gets_no_index(tree: Path, tmp_path: Path) -> None:
    age(tree)
    ignored: list[Path] = []
    assert cached_layout(tree, ignored, tmp_path / "index", min_images=100) == walked(tree)[0]
    assert not index_path(tree, tmp_path / "index").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong count", "other version"])
def test_a_damaged_index_is_rebuilt(tree: Path, tmp_path: Path, damage: str) -> None:
    age(tree)
    folder = tmp_path / "index"
    cached(tree, folder)
    path = index_path(tree, folder)
    data = path.read_bytes()
    header, body = data.split(b"\n", 1)
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot an index" * 10)
    elif damage == "truncated":
        path.write_bytes(header + b"\n" + body[: len(body) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong count":
        path.write_bytes(header.replace(b'["cat",2]', b'["cat",3]', 1) + b"\n" + body)
    else:
        path.write_bytes(header.replace(b'"version":1', b'"version":0', 1) + b"\n" + body)
    assert cached(tree, folder) == walked(tree)
    assert path.read_bytes() == data  # rewritten, valid again


def test_an_unwritable_index_folder_falls_back_to_listing(tree: Path, tmp_path: Path) -> None:
    age(tree)
    blocker = tmp_path / "a-file"
    blocker.write_text("the index folder cannot be created below a file")
    assert cached(tree, blocker / "index") == walked(tree)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)  # refused to users; root writes anyway, and either way the layout is right
    try:
        assert cached(tree, read_only) == walked(tree)
    finally:
        read_only.chmod(0o700)


def test_domain_tree_scan_reads_the_index_and_sees_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tree"
    write(root, *(f"{domain}/{name}/{i}.jpg" for domain in ("Art", "Clip") for name in ("cat", "dog") for i in range(2)))
    age(root)
    monkeypatch.setenv("DABIN_CACHE", str(tmp_path / "cache"))
    cached_layout(root, [], min_images=0)  # as the first process of a sweep over a large tree writes it
    assert index_path(root).is_file()
    listed = DomainTree.scan(root)
    # A file slipped in behind the index's back (the folder's time put back): only a scan that
    # reads the index misses it, so this tells a wired scan from one that lists the tree itself.
    folder = root / "Art" / "cat"
    before = folder.stat()
    write(root, "Art/cat/unseen.jpg")
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert DomainTree.scan(root).samples == listed.samples
    write(root, "Art/cat/new.jpg")  # a real change moves the folder's time: listed again
    assert len(DomainTree.scan(root).samples) == len(listed.samples) + 2


def test_the_benchmark_generates_a_domainnet_replica_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench(monkeypatch)
    info = DATASETS["domainnet"]
    root = bench.make_domainnet_tree(tmp_path, 0.01)
    layout, ignored = walked(root)
    assert ignored == [] and sorted(layout) == sorted(info.domains)
    for domain in info.domains:
        assert sorted(layout[domain]) == sorted(info.classes or ())
        assert abs(sum(map(len, layout[domain].values())) - 0.01 * info.counts[domain]) <= len(info.classes or ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # the counts are not the release's
        scanned = DomainTree.scan(root)
    assert scanned.dataset is info and scanned.num_classes == 345
    first = scanned.samples[0].path
    inode = first.stat().st_ino
    assert bench.make_domainnet_tree(tmp_path, 0.01) == root and first.stat().st_ino == inode  # reused
    marker = tmp_path / f"{root.name}.json"
    expected = marker.read_text()
    marker.write_text("{}")  # another version's tree: regenerated
    (root / "clipart" / "stale.jpg").write_bytes(b"")
    assert bench.make_domainnet_tree(tmp_path, 0.01) == root and marker.read_text() == expected
    assert not (root / "clipart" / "stale.jpg").exists()
