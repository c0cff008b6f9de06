"""Published sizes and digests of the benchmarks' download files, and a streaming check against them.

Only values read from a source are listed, each entry citing it:

- **MNIST, USPS, SVHN**: the md5 of every file is read from torchvision's dataset classes when the
  table is built (``MNIST.resources``, ``USPS.split_list``, ``SVHN.split_list``: the values
  torchvision's own downloads check), so the table follows the installed torchvision. Sizes and
  sha256 of the MNIST and SVHN files: TensorFlow Datasets' registered checksums
  (``tensorflow/datasets``, ``tensorflow_datasets/url_checksums/mnist.txt`` at commit 31f1255e and
  ``svhn_cropped.txt`` at commit 333639b3). No source found gives USPS's sizes.
- **Office-31** ``domain_adaptation_images.tar.gz``: md5 from DeepMind's NEVIS'22
  (``google-deepmind/dm_nevis``, ``dm_nevis/datasets_storage/handlers/office31.py``, commit 37ccf1e2;
  checked as an md5 by its ``download_util.validate_artefact_checksum``). No size is published.
- **DomainNet**: size and sha256 of the six domain zips and the twelve official split lists from
  TensorFlow Datasets (``tensorflow_datasets/image_classification/domainnet/checksums.tsv``, commit
  90b66237). Its ``clipart.zip`` and ``painting.zip`` are the *cleaned* releases (the server's
  ``multi-source/groundtruth/`` folder); the first releases, under the same names one folder up,
  differ and fail the check, which the message says.
- **VisDA-2017** ``train.tar``, ``validation.tar``: no published checksum was found (the challenge's
  devkit, ``VisionLearningGroup/taskcv-2017-public``, gives none; neither do TensorFlow Datasets nor
  the Transfer-Learning-Library). They are listed without values, so a check says so instead of
  passing silently.

:func:`check_archive` compares a file with its entry: size first (a shorter file is a partial
download and says how much arrived), then every digest in one streaming pass (8 MiB blocks; the
DomainNet zips are up to 6 GB).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from dabin.errors import DabinError

__all__ = ["ArchiveNotChecked", "KnownArchive", "check_archive", "file_digests", "known_archives"]


class ArchiveNotChecked(DabinError):
    """The file has no published size or digest to compare with (unknown name, or none published)."""


@dataclasses.dataclass(frozen=True)
class KnownArchive:
    """What is published about one download file.

    Attributes:
        name: The file's name as distributed.
        dataset: The benchmark it belongs to.
        size: Bytes, where published.
        md5: Hex md5, where published.
        sha256: Hex sha256, where published.
        source: Where the values were read.
        note: Said with a mismatch (e.g. which release the values are of).
    """

    name: str
    dataset: str
    size: int | None
    md5: str | None
    sha256: str | None
    source: str
    note: str = ""

    @property
    def checkable(self) -> bool:
        """Whether anything is published to compare with."""
        return self.size is not None or self.md5 is not None or self.sha256 is not None


_TFDS_MNIST = "TensorFlow Datasets url_checksums/mnist.txt (tensorflow/datasets@31f1255e)"
_TFDS_SVHN = "TensorFlow Datasets url_checksums/svhn_cropped.txt (tensorflow/datasets@333639b3)"
_TFDS_DOMAINNET = "TensorFlow Datasets image_classification/domainnet/checksums.tsv (tensorflow/datasets@90b66237)"

#: (size, sha256, source) of the torchvision digit files, by file name (TensorFlow Datasets, see the module docstring).
TFDS_DIGITS: dict[str, tuple[int, str, str]] = {
    "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                   _TFDS_MNIST),
    "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                   _TFDS_MNIST),
    "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                  _TFDS_MNIST),
    "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                  _TFDS_MNIST),
    "train_32x32.mat": (182040794, "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8", _TFDS_SVHN),
    "test_32x32.mat": (64275384, "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b", _TFDS_SVHN),
    "extra_32x32.mat": (1329278602, "a133a4beb38a00fcdda90c9489e0c04f900b660ce8a316a5e854838379a71eb3",
                        _TFDS_SVHN),
}

_CLEANED = ("these are the cleaned release's values (multi-source/groundtruth/{name} on the DomainNet server); the "
            "first release of {name} differs")

#: The other benchmarks' files (name, dataset, size, md5, sha256, source, note).
_OTHERS: tuple[KnownArchive, ...] = (
    KnownArchive("domain_adaptation_images.tar.gz", "Office-31", None, "1b536d114869a5a8aa4580b89e9758fb", None,
                 "google-deepmind/dm_nevis@37ccf1e2 dm_nevis/datasets_storage/handlers/office31.py"),
    KnownArchive("clipart.zip", "DomainNet", 1270909081, None,
                 "f8f248a3e8bbc9868c523ae24e6601b4c2ad102afc60c0efeb4f3255df22354d", _TFDS_DOMAINNET,
                 _CLEANED.format(name="clipart.zip")),
    KnownArchive("infograph.zip", "DomainNet", 4338659804, None,
                 "891e14f476317e97b6f06d6498c11d0a5b8d0c8b57210765ed9beb072da611fa", _TFDS_DOMAINNET),
    KnownArchive("painting.zip", "DomainNet", 3679366174, None,
                 "fa47e6d405503ea0286cabd767f176bd30e988b63ddd7b9db16cf030c9770015", _TFDS_DOMAINNET,
                 _CLEANED.format(name="painting.zip")),
    KnownArchive("quickdraw.zip", "DomainNet", 459920701, None,
                 "9f37df2a8c3733703dbb35ad9964202a65f675ca30137756457537536b485d84", _TFDS_DOMAINNET),
    KnownArchive("real.zip", "DomainNet", 6062039589, None,
                 "d7fe010b430c5b510f85d657d38c4a1924822695fabea4fef57bd00dba251d63", _TFDS_DOMAINNET),
    KnownArchive("sketch.zip", "DomainNet", 2633992926, None,
                 "23a7dbae7016b343e934399beaa8a68728fb5e570ebe2c71df9b75cf91c499fc", _TFDS_DOMAINNET),
    KnownArchive("clipart_train.txt", "DomainNet", 1443819, None,
                 "affdadf5f95a7583e6b98030a3d35007e2613ee4dd942393c5a705ec2b429312", _TFDS_DOMAINNET),
    KnownArchive("clipart_test.txt", "DomainNet", 628917, None,
                 "62c8e36aaba1c41ad9e249099739707220a44c08f167b37ef420f34a31628a6b", _TFDS_DOMAINNET),
    KnownArchive("infograph_train.txt", "DomainNet", 1683098, None,
                 "36b44cbd41a2915e0dc73b4f4be8862a6f3c220f93c8d63fb2439beeae3aefda", _TFDS_DOMAINNET),
    KnownArchive("infograph_test.txt", "DomainNet", 728028, None,
                 "413cfa54ac92e7e6b242f4f09fbd9c8ace85c4deaf3cb6c81ff6b68264460136", _TFDS_DOMAINNET),
    KnownArchive("painting_train.txt", "DomainNet", 2241901, None,
                 "f1da38d50a702fddf1329f85bc607d7a2abcae7e6aec75e1fd49cc1bd340d47b", _TFDS_DOMAINNET),
    KnownArchive("painting_test.txt", "DomainNet", 971888, None,
                 "11472b13b5188e09f06918b12eebb660588c97a20e43e268d9b02e3e37eb8f97", _TFDS_DOMAINNET),
    KnownArchive("quickdraw_train.txt", "DomainNet", 5164600, None,
                 "3a5edd3bc215772010eebc87f158707703dd7e48091d13b816af81326a9d1c0f", _TFDS_DOMAINNET),
    KnownArchive("quickdraw_test.txt", "DomainNet", 2213400, None,
                 "2a00a60650a453c65c356da748fec54084a197272137c440e7d52d08947357bf", _TFDS_DOMAINNET),
    KnownArchive("real_train.txt", "DomainNet", 4440944, None,
                 "19d483256d24aef19e581b65eda8333fd918aef3eb733fe499ff384120e3a289", _TFDS_DOMAINNET),
    KnownArchive("real_test.txt", "DomainNet", 1911327, None,
                 "2b3f75bcde309aeb5931292084b2162e936b5f189e3bb1ad716f0f74c460864c", _TFDS_DOMAINNET),
    KnownArchive("sketch_train.txt", "DomainNet", 1960222, None,
                 "72f4bc6afa5702a1ccba800d0053c1427de87439dfaf246dbc9a2e71abfec54f", _TFDS_DOMAINNET),
    KnownArchive("sketch_test.txt", "DomainNet", 850581, None,
                 "3fb48fca18c507c4321f007c3f62b308ec232ff6928cbfe2af64e76ec366e840", _TFDS_DOMAINNET),
    KnownArchive("train.tar", "VisDA-2017", None, None, None,
                 "none published (VisionLearningGroup/taskcv-2017-public gives no checksum)"),
    KnownArchive("validation.tar", "VisDA-2017", None, None, None,
                 "none published (VisionLearningGroup/taskcv-2017-public gives no checksum)"),
)


def _digits() -> list[KnownArchive]:
    """The torchvision digit files, md5 from the installed torchvision's classes (read now, not at import)."""
    from torchvision.datasets import MNIST, SVHN, USPS

    entries = [("MNIST", name, md5, "torchvision.datasets.MNIST.resources") for name, md5 in MNIST.resources]
    for dataset, table in (("USPS", USPS.split_list), ("SVHN", SVHN.split_list)):
        # split_list: split -> [url, file name, md5]
        origin = f"torchvision.datasets.{dataset}.split_list"
        entries += [(dataset, name, md5, origin) for _, name, md5 in table.values()]
    known = []
    for dataset, name, md5, md5_source in entries:
        size, sha256, tfds_source = TFDS_DIGITS.get(name, (None, None, ""))
        source = md5_source + (f"; size and sha256: {tfds_source}" if tfds_source else "")
        known.append(KnownArchive(name, dataset, size, md5, sha256, source))
    return known


