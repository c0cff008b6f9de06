"""``dabin data ROOT``: the report (text and ``--json``), broken images, warnings and layout errors.

Everything goes through :func:`dabin.cli.main`, as a user's command line does; the scanning rules
themselves are tested in ``test_tree.py``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

from dabin.cli import main
from datamodules import OFFICE_HOME_COUNTS, DomainTree, kfold_split, transfer_split

from .conftest import image_bytes, office_home_paths, write_files


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``dabin data ARGS`` -> (exit status, stdout, stderr)."""
    status = main(["data", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def report(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """The ``--json`` report of a usable dataset."""
    status, out, err = run(capsys, *args, "--json")
    assert (status, err) == (0, "")
    return json.loads(out)


def expected_splits(root: Path, seed: int, k: int) -> tuple[dict[str, dict[str, int]], list[dict[str, int]]]:
    """Split sizes computed with the library, to compare the command's numbers with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = DomainTree.scan(root)
        transfer = {}
        for index, name in enumerate(tree.domain_names):
            train, test = transfer_split(tree.domain_samples(index), name, seed)
            transfer[name] = {"train": len(train), "test": len(test)}
        folds = kfold_split(tree.samples, k, seed)
    kfold = [{name: sum(tree.samples[i].domain == d for i in fold) for d, name in enumerate(tree.domain_names)}
             for fold in folds]
    return transfer, kfold


def assert_one_error_line(status: int, out: str, err: str, *fragments: str) -> None:
    """A layout error: nothing on stdout, one ``dabin: error:`` line naming ``fragments``, exit 2."""
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dabin: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_text_report(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    status, out, err = run(capsys, str(small_tree))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"dataset {small_tree}"
    assert lines[1] == "3 domains, 3 classes, 54 images"
    assert [line.split() for line in lines[2:5]] == [["Ca", "cartoon", "18", "images"],
                                                     ["Ph", "photo", "18", "images"],
                                                     ["Sk", "sketch", "18", "images"]]
    assert "warnings: 0" in lines and "ignored" not in out
    transfer, kfold = expected_splits(small_tree, seed=0, k=5)
    start = lines.index("transfer split 80/20 (seed 0):")
    assert [line.split() for line in lines[start + 1:start + 4]] == [
        [name, "train", str(size["train"]), "test", str(size["test"])] for name, size in transfer.items()]
    start = lines.index("k-fold (k=5, seed 0), held-out images per fold and domain:")
    assert lines[start + 1].split() == ["fold", "cartoon", "photo", "sketch", "total"]
    rows = [[int(cell) for cell in line.split()] for line in lines[start + 2:start + 7]]
    assert rows == [[i, *fold.values(), sum(fold.values())] for i, fold in enumerate(kfold)]
    assert sum(row[-1] for row in rows) == 54
    assert lines[-1] == "all images open"


def test_json_report(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    data = report(capsys, str(small_tree), "--seed", "3", "--k", "3")
    assert data["domains"] == [{"name": "cartoon", "code": "Ca", "images": 18},
                               {"name": "photo", "code": "Ph", "images": 18},
                               {"name": "sketch", "code": "Sk", "images": 18}]
    assert data["num_classes"] == 3 and data["class_names"] == ["bird", "cat", "dog"]
    assert data["warnings"] == [] and data["ignored_files"] == 0 and data["broken"] == []
    transfer, kfold = expected_splits(small_tree, seed=3, k=3)
    assert data["splits"] == {"seed": 3, "transfer": transfer, "k": 3, "kfold": kfold}
    # Split sizes are per domain: train + test is the domain, the folds partition everything.
    assert all(s["train"] + s["test"] == 18 for s in transfer.values())
    assert [sum(col) for col in zip(*(fold.values() for fold in data["splits"]["kfold"]))] == [18, 18, 18]


def test_seed_is_passed_to_both_splits(capsys: pytest.CaptureFixture[str], office_home_small: Path) -> None:
    data = report(capsys, str(office_home_small), "--seed", "1")
    transfer, kfold = expected_splits(office_home_small, seed=1, k=5)
    assert data["splits"] == {"seed": 1, "transfer": transfer, "k": 5, "kfold": kfold}


def test_office_home_replica_is_clean(capsys: pytest.CaptureFixture[str], office_home: Path) -> None:
    # The parent of the archive folder works as well, and the report names the folder it used.
    data = report(capsys, str(office_home.parent))
    assert data["root"] == str(office_home)
    assert {d["name"]: d["images"] for d in data["domains"]} == OFFICE_HOME_COUNTS
    assert [d["code"] for d in data["domains"]] == ["Ar", "Cl", "Pr", "Rw"]
    assert data["num_classes"] == 65 and data["broken"] == []
    # Another test may drop a non-image file beside the archive folder; nothing is ignored inside it.
    assert data["warnings"] == [] and data["ignored_files"] == 0
    transfer, kfold = expected_splits(office_home, seed=0, k=5)
    assert data["splits"]["transfer"] == transfer and data["splits"]["kfold"] == kfold
    assert sum(sum(fold.values()) for fold in kfold) == 15588


def test_office_home_count_difference_warns_but_succeeds(capsys: pytest.CaptureFixture[str],
                                                         office_home_small: Path) -> None:
    status, out, err = run(capsys, str(office_home_small))
    assert status == 0 and "Traceback" not in err
    assert "warnings: 4" in out.splitlines()
    counts = report(capsys, str(office_home_small))["domains"]
    for domain in counts:
        expected = OFFICE_HOME_COUNTS[domain["name"]]
        assert (f"  - Office-Home domain {domain['name']!r} has {domain['images']} images, expected {expected} "
                in out)
    assert [d["code"] for d in counts] == ["Ar", "Cl", "Pr", "Rw"]
    assert counts[3]["name"] == "Real World"  # the folder is spelled Real_World
    assert out.splitlines()[-1] == "all images open"


def test_json_warnings_are_listed_once(capsys: pytest.CaptureFixture[str], office_home_small: Path) -> None:
    data = report(capsys, str(office_home_small))
    assert len(data["warnings"]) == len(set(data["warnings"])) == 4
    assert all(w.startswith("Office-Home domain ") for w in data["warnings"])


def test_non_image_files_are_ignored_and_counted(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    (small_tree / "photo" / "bird" / "notes.txt").write_text("x")
    (small_tree / "sketch" / "labels.csv").write_text("x")
    (small_tree / "cartoon" / "cat" / ".DS_Store").write_bytes(b"x")  # hidden: not even counted
    status, out, _ = run(capsys, str(small_tree))
    assert status == 0
    assert "ignored 2 non-image files" in out
    assert "3 domains, 3 classes, 54 images" in out
    data = report(capsys, str(small_tree))
    assert data["ignored_files"] == 2
    assert len(data["warnings"]) == 1 and data["warnings"][0].startswith("ignored 2 non-image file(s)")
    assert [d["images"] for d in data["domains"]] == [18, 18, 18]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_broken_image_is_named_and_fails(capsys: pytest.CaptureFixture[str], small_tree: Path, damage: str) -> None:
    good = image_bytes(7, size=(64, 48))
    contents = {"truncated": good[: len(good) // 2], "garbage": b"not an image" * 20, "empty": b""}
    broken = small_tree / "sketch" / "dog" / "003.jpg"
    broken.write_bytes(contents[damage])
    status, out, err = run(capsys, str(small_tree))
    assert status == 1 and "Traceback" not in err
    lines = out.splitlines()
    assert "broken images: 1" in lines
    assert lines[-1].startswith(f"  {broken}: ")
    # The report is still complete: counts and splits are printed before the broken files.
    assert "3 domains, 3 classes, 54 images" in lines
    assert main(["data", str(small_tree), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [item["path"] for item in data["broken"]] == [str(broken)]
    assert data["broken"][0]["error"]


def test_every_broken_image_is_listed(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    paths = [small_tree / "photo" / "bird" / "000.jpg", small_tree / "cartoon" / "cat" / "004.jpg"]
    for path in paths:
        path.write_bytes(path.read_bytes()[:30])
    assert main(["data", str(small_tree), "--json"]) == 1
    assert sorted(item["path"] for item in json.loads(capsys.readouterr().out)["broken"]) == sorted(map(str, paths))


def test_embedded_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    data = report(capsys, "embedded")
    assert [(d["name"], d["code"]) for d in data["domains"]] == [("Ink", "In"), ("Neon", "Ne"), ("Photo", "Ph"),
                                                                ("Sketch", "Sk")]
    assert sum(d["images"] for d in data["domains"]) == 1797  # scikit-learn's digits
    assert data["num_classes"] == 10 and data["class_names"] == [str(d) for d in range(10)]
    assert data["broken"] == [] and data["warnings"] == []


def test_image_lists_restrict_the_report(capsys: pytest.CaptureFixture[str], small_tree: Path,
                                         tmp_path: Path) -> None:
    listed = [f"{d}/{c}/{i:03d}.jpg {label}" for d in ("cartoon", "photo", "sketch")
              for label, c in enumerate(("bird", "cat", "dog")) for i in range(5)]
    lists = tmp_path / "list.txt"
    lists.write_text("\n".join(listed) + "\n")
    data = report(capsys, str(small_tree), "--lists", str(lists))
    assert [d["images"] for d in data["domains"]] == [15, 15, 15]


# --- one line per bad input ---------------------------------------------------------------------


def test_missing_root(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_one_error_line(*run(capsys, str(tmp_path / "nope")), f"dataset root {tmp_path / 'nope'} does not exist")


def test_root_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(image_bytes(0))
    assert_one_error_line(*run(capsys, str(path)), str(path), "is not a folder")


def test_single_domain_folder_is_not_a_domain_tree(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for name in ("bird", "cat"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "0.jpg").write_bytes(image_bytes(0))
    assert_one_error_line(*run(capsys, str(tmp_path)), "<domain>/<class>/<image>", str(tmp_path / "bird"))


def test_folder_without_subfolders(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("x")
    assert_one_error_line(*run(capsys, str(tmp_path)), f"found no folders in {tmp_path}")


def test_empty_class_folder(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    for image in (small_tree / "photo" / "dog").iterdir():
        image.unlink()
    assert_one_error_line(*run(capsys, str(small_tree)), f"empty class folder {small_tree / 'photo' / 'dog'}")


def test_class_missing_from_one_domain(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    shutil.rmtree(small_tree / "sketch" / "bird")
    assert_one_error_line(*run(capsys, str(small_tree)), "class 'bird' is missing from domain 'sketch'",
                          str(small_tree / "sketch" / "bird"))


def test_domain_without_classes(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    (small_tree / "painting").mkdir()
    assert_one_error_line(*run(capsys, str(small_tree)),
                          f"domain folder {small_tree / 'painting'} has no class folders")


def test_missing_office_home_domain(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_files(tmp_path, [p for p in office_home_paths(classes=2) if not p.startswith("Clipart/")])
    assert_one_error_line(*run(capsys, str(tmp_path)), f"Office-Home tree {tmp_path} lacks domain 'Clipart'")


def test_class_too_small_to_stratify_warns_and_splits(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    kept = small_tree / "photo" / "cat" / "000.jpg"
    for image in (small_tree / "photo" / "cat").iterdir():
        if image != kept:
            image.unlink()
    status, out, err = run(capsys, str(small_tree))
    assert status == 0 and "Traceback" not in err
    notes = [line for line in out.splitlines() if "not stratified" in line]
    assert notes == ["  - domain 'photo': 1 of 3 classes have a single image (e.g. class 1); its 80/20 split is not "
                     "stratified by class"]
    assert "all images open" in out


def _tiny_tree(root: Path, per_class: int, domains: tuple[str, ...] = ("Art", "Clipart", "Product", "Real World")) -> Path:
    paths = [f"{d}/{c}/{i:05d}.jpg" for d in domains for c in ("Alarm_Clock", "Backpack", "Batteries")
             for i in range(1, per_class + 1)]
    write_files(root, paths)
    return root


def test_three_images_per_class_split_and_report_broken_images(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    """3 classes × 3 images per domain: neither split can stratify; both fall back, and images are checked."""
    root = _tiny_tree(tmp_path / "tiny", 3)
    good = image_bytes(3, size=(64, 48))
    (root / "Art" / "Backpack" / "00002.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (root / "Product" / "Batteries" / "00001.jpg").write_bytes(b"\xff\xd8 not really a JPEG" * 4)  # corrupt
    status, out, err = run(capsys, str(root))
    assert status == 1 and "Traceback" not in err, err
    assert sum("its 80/20 split is not stratified" in line for line in out.splitlines()) == 4
    assert sum("the folds are not stratified" in line for line in out.splitlines()) == 1
    assert "broken images: 2" in out
    assert main(["data", str(root), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert all(sizes["train"] + sizes["test"] == 9 and sizes["test"] == 2 for sizes in data["splits"]["transfer"].values())
    assert sum(sum(fold.values()) for fold in data["splits"]["kfold"]) == 36 and len(data["splits"]["kfold"]) == 5


def test_domain_too_small_to_split_is_one_line_and_images_are_still_checked(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    write_files(root, ["photo/bird/00001.jpg", "photo/bird/00002.jpg", "photo/bird/00003.jpg",
                       "sketch/bird/00001.jpg"])
    (root / "photo" / "bird" / "00002.jpg").write_bytes(b"")
    status, out, err = run(capsys, str(root), "--k", "2")
    assert status == 2 and "Traceback" not in err, err
    assert "error: domain 'sketch' is too small for the 80/20 split: 1 image(s), at least 2 needed" in out
    assert "broken images: 1" in out


@pytest.mark.parametrize(("k", "message"), [("1", "k-fold needs k >= 2, got k=1"),
                                            ("0", "k-fold needs k >= 2, got k=0"),
                                            ("-3", "k-fold needs k >= 2, got k=-3"),
                                            ("55", "k-fold with k=55 needs at least 55 images, found 54")])
def test_bad_k(capsys: pytest.CaptureFixture[str], small_tree: Path, k: str, message: str) -> None:
    assert_one_error_line(*run(capsys, str(small_tree), "--k", k), message)


def test_image_list_naming_a_missing_file(capsys: pytest.CaptureFixture[str], small_tree: Path,
                                          tmp_path: Path) -> None:
    lists = tmp_path / "list.txt"
    lists.write_text("photo/bird/000.jpg 0\nphoto/bird/404.jpg 0\n")
    assert_one_error_line(*run(capsys, str(small_tree), "--lists", str(lists)),
                          f"{lists}:2: listed image {small_tree / 'photo' / 'bird' / '404.jpg'} does not exist")


def test_malformed_arguments_are_argparse_errors(capsys: pytest.CaptureFixture[str], small_tree: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", str(small_tree), "--k", "two"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "dabin data: error: argument --k: invalid int value: 'two'" in err and "Traceback" not in err
