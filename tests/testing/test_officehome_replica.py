"""The Office-Home replica: real names and layout, odd images that dabin's loader decodes, reuse."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dabin.testing.officehome import MARKER, ODD_IMAGES, make_officehome_replica, odd_image_paths
from datamodules.check import check_dataset
from datamodules.loading import center_crop_box, decode_center_crop, decode_image
from datamodules.officehome import ARCHIVE_FOLDER, OFFICE_HOME_DOMAINS, office_home_list
from datamodules.transforms import ToNormalizedTensor
from datamodules.tree import DomainTree

PER_CLASS = 5  # the fewest that keeps the stratified 80/20 split and 5 folds possible per class
ODD = odd_image_paths(0)


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four domains, the first 5 listed images of every class (1,300 images, odd ones included)."""
    return make_officehome_replica(tmp_path_factory.mktemp("replica") / "office", seed=0, per_class=PER_CLASS)


def _scan(root: Path) -> DomainTree:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the subset's counts differ from the release's: a warning
        return DomainTree.scan(root)


def _odd_path(root: Path, kind: str) -> list[tuple[Path, object]]:
    return [(root / ARCHIVE_FOLDER / path, odd) for path, odd in ODD.items() if odd.kind == kind]


def test_layout_uses_the_real_names(replica: Path) -> None:
    tree = _scan(replica)
    assert tree.office_home
    assert tree.root == replica / ARCHIVE_FOLDER
    assert tree.domain_names == list(OFFICE_HOME_DOMAINS)
    assert [d.folder.name for d in tree.domains] == ["Art", "Clipart", "Product", "Real World"]
    assert [d.code for d in tree.domains] == ["Ar", "Cl", "Pr", "Rw"]
    listed = {path.split("/")[1]: label for path, label in office_home_list("Art")}
    assert tree.num_classes == 65
    assert tree.class_names == sorted(listed, key=listed.__getitem__)  # the lists' labels
    assert {"Alarm_Clock", "Trash_Can", "TV", "Bucket", "Push_Pin"} <= set(tree.class_names)
    assert tree.counts() == {domain: 65 * PER_CLASS for domain in OFFICE_HOME_DOMAINS}
    for domain in OFFICE_HOME_DOMAINS:
        taken: dict[int, int] = {}
        for path, label in office_home_list(domain):
            taken[label] = taken.get(label, 0) + 1
            assert (replica / ARCHIVE_FOLDER / path).is_file() == (taken[label] <= PER_CLASS), path
    assert not tree.ignored


def test_every_odd_kind_is_present_as_described(replica: Path) -> None:
    assert {odd.kind for odd in ODD.values()} == {"tiny", "huge", "gray", "cmyk", "exif6", "exif8", "png"}
    assert len(ODD) == len(ODD_IMAGES)
    assert {odd.domain for odd in ODD.values()} == set(OFFICE_HOME_DOMAINS)
    for path, odd in ((replica / ARCHIVE_FOLDER / p, o) for p, o in ODD.items()):
        assert path.suffix == ".jpg" and path.parts[-3] == odd.domain
        with Image.open(path) as image:
            assert image.format == odd.fmt, path
            assert image.mode == odd.mode, path
            orientation = image.getexif().get(0x0112)
            if odd.kind.startswith("exif"):
                assert orientation == int(odd.kind[4:])
                assert image.size == odd.size[::-1]  # stored rotated
            else:
                assert orientation is None
                assert image.size == odd.size
    assert min(min(o.size) for o in ODD.values() if o.kind == "tiny") == 18
    assert sorted(o.size for o in ODD.values() if o.kind == "huge") == [(2250, 3000), (3000, 2250), (4000, 3000)]


@pytest.mark.parametrize("kind", ["tiny", "huge", "gray", "cmyk", "png"])
def test_odd_images_decode_to_rgb_through_the_loader(replica: Path, kind: str) -> None:
    to_tensor = ToNormalizedTensor()
    for path, odd in _odd_path(replica, kind):
        whole = decode_image(path)
        assert whole.mode == "RGB" and whole.size == odd.size
        pixels = np.asarray(whole)
        assert pixels.shape == (odd.size[1], odd.size[0], 3)
        assert pixels.std() > 5  # a picture, not a blank
        if kind == "gray":
            assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
        resized = decode_image(path, 256)
        assert min(resized.size) == 256 and resized.mode == "RGB"
        crop = decode_center_crop(path, 256, 224)
        assert crop.mode == "RGB" and crop.size == (224, 224)
        assert tuple(to_tensor(crop).shape) == (3, 224, 224)