def known_archives() -> dict[str, KnownArchive]:
    """Every listed file, by file name (the digit md5s as the installed torchvision has them)."""
    return {entry.name: entry for entry in (*_digits(), *_OTHERS)}


def file_digests(path: str | os.PathLike[str], kinds: tuple[str, ...] = ("md5", "sha256"),
                 block: int = 8 << 20) -> dict[str, str]:
    """Digests of a file in one streaming pass.

    Args:
        path: The file.
        kinds: :mod:`hashlib` names of the digests wanted.
        block: Bytes read at a time (memory stays at one block, whatever the file's size).

    Returns:
        Hex digest by kind.
    """
    hashers = {kind: hashlib.new(kind) for kind in kinds}
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {kind: hasher.hexdigest() for kind, hasher in hashers.items()}


def check_archive(path: str | os.PathLike[str], expected: KnownArchive | None = None) -> KnownArchive:
    """Check a downloaded file against its published size and digests.

    Args:
        path: The file; its name selects the entry of :func:`known_archives` unless ``expected`` is given.
        expected: The entry to compare with (e.g. one built from a dataset class's attributes).

    Returns:
        The entry the file matched.

    Raises:
        ArchiveNotChecked: The name is not in the table, or nothing is published for it.
        DabinError: The file is missing, shorter than published ("partial download: N of M
            bytes"), of another size, or a digest differs (expected and found, with the source).
    """
    file = Path(path).expanduser()
    if expected is None:
        table = known_archives()
        if file.name not in table:
            raise ArchiveNotChecked(f"{file}: not a file dabin knows a published checksum of; not checked")
        expected = table[file.name]
    if not expected.checkable:
        raise ArchiveNotChecked(f"{file}: no published size or checksum for {expected.dataset}'s {expected.name} "
                                f"({expected.source}); not checked")
    if not file.is_file():
        raise DabinError(f"{file}: missing ({expected.dataset}'s {expected.name})")
    size = file.stat().st_size
    if expected.size is not None and size < expected.size:
        raise DabinError(f"{file}: partial download: {size} of {expected.size} bytes ({expected.dataset}'s "
                         f"{expected.name}; size from {expected.source})")
    if expected.size is not None and size != expected.size:
        raise DabinError(f"{file}: {size} bytes, expected {expected.size} ({expected.dataset}'s {expected.name}; "
                         f"size from {expected.source})")
    wanted = {kind: value for kind, value in (("md5", expected.md5), ("sha256", expected.sha256)) if value}
    found = file_digests(file, tuple(wanted))  # only what is published: sha256 alone for the big zips
    for kind, want in wanted.items():
        if found[kind] != want.lower():
            note = f"; {expected.note}" if expected.note else ""
            raise DabinError(f"{file}: {kind} {found[kind]}, expected {want} ({expected.dataset}'s {expected.name}, "
                             f"{size} bytes; from {expected.source}){note}")
    return expected


def main(argv: list[str]) -> int:
    """``dabin data verify FILE ...``: check downloaded archives against their published checksums.

    Prints one line per file: ``ok`` with what was compared, ``not checked`` (nothing published),
    or the problem (partial download, size or digest mismatch, with the expected values).

    Returns:
        0 if every file that can be checked matches, 1 if any does not (each still checked).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="dabin data verify", description=main.__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="downloaded files (clipart.zip, domain_adaptation_images.tar.gz, ...)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            entry = check_archive(path)
        except ArchiveNotChecked as error:
            print(f"not checked: {error}")
        except DabinError as error:
            print(f"FAILED: {error}")
            failed += 1
        else:
            compared = ", ".join(kind for kind, value in (("size", entry.size), ("md5", entry.md5),
                                                          ("sha256", entry.sha256)) if value is not None)
            print(f"ok: {path} ({entry.dataset}'s {entry.name}: {compared} as published by {entry.source})")
    return 1 if failed else 0
