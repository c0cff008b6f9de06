"""Published checksums of the benchmarks' files: the table's sources, and the one-line answers of a check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from torchvision.datasets import MNIST, SVHN, USPS

from dabin.errors import DabinError
from datamodules import archives
from datamodules.archives import ArchiveNotChecked, KnownArchive, check_archive, file_digests, known_archives


def _entry(content: bytes, name: str = "data.zip", **values: object) -> KnownArchive:
    defaults = {"size": len(content), "md5": hashlib.md5(content).hexdigest(),
                "sha256": hashlib.sha256(content).hexdigest()}
    defaults.update(values)
    return KnownArchive(name, "Test", source="the test", **defaults)  # type: ignore[arg-type]


def test_digit_md5s_are_read_from_the_torchvision_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    table = known_archives()
    for name, md5 in MNIST.resources:
        assert table[name].md5 == md5 and table[name].dataset == "MNIST"
    for cls in (USPS, SVHN):
        for _, name, md5 in cls.split_list.values():
            assert table[name].md5 == md5
    # Sizes where TensorFlow Datasets registers them, none invented for USPS.
    assert table["train-images-idx3-ubyte.gz"].size == 9912422 and table["train_32x32.mat"].size == 182040794
    assert table["usps.bz2"].size is None
    # Read when asked, so the installed torchvision's values are the ones checked.
    monkeypatch.setattr(MNIST, "resources", [("train-images-idx3-ubyte.gz", "0" * 32)])
    assert known_archives()["train-images-idx3-ubyte.gz"].md5 == "0" * 32


def test_other_benchmarks_cite_their_source() -> None:
    table = known_archives()
    assert table["domain_adaptation_images.tar.gz"].md5 == "1b536d114869a5a8aa4580b89e9758fb"
    assert "dm_nevis" in table["domain_adaptation_images.tar.gz"].source
    for domain in ("clipart", "infograph", "painting", "quickdraw", "real", "sketch"):
        for name in (f"{domain}.zip", f"{domain}_train.txt", f"{domain}_test.txt"):
            entry = table[name]
            assert entry.dataset == "DomainNet" and entry.size and len(entry.sha256 or "") == 64
            assert "tensorflow/datasets" in entry.source
    assert not table["train.tar"].checkable and table["train.tar"].dataset == "VisDA-2017"
    assert all(entry.source for entry in table.values())


def test_unknown_or_unpublished_files_are_not_checked(tmp_path: Path) -> None:
    (tmp_path / "mystery.zip").write_bytes(b"x")
    with pytest.raises(ArchiveNotChecked, match=r"mystery\.zip: not a file dabin knows a published checksum of; "
                                                r"not checked"):
        check_archive(tmp_path / "mystery.zip")
    (tmp_path / "train.tar").write_bytes(b"x")
    with pytest.raises(ArchiveNotChecked, match=r"no published size or checksum for VisDA-2017's train\.tar"):
        check_archive(tmp_path / "train.tar")


def test_partial_longer_and_wrong_files(tmp_path: Path) -> None:
    content = b"0123456789" * 100
    path = tmp_path / "data.zip"
    path.write_bytes(content[:250])
    with pytest.raises(DabinError, match=r"data\.zip: partial download: 250 of 1000 bytes \(Test's data\.zip"):
        check_archive(path, _entry(content))
    path.write_bytes(content + b"!")
    with pytest.raises(DabinError, match=r"1001 bytes, expected 1000"):
        check_archive(path, _entry(content))
    wrong = content[:-1] + b"?"
    path.write_bytes(wrong)
    found = hashlib.md5(wrong).hexdigest()
    with pytest.raises(DabinError) as caught:
        check_archive(path, _entry(content, sha256=None))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert f"md5 {found}, expected {hashlib.md5(content).hexdigest()}" in message and "1000 bytes" in message
    path.write_bytes(content)
    assert check_archive(path, _entry(content)).name == "data.zip"
    with pytest.raises(DabinError, match=r"missing \(Test's data\.zip\)"):
        check_archive(tmp_path / "absent.zip", _entry(content))


def test_domainnet_mismatch_says_which_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clipart.zip"
    path.write_bytes(b"first release")
    published = known_archives()["clipart.zip"]
    monkeypatch.setattr(archives, "_OTHERS", (KnownArchive(
        "clipart.zip", "DomainNet", path.stat().st_size, None, published.sha256, published.source, published.note),))
    with pytest.raises(DabinError, match=r"sha256 .*, expected f8f248a3.* cleaned release's values"):
        check_archive(path)


def test_digests_stream_in_blocks(tmp_path: Path) -> None:
    content = bytes(range(256)) * 1000
    (tmp_path / "blob").write_bytes(content)
    assert file_digests(tmp_path / "blob", block=1000) == {"md5": hashlib.md5(content).hexdigest(),
                                                           "sha256": hashlib.sha256(content).hexdigest()}
    assert file_digests(tmp_path / "blob", ("sha256",), block=7) == {"sha256": hashlib.sha256(content).hexdigest()}


def test_dabin_data_verify_checks_each_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dabin.cli import main as dabin_main

    content = b"0123456789" * 100
    good, partial, other = tmp_path / "good.zip", tmp_path / "cut.zip", tmp_path / "notes.txt"
    good.write_bytes(content)
    partial.write_bytes(content[:100])
    other.write_text("x")
    table = {"good.zip": _entry(content, "good.zip"), "cut.zip": _entry(content, "cut.zip")}
    monkeypatch.setattr(archives, "known_archives", lambda: table)
    assert dabin_main(["data", "verify", str(good), str(other)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"ok: {good} (Test's good.zip: size, md5, sha256") and lines[1].startswith("not checked:")
    assert dabin_main(["data", "verify", str(partial), str(good)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"FAILED: {partial}: partial download: 100 of 1000 bytes (Test's cut.zip; size from the test)"
    assert lines[1].startswith("ok: ")
