"""The digits export: torchvision's real file formats in, a dabin tree with official split lists out.

The fixture writes tiny MNIST, USPS and SVHN files in the formats torchvision reads (gzipped idx
files with their magic numbers, bz2 libsvm lines, a MATLAB file with ``X`` (32, 32, 3, N) and
``y`` (N, 1) where 10 means the digit 0), checks that torchvision's classes read them, and sets the
classes' published md5s to the tiny files' (the real ones stay in force where a test needs them).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from torchvision.datasets import MNIST, SVHN, USPS

import datamodules.digits as digits
from dabin.cli import main as dabin_main
from dabin.errors import DabinError
from datamodules import archives
from datamodules.digits import (
    DIGIT_DOMAINS,
    default_digits_out,
    digits_tree,
    export_digits,
    is_torchvision_digits_root,
    present_domains,
)
from datamodules.tree import DatasetWarning, DomainTree

#: Images per split: one of every digit, so every class folder of the tree is filled.
N = 10
#: The md5s torchvision publishes, read before any test patches them.
PUBLISHED = {name: md5 for name, md5 in MNIST.resources}
PUBLISHED.update({name: md5 for _, name, md5 in (*USPS.split_list.values(), *SVHN.split_list.values())})


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _idx(magic: int, array: np.ndarray) -> bytes:
    """An idx file: big-endian magic (type 0x08, ndim), big-endian dims, then the bytes."""
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def _pixels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def write_torchvision_root(root: Path, seed: int = 0) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """torchvision's files for the three domains under ``root``; returns the images and labels written."""
    rng = np.random.default_rng(seed)
    data: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data["MNIST"] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = _pixels(rng, (N, 28, 28)), rng.permutation(10).astype(np.uint8)
        for kind, magic, array in (("images-idx3", 0x0803, images), ("labels-idx1", 0x0801, labels)):
            content = _idx(magic, array)
            # torchvision's download leaves the archive and the gunzipped file side by side.
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(content)
            (raw / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(content))
        data["MNIST"][split] = (images, labels)
    data["USPS"] = {}
    for split, name in (("train", "usps.bz2"), ("test", "usps.t.bz2")):
        # libsvm lines: label 1..10, then 256 index:value pairs with values in [-1, 1].
        values = rng.uniform(-1, 1, (N, 256))
        labels = rng.permutation(10)
        lines = [f"{label + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row))
                 for label, row in zip(labels, values)]
        (root / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
        images = ((values.astype(np.float32).reshape(-1, 16, 16) + 1) / 2 * 255).astype(np.uint8)
        data["USPS"][split] = (images, labels)
    data["SVHN"] = {}
    for split in ("train", "test"):
        images = _pixels(rng, (N, 32, 32, 3))
        labels = rng.permutation(10)
        y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(N, 1)  # SVHN: 10 is the digit 0
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": y})
        data["SVHN"][split] = (images, labels)
    return data


@pytest.fixture
def digit_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """A torchvision root of tiny digit files whose md5s torchvision's classes now publish."""
    root = tmp_path / "torchvision"
    data = write_torchvision_root(root)
    raw = root / "MNIST" / "raw"
    monkeypatch.setattr(MNIST, "resources", [(name, _md5(raw / name)) for name, _ in MNIST.resources])
    for cls in (USPS, SVHN):
        monkeypatch.setattr(cls, "split_list", {
            split: [url, name, _md5(root / name) if (root / name).exists() else md5]
            for split, (url, name, md5) in cls.split_list.items()})
    monkeypatch.setattr(archives, "TFDS_DIGITS", {})  # the published sizes are the real files'
    return root, data


def test_torchvision_reads_the_fixture_files(digit_root: tuple[Path, dict]) -> None:
    root, data = digit_root
    mnist = MNIST(str(root), train=False)
    assert len(mnist) == N and np.array_equal(np.asarray(mnist[3][0]), data["MNIST"]["test"][0][3])
    usps = USPS(str(root), train=True)
    assert [usps[i][1] for i in range(N)] == list(data["USPS"]["train"][1])
    svhn = SVHN(str(root), split="train")
    assert [svhn[i][1] for i in range(N)] == list(data["SVHN"]["train"][1])  # 10 read as 0
    assert np.array_equal(np.asarray(svhn[0][0]), data["SVHN"]["train"][0][0])


def test_export_writes_rgb_pngs_labels_and_official_lists(digit_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, data = digit_root
    out = export_digits(root, tmp_path / "tree")
    for domain, side in (("MNIST", 28), ("USPS", 16), ("SVHN", 32)):
        for split in ("train", "test"):
            images, labels = data[domain][split]
            lines = (out / f"{domain}_{split}.txt").read_text().splitlines()
            assert lines == [f"{domain}/{label}/{split}_{i:05d}.png {label}" for i, label in enumerate(labels)]
            for i in (0, N - 1):
                with Image.open(out / domain / str(labels[i]) / f"{split}_{i:05d}.png") as image:
                    assert image.mode == "RGB" and image.size == (side, side)
                    pixels = np.asarray(image)
                expected = images[i] if images[i].ndim == 3 else np.repeat(images[i][..., None], 3, axis=2)
                assert np.array_equal(pixels, expected)  # gray replicated, colour as stored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        tree = DomainTree.scan(out)
        listed = DomainTree.scan(out, image_lists=out / "USPS_test.txt")  # the list format dabin reads
    assert sorted(tree.domain_names) == sorted(DIGIT_DOMAINS) and tree.class_names == [str(d) for d in range(10)]
    assert len(tree.samples) == 3 * 2 * N
    assert len(listed.samples) == N and listed.domain_names == ["USPS"]
    assert all(tree.class_names[s.label] == s.path.parent.name for s in tree.samples)


def test_wrong_md5_names_the_file_and_the_published_value(digit_root: tuple[Path, dict], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = digit_root
    real = dict(USPS.split_list)
    real["test"] = [real["test"][0], "usps.t.bz2", PUBLISHED["usps.t.bz2"]]  # the real md5: the tiny file differs
    monkeypatch.setattr(USPS, "split_list", real)
    with pytest.raises(DabinError) as caught:
        export_digits(root, tmp_path / "tree", domains=["USPS"])
    message = str(caught.value)
    assert "\n" not in message and str(root / "usps.t.bz2") in message
    assert f"expected {PUBLISHED['usps.t.bz2']}" in message and _md5(root / "usps.t.bz2") in message
    assert not (tmp_path / "tree" / "USPS").exists()


def test_partial_download_says_how_much_arrived(digit_root: tuple[Path, dict], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = digit_root
    name = "train-labels-idx1-ubyte.gz"
    monkeypatch.setattr(archives, "TFDS_DIGITS", {name: (28881, "0" * 64, "TFDS")})
    size = (root / "MNIST" / "raw" / name).stat().st_size
    with pytest.raises(DabinError, match=rf"{name}: partial download: {size} of 28881 bytes"):
        export_digits(root, tmp_path / "tree", domains=["MNIST"])


def test_truncated_gunzipped_file_without_its_archive(digit_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = digit_root
    raw = root / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte.gz").unlink()
    content = (raw / "t10k-images-idx3-ubyte").read_bytes()
    (raw / "t10k-images-idx3-ubyte").write_bytes(content[:-100])
    with pytest.raises(DabinError, match=rf"t10k-images-idx3-ubyte: partial file: {len(content) - 100} of "
                                         rf"{len(content)} bytes \(from its idx header\)"):
        export_digits(root, tmp_path / "tree", domains=["MNIST"])


def test_gunzipped_file_alone_is_used_with_a_warning(digit_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, data = digit_root
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.warns(DatasetWarning, match="train-images-idx3-ubyte: used without train-images-idx3-ubyte.gz"):
        out = export_digits(root, tmp_path / "tree", domains=["MNIST"])
    labels = data["MNIST"]["train"][1]
    with Image.open(out / "MNIST" / str(labels[2]) / "train_00002.png") as image:
        assert np.array_equal(np.asarray(image)[..., 0], data["MNIST"]["train"][0][2])


def test_rerun_is_instant_and_changed_or_unfinished_exports_are_redone(
        digit_root: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = digit_root
    out = export_digits(root, tmp_path / "tree")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    exported: list[str] = []
    real_export = digits._export_domain
    monkeypatch.setattr(digits, "_export_domain",
                        lambda r, o, d: exported.append(d) or real_export(r, o, d))
    start = time.perf_counter()
    assert export_digits(root, out) == out
    assert time.perf_counter() - start < 1.0 and exported == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before
    os.utime(root / "usps.bz2", ns=(1, 1))  # a source file changed: its domain only is redone
    (out / ".SVHN.export.json").unlink()  # an export that never finished (no marker)
    export_digits(root, out)
    assert exported == ["USPS", "SVHN"]


def test_failure_mid_export_leaves_no_half_tree(digit_root: tuple[Path, dict], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = digit_root
    out = export_digits(root, tmp_path / "tree", domains=["USPS"])
    good = sorted(p.relative_to(out) for p in out.rglob("*"))
    real_open = digits._open_split

    def failing(domain: str, read_root: Path, split: str) -> object:
        if split == "test":  # the train split is written by now
            raise DabinError("disk trouble")
        return real_open(domain, read_root, split)

    monkeypatch.setattr(digits, "_open_split", failing)
    with pytest.raises(DabinError, match="disk trouble"):
        export_digits(root, out, domains=["MNIST"])
    os.utime(root / "usps.bz2", ns=(1, 1))
    with pytest.raises(DabinError, match="disk trouble"):
        export_digits(root, out, domains=["USPS"])  # a re-export that fails keeps the old one
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == good  # no MNIST, no temporary folder
    assert not (out / "MNIST").exists() and not (out / ".MNIST.export.json").exists()


def test_digits_tree_exports_the_domains_present_into_the_cache(digit_root: tuple[Path, dict],
                                                                tmp_path: Path) -> None:
    root, _ = digit_root
    for name in ("train_32x32.mat", "test_32x32.mat"):
        (root / name).unlink()
    assert is_torchvision_digits_root(root) and present_domains(root) == ["MNIST", "USPS"]
    assert not is_torchvision_digits_root(tmp_path / "nowhere") and not is_torchvision_digits_root(None)
    tree = digits_tree(root, tmp_path / "cache")
    assert tree == default_digits_out(root, tmp_path / "cache") and tree.parent == tmp_path / "cache"
    assert sorted(p.name for p in tree.iterdir() if not p.name.startswith(".")) == [
        "MNIST", "MNIST_test.txt", "MNIST_train.txt", "USPS", "USPS_test.txt", "USPS_train.txt"]
    assert not is_torchvision_digits_root(tree)  # the export is a tree, not a torchvision root
    (root / "usps.t.bz2").unlink()
    (tree / ".USPS.export.json").unlink()
    with pytest.raises(DabinError, match=r"USPS: missing .*usps\.t\.bz2"):
        digits_tree(root, tmp_path / "cache")


def test_download_uses_torchvision_and_a_failure_is_one_line(digit_root: tuple[Path, dict], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = digit_root
    saved = (root / "usps.t.bz2").read_bytes()
    (root / "usps.t.bz2").unlink()
    fetched: list[str] = []

    def fake_download(url: str, folder: str, filename: str, md5: str) -> None:
        fetched.append(url)
        (Path(folder) / filename).write_bytes(saved)

    monkeypatch.setattr(digits, "download_url", fake_download)
    export_digits(root, tmp_path / "tree", domains=["USPS"], download=True)
    assert fetched == [USPS.split_list["test"][0]]
    (root / "usps.t.bz2").unlink()

    def offline(url: str, folder: str, filename: str, md5: str) -> None:
        raise OSError("[Errno -3] Temporary failure in name resolution\nmore")

    monkeypatch.setattr(digits, "download_url", offline)
    with pytest.raises(DabinError, match=r"^downloading USPS into .* failed: OSError: \[Errno -3\] Temporary "
                                         r"failure in name resolution$"):
        export_digits(root, tmp_path / "tree", domains=["USPS"], download=True)


def test_cli_exports_and_reports_errors_as_one_line(digit_root: tuple[Path, dict], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = digit_root
    out = tmp_path / "cli-tree"
    assert dabin_main(["data", "digits", "--from", str(root), "--to", str(out), "--domains", "USPS", "SVHN"]) == 0
    printed = capsys.readouterr().out
    assert "USPS: train 10, test 10 images" in printed and f"--data.root {out}" in printed
    assert (out / "SVHN_train.txt").is_file() and not (out / "MNIST").exists()
    assert dabin_main(["data", "digits", "--from", str(tmp_path / "empty-nothing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dabin: error: ") and error.count("\n") == 1


def test_a_transfer_data_module_on_a_torchvision_root_reads_the_official_splits(
        digit_root: tuple[Path, dict], tmp_path: Path) -> None:
    """The digits configs' data arguments, on a torchvision root: exported once, official train/test."""
    import yaml

    from datamodules import TransferDataModule

    root, data = digit_root
    config = Path(__file__).resolve().parents[2] / "experiments" / "digits" / "dann_mnist_usps.yaml"
    args = yaml.safe_load(config.read_text())["data"]["init_args"]
    args.update(root=str(root), cache_dir=str(tmp_path / "cache"), num_workers=0, batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny tree's counts differ from the release's
        module = TransferDataModule(**args)
    assert (module.split, module.source_name, module.target_name) == ("official", "MNIST", "USPS")
    for domain in ("MNIST", "USPS"):
        train, test = module.splits[domain]
        assert (len(train), len(test)) == (len(data[domain]["train"][1]), len(data[domain]["test"][1]))
        assert all(sample.path.name.startswith("train_") for sample in train)
        assert all(sample.path.name.startswith("test_") for sample in test)
    assert module.cache is None  # tiny images: no resized-image cache
    images, labels, domains = next(iter(module.train_dataloader()["source"]))
    assert images.shape == (4, 3, 28, 28) and set(domains.tolist()) == {0}


def test_dabin_data_on_a_torchvision_root_points_at_the_export(digit_root: tuple[Path, dict],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = digit_root
    assert dabin_main(["data", str(root)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"dabin data digits --from {root}" in error