def test_cmyk_decodes_to_the_colours_it_was_made_from(replica: Path) -> None:
    # Not inverted or channel-swapped: the CMYK file shows about what PIL's own RGB view shows.
    for path, _ in _odd_path(replica, "cmyk"):
        with Image.open(path) as image:
            reference = np.asarray(image.convert("RGB"), np.float32)
        assert np.abs(np.asarray(decode_image(path), np.float32) - reference).mean() < 2


@pytest.mark.parametrize("kind", ["exif6", "exif8"])
def test_exif_rotated_images_decode_with_their_stored_pixels_readable(replica: Path, kind: str) -> None:
    (path, odd), = _odd_path(replica, kind)
    image = decode_image(path)
    assert image.mode == "RGB" and sorted(image.size) == sorted(odd.size)
    assert decode_center_crop(path, 256, 224).size == (224, 224)


@pytest.mark.parametrize("kind", ["exif6", "exif8"])
def test_exif_rotated_images_decode_upright(replica: Path, kind: str) -> None:
    (path, odd), = _odd_path(replica, kind)
    image = decode_image(path)
    assert image.size == odd.size  # width and height of the stored pixels swapped

    def red_on_top(pixels: np.ndarray) -> bool:
        top = pixels[: max(1, round(0.1 * pixels.shape[0]))].reshape(-1, 3).mean(axis=0)
        return bool(top[0] > 180 and top[1] < 80 and top[2] < 80)

    assert red_on_top(np.asarray(image))  # the red band is on top
    small = decode_image(path, 40)  # resized (draft-mode decode where the file allows it)
    assert min(small.size) == 40 and (small.size[0] < small.size[1]) == (odd.size[0] < odd.size[1])
    assert red_on_top(np.asarray(small))
    crop = np.asarray(decode_center_crop(path, 40, 32), np.float32)
    reference = np.asarray(small, np.float32)
    left, top, right, bottom = center_crop_box(small.size, 32)
    assert np.abs(crop - reference[top:bottom, left:right]).mean() < 3  # the same pixels, only cropped


def test_dabin_data_finds_no_broken_image(replica: Path) -> None:
    report = check_dataset(str(replica))
    assert report["broken"] == []
    assert [d["name"] for d in report["domains"]] == list(OFFICE_HOME_DOMAINS)
    assert [d["images"] for d in report["domains"]] == [65 * PER_CLASS] * 4
    assert report["num_classes"] == 65
    assert all("has 325 images, expected" in note for note in report["warnings"])  # only the subset's counts


def test_deterministic_per_image_and_seed(replica: Path, tmp_path: Path) -> None:
    # Clipart only, 2 per class: each image is seeded by its own path, so a subset matches the bigger replica.
    small = make_officehome_replica(tmp_path / "small", seed=0, domains=["clipart"], per_class=2)
    other = make_officehome_replica(tmp_path / "other", seed=1, domains=["Clipart"], per_class=2)
    files = sorted(p.relative_to(small) for p in small.rglob("*.jpg"))
    assert len(files) == 130
    assert all((small / f).read_bytes() == (replica / f).read_bytes() for f in files)
    assert sum((small / f).read_bytes() != (other / f).read_bytes() for f in files) == len(files)
    assert json.loads((small / MARKER).read_text())["counts"] == {"Clipart": 130}


def test_complete_replica_is_reused_and_other_arguments_replace_it(tmp_path: Path) -> None:
    root = make_officehome_replica(tmp_path / "r", domains=["Clipart"], per_class=1)
    marker = root / MARKER
    stamp = marker.stat().st_mtime_ns
    assert make_officehome_replica(root, domains=["Clipart"], per_class=1) == root
    assert marker.stat().st_mtime_ns == stamp  # found complete: nothing rewritten
    make_officehome_replica(root, domains=["Clipart"], per_class=2)
    assert json.loads(marker.read_text())["per_class"] == 2
    assert len(list(root.rglob("*.jpg"))) == 130
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_refuses_a_folder_holding_something_else(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an Office-Home replica"):
        make_officehome_replica(root, domains=["Clipart"], per_class=1)
    assert (root / "mine.txt").read_text() == "keep me" and os.listdir(root) == ["mine.txt"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown Office-Home domain"):
        make_officehome_replica(tmp_path / "x", domains=["Sketch"])
    with pytest.raises(ValueError, match="per_class"):
        make_officehome_replica(tmp_path / "x", per_class=0)
