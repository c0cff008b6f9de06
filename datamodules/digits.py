"""The digit benchmarks (MNIST, USPS, SVHN) as a dabin image tree, from torchvision's files.

Digit transfer results (MNIST→USPS, USPS→MNIST, SVHN→MNIST: :data:`DIGIT_TASKS`) are reported
on torchvision's copies of the three datasets in CDAN (Long et al., NeurIPS 2018;
``thuml/CDAN``) and in the Transfer-Learning-Library (``thuml/Transfer-Learning-Library``).
dabin's data modules read ``root/<Domain>/<Class>/<image>`` trees, so :func:`export_digits`
writes torchvision's data once as such a tree:

- **Input**: a torchvision root, the folder one passes as ``root`` to
  ``torchvision.datasets.MNIST``, ``USPS`` and ``SVHN``, in their own layouts:
  ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (or the gunzipped files next to
  them), ``usps.bz2`` and ``usps.t.bz2``, ``train_32x32.mat`` and ``test_32x32.mat``. Nothing is
  downloaded unless asked (``download=True``, which runs torchvision's own downloads for the
  missing files).
- **Checks**: every published file is compared, before it is read, with the md5 torchvision
  publishes for it (read from the classes: ``MNIST.resources``, ``USPS.split_list``,
  ``SVHN.split_list``) and with the size and sha256 that TensorFlow Datasets registers where it
  has them (:mod:`datamodules.archives`); a wrong or partial file is one
  :class:`~dabin.errors.DabinError` line naming it, what was expected and what was found. A
  gunzipped MNIST file without its ``.gz`` has no published checksum: it is checked against the
  size its own idx header implies and used with a warning saying it is unverified.
- **Reading**: torchvision's classes read the verified files (MNIST from a staging copy of the
  verified, decompressed ``.gz`` files, so what is read is exactly what was checked). Labels are
  torchvision's: digits 0-9, SVHN's label 10 for the digit 0 becoming 0 as torchvision does.
- **Output** (``out``): ``<Domain>/<digit>/<split>_<index:05d>.png``, RGB PNGs at the native size
  (MNIST 28, USPS 16, SVHN 32 px; the gray ones replicated to three channels; the data module
  resizes), ``index`` being the image's position in torchvision's split; and the official splits
  as DomainNet ships them, ``<Domain>_train.txt`` and ``<Domain>_test.txt`` with lines
  ``<Domain>/<digit>/<file> <label>``.
- **Atomic and cached**: each domain is written into a hidden temporary folder inside ``out``
  and renamed into place, then a hidden marker ``.<Domain>.export.json`` records the source
  files (path, size, modification time, md5). A rerun whose sources are unchanged returns at
  once; an export without its marker (interrupted) is redone. Exports run under a file lock, so
  concurrent processes (DDP ranks, a sweep) wait for one exporter.

:func:`digits_tree` is what a data module calls with a user's ``root``: it exports the domains
present there into dabin's cache and returns the tree (``dabin data digits`` does the same from
the command line, :func:`main`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torchvision
from torchvision.datasets import MNIST, SVHN, USPS, VisionDataset
from torchvision.datasets.utils import download_url

from dabin.errors import DabinError
from dabin.io import WriteError, atomic_write_text
from datamodules.archives import ArchiveNotChecked, check_archive, file_digests, known_archives
from datamodules.cache import default_cache_dir
from datamodules.tree import DatasetWarning

__all__ = ["DIGIT_CLASSES", "DIGIT_DOMAINS", "DIGIT_IMAGE_SIZES", "DIGIT_SPLITS", "DIGIT_TASKS", "default_digits_out",
           "digits_tree", "export_digits", "is_torchvision_digits_root", "main", "present_domains"]

#: The three domains, in the order the tree lists them.
DIGIT_DOMAINS: tuple[str, ...] = ("MNIST", "USPS", "SVHN")
#: Class folder names; a class's label is its digit.
DIGIT_CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
#: The tasks digit results are reported on (CDAN, Long et al., NeurIPS 2018; the Transfer-Learning-Library's digits).
DIGIT_TASKS: tuple[tuple[str, str], ...] = (("MNIST", "USPS"), ("USPS", "MNIST"), ("SVHN", "MNIST"))
#: Native side of each domain's images (stored as is; the recipes resize to 28 for LeNet, 32 for DTN).
DIGIT_IMAGE_SIZES: dict[str, int] = {"MNIST": 28, "USPS": 16, "SVHN": 32}
#: The official splits exported (SVHN's ``extra`` is not part of the tasks).
DIGIT_SPLITS: tuple[str, ...] = ("train", "test")

#: Bump when the exported files change, so old exports are redone.
_VERSION = 1
_LOCK = ".digits.lock"
#: Images written per task of the writer threads.
_CHUNK = 512


@dataclass(frozen=True)
class _Source:
    """One file torchvision reads for a domain.

    Attributes:
        published: The distributed file, whose md5 torchvision publishes (``.gz``, ``.bz2``, ``.mat``).
        extracted: MNIST's gunzipped file that torchvision actually opens; None where torchvision
            reads ``published`` itself.
    """

    published: Path
    extracted: Path | None = None

    def present(self) -> Path | None:
        """The file an export would use: the published one if there, else the extracted one."""
        if self.published.is_file():
            return self.published
        if self.extracted is not None and self.extracted.is_file():
            return self.extracted
        return None


def _sources(root: Path, domain: str) -> list[_Source]:
    """The files torchvision reads for ``domain`` under ``root``, named by torchvision's classes."""
    if domain == "MNIST":
        raw = root / "MNIST" / "raw"  # MNIST.raw_folder: root/<class name>/raw
        return [_Source(raw / name, raw / name.removesuffix(".gz")) for name, _ in MNIST.resources]
    table = USPS.split_list if domain == "USPS" else SVHN.split_list
    return [_Source(root / table[split][1]) for split in DIGIT_SPLITS]


def _check_domains(domains: Sequence[str]) -> list[str]:
    unknown = [d for d in domains if d not in DIGIT_DOMAINS]
    if unknown:
        raise DabinError(f"unknown digit domain {unknown[0]!r}; expected some of {', '.join(DIGIT_DOMAINS)}")
    if not domains:
        raise DabinError(f"no digit domain given; expected some of {', '.join(DIGIT_DOMAINS)}")
    return [d for d in DIGIT_DOMAINS if d in domains]  # the tree's order, each once


def present_domains(root: str | os.PathLike[str]) -> list[str]:
    """The digit domains of which ``root`` holds at least one torchvision file (complete or not)."""
    base = Path(root).expanduser()
    if not base.is_dir():
        return []
    return [d for d in DIGIT_DOMAINS if any(source.present() for source in _sources(base, d))]


def is_torchvision_digits_root(path: str | os.PathLike[str] | None) -> bool:
    """Whether ``path`` is a torchvision root holding MNIST, USPS or SVHN files (see the module docstring)."""
    return path is not None and bool(present_domains(path))


def _idx_size(path: Path) -> int:
    """The size an idx file (MNIST's format) must have, from its own header."""
    with open(path, "rb") as handle:
        header = handle.read(4)
        # Magic: two zero bytes, the element type (0x08: unsigned byte) and the number of dimensions.
        if len(header) < 4 or header[:2] != b"\0\0" or header[2] != 0x08 or not 1 <= header[3] <= 4:
            raise DabinError(f"{path}: not an MNIST idx file of bytes (magic {header.hex() or 'missing'}, expected "
                             "00000801 or 00000803)")
        dims_bytes = handle.read(4 * header[3])
    if len(dims_bytes) < 4 * header[3]:
        raise DabinError(f"{path}: partial file: the idx header itself is cut short")
    dims = [int.from_bytes(dims_bytes[i:i + 4], "big") for i in range(0, len(dims_bytes), 4)]
    return 4 + 4 * len(dims) + math.prod(dims)


def _verify(root: Path, domain: str) -> list[dict[str, object]]:
    """Check every source file of ``domain``; returns what the marker records about each."""
    known = known_archives()
    records: list[dict[str, object]] = []
    for source in _sources(root, domain):
        path = source.present()
        if path is None:
            also = f" (or {source.extracted.name})" if source.extracted is not None else ""
            raise DabinError(f"{domain}: missing {source.published}{also}; put torchvision's files there or export "
                             "with download (dabin data digits --download)")
        if path == source.published:
            try:
                entry = check_archive(path, known[path.name])
            except ArchiveNotChecked:
                raise DabinError(f"{path}: torchvision publishes no md5 for it") from None
            md5, published = entry.md5, True
        else:
            expected = _idx_size(path)
            size = path.stat().st_size
            if size != expected:
                what = "partial file" if size < expected else "file longer than its header says"
                raise DabinError(f"{path}: {what}: {size} of {expected} bytes (from its idx header)")
            md5, published = file_digests(path, ("md5",))["md5"], False
            warnings.warn(f"{path}: used without {source.published.name}, whose published md5 it cannot be checked "
                          "against (only its size is)", DatasetWarning, stacklevel=3)
        stat = path.stat()
        records.append({"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": md5,
                        "published_md5": published})
    return records


def _download(root: Path, domain: str) -> None:
    """Fetch the missing files of ``domain`` with torchvision's own downloads (into ``root``)."""
    if all(source.present() for source in _sources(root, domain)):
        return
    print(f"dabin: downloading {domain} into {root} (torchvision)", file=sys.stderr, flush=True)
    try:
        if domain == "MNIST":
            MNIST(str(root), train=True, download=True)  # fetches and gunzips all four files
        for split in DIGIT_SPLITS if domain != "MNIST" else ():
            url, filename, md5 = (USPS if domain == "USPS" else SVHN).split_list[split]
            if not (root / filename).is_file():
                download_url(url, str(root), filename, md5)  # what USPS and SVHN do with download=True
    except Exception as error:  # noqa: BLE001 - no network, a server error, a full disk: one line
        message = str(error).strip().splitlines()
        raise DabinError(f"downloading {domain} into {root} failed: {type(error).__name__}: "
                         f"{message[0] if message else ''}") from None


def _stage_mnist(root: Path, records: list[dict[str, object]], staging: Path) -> Path:
    """A torchvision root holding exactly the checked MNIST files, gunzipped where they came as ``.gz``."""
    raw = staging / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source, record in zip(_sources(root, "MNIST"), records):
        assert source.extracted is not None
        path = Path(str(record["path"]))
        target = raw / source.extracted.name
        if path == source.published:
            # Decompress the verified archive rather than trust a gunzipped copy beside it.
            try:
                with gzip.open(path, "rb") as packed, open(target, "wb") as plain:
                    shutil.copyfileobj(packed, plain, 8 << 20)
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                raise DabinError(f"{path}: passed its checksum but does not decompress ({error})") from None
        else:
            os.symlink(path, target)
    return staging


def _open_split(domain: str, root: Path, split: str) -> VisionDataset:
    """torchvision's dataset of one split."""
    try:
        if domain == "MNIST":
            dataset = MNIST(str(root), train=split == "train")
            if len(dataset.data) != len(dataset.targets):
                raise DabinError(f"MNIST {split}: {len(dataset.data)} images but {len(dataset.targets)} labels "
                                 f"in {root / 'MNIST' / 'raw'}")
            return dataset
        if domain == "USPS":
            return USPS(str(root), train=split == "train")
        return SVHN(str(root), split=split)
    except DabinError:
        raise
    except Exception as error:  # noqa: BLE001 - a file that passed the checks and still does not parse
        message = str(error).strip().splitlines()
        raise DabinError(f"torchvision.datasets.{domain} cannot read its {split} split from {root}: "
                         f"{type(error).__name__}: {message[0] if message else ''}") from None


def _write_split(dataset: VisionDataset, folder: Path, domain: str, split: str) -> list[str]:
    """Write one split's images under ``folder`` (the domain folder); returns its list-file lines."""
    digits = set(DIGIT_CLASSES)
    count = len(dataset)  # type: ignore[arg-type]

    def write(start: int) -> list[str]:
        lines = []
        for index in range(start, min(start + _CHUNK, count)):
            image, label = dataset[index]
            if str(label) not in digits:
                raise DabinError(f"{domain} {split} image {index}: label {label!r} is not a digit 0-9")
            name = f"{label}/{split}_{index:05d}.png"
            # Gray digits get three equal channels: the backbones take RGB, as the recipes' do.
            image.convert("RGB").save(folder / name, format="PNG", compress_level=1)
            lines.append(f"{domain}/{name} {label}\n")
        return lines

    for digit in DIGIT_CLASSES:
        (folder / digit).mkdir(parents=True, exist_ok=True)
    # PNG encoding and file writes release the GIL: threads use the cores without pickling images.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        lines = [line for chunk in pool.map(write, range(0, count, _CHUNK)) for line in chunk]
    for digit in DIGIT_CLASSES:
        with contextlib.suppress(OSError):
            (folder / digit).rmdir()  # only if empty: a tiny split may lack a digit, and the tree wants none empty
    return lines


def _marker(out: Path, domain: str) -> Path:
    return out / f".{domain}.export.json"


def _list_file(out: Path, domain: str, split: str) -> Path:
    return out / f"{domain}_{split}.txt"


def _current(out: Path, domain: str, root: Path) -> bool:
    """Whether ``out`` holds a complete export of ``domain`` from the files now in ``root``."""
    try:
        marker = json.loads(_marker(out, domain).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict):
        return False
    if marker.get("version") != _VERSION or marker.get("source_root") != str(root):
        return False
    if not (out / domain).is_dir() or not all(_list_file(out, domain, s).is_file() for s in DIGIT_SPLITS):
        return False
    used = [source.present() for source in _sources(root, domain)]
    recorded = marker.get("sources", [])
    if [str(p) for p in used] != [r.get("path") for r in recorded]:
        return False  # e.g. the .gz has appeared beside a gunzipped file: export the verified data
    for path, record in zip(used, recorded):
        assert path is not None
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) != (record.get("size"), record.get("mtime_ns")):
            return False
    return True


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / _LOCK, "w")
    except OSError as error:
        raise WriteError(out, error) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        yield


def _export_domain(root: Path, out: Path, domain: str) -> dict[str, int]:
    """Verify, read and write one domain (the lock is held); returns images per split."""
    records = _verify(root, domain)
    # Left by an exporter that was killed: nobody else writes here while we hold the lock.
    for stale in out.glob(f".{domain}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{domain}.", suffix=".tmp", dir=out))
    try:
        read_root = _stage_mnist(root, records, scratch / "source") if domain == "MNIST" else root
        counts: dict[str, int] = {}
        for split in DIGIT_SPLITS:
            lines = _write_split(_open_split(domain, read_root, split), scratch / domain, domain, split)
            _list_file(scratch, domain, split).write_text("".join(lines))
            counts[split] = len(lines)
        # Swap in. The marker goes first, so an interruption from here on leaves an export that
        # the next run sees as unfinished and redoes.
        _marker(out, domain).unlink(missing_ok=True)
        if (out / domain).exists():
            os.rename(out / domain, scratch / "replaced")  # removed with the scratch folder
        os.rename(scratch / domain, out / domain)
        for split in DIGIT_SPLITS:
            os.replace(_list_file(scratch, domain, split), _list_file(out, domain, split))
        atomic_write_text(_marker(out, domain), json.dumps({
            "version": _VERSION, "domain": domain, "source_root": str(root), "sources": records,
            "counts": counts, "torchvision": torchvision.__version__}, indent=1) + "\n")
    except OSError as error:
        raise WriteError(out, error) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return counts


def export_digits(source_root: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  domains: Sequence[str] = DIGIT_DOMAINS, download: bool = False) -> Path:
    """Write torchvision's MNIST, USPS and SVHN as a dabin tree (see the module docstring).

    Args:
        source_root: The torchvision root (``MNIST/raw/...``, ``usps.bz2``, ``train_32x32.mat``, ...).
        out: The tree to write (created if needed); domains already exported from unchanged
            files are kept as they are.
        domains: Which of :data:`DIGIT_DOMAINS` to export.
        download: Fetch missing files first with torchvision's downloads (needs the network).

    Returns:
        ``out``, holding ``<Domain>/<digit>/<split>_<index>.png`` and ``<Domain>_{train,test}.txt``.

    Raises:
        DabinError: Unknown domain, missing root or file, a file that fails its checksum or size
            (naming it, the expected value and the one found), a file torchvision cannot read, a
            failed download, or an unwritable ``out``.
    """
    root = Path(source_root).expanduser().absolute()
    if not root.is_dir():
        raise DabinError(f"digits source root {root} is not a folder")
    target = Path(out).expanduser().absolute()
    chosen = _check_domains(domains)
    with _locked(target):
        for domain in chosen:
            if download:
                _download(root, domain)
            if _current(target, domain, root):
                continue
            size = DIGIT_IMAGE_SIZES[domain]
            print(f"dabin: exporting {domain} ({size}x{size}) from {root} into {target}", file=sys.stderr, flush=True)
            _export_domain(root, target, domain)
    return target


def default_digits_out(root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`digits_tree` exports ``root``: ``<cache>/digits-v<version>-<hash of root's absolute path>``."""
    parent = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = hashlib.sha1(str(Path(root).expanduser().absolute()).encode()).hexdigest()[:12]
    return parent / f"digits-v{_VERSION}-{key}"


def _domains_to_export(root: str | os.PathLike[str], download: bool) -> list[str]:
    domains = list(DIGIT_DOMAINS) if download else present_domains(root)
    if not domains:
        raise DabinError(f"{Path(root).expanduser().absolute()} holds none of torchvision's MNIST, USPS or SVHN files "
                         "(MNIST/raw/*-ubyte.gz, usps.bz2, usps.t.bz2, train_32x32.mat, test_32x32.mat)")
    return domains


def digits_tree(root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None, *,
                download: bool = False) -> Path:
    """The dabin tree of a torchvision digits root, exported into the cache on first use.

    Args:
        root: The torchvision root (:func:`is_torchvision_digits_root`).
        cache_dir: Cache folder; None means :func:`~datamodules.cache.default_cache_dir`.
        download: Fetch all three domains' missing files (else the domains present are exported).

    Returns:
        :func:`default_digits_out`, a tree of the domains exported.

    Raises:
        DabinError: As :func:`export_digits`; no digit file in ``root`` (without ``download``).
    """
    domains = _domains_to_export(root, download)
    return export_digits(root, default_digits_out(root, cache_dir), domains=domains, download=download)


def main(argv: list[str]) -> int:
    """Run ``dabin data digits`` (``argv`` without the words ``data digits``).

    Args:
        argv: ``--from ROOT [--to OUT] [--domains D ...] [--download]``.

    Returns:
        0 once the tree is written (errors are raised).

    Raises:
        DabinError: As :func:`export_digits` (``dabin`` prints it as one line and exits 2).
    """
    parser = argparse.ArgumentParser(prog="dabin data digits", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", required=True,
                        help="torchvision root (MNIST/raw/*-ubyte.gz, usps.bz2, train_32x32.mat, ...)")
    parser.add_argument("--to", dest="out", default=None,
                        help="tree to write (default: dabin's cache, where --data.root ROOT would export it)")
    parser.add_argument("--domains", nargs="+", default=None, choices=DIGIT_DOMAINS,
                        help="domains to export (default: those present; all three with --download)")
    parser.add_argument("--download", action="store_true", help="fetch missing files with torchvision's downloads")
    args = parser.parse_args(argv)
    domains = args.domains or _domains_to_export(args.source, args.download)
    out = Path(args.out) if args.out is not None else default_digits_out(args.source)
    tree = export_digits(args.source, out, domains=domains, download=args.download)
    for domain in domains:
        sizes = ", ".join(f"{split} {len(_list_file(tree, domain, split).read_text().splitlines())}"
                          for split in DIGIT_SPLITS)
        print(f"{domain}: {sizes} images")
    print(f"tree: {tree}  (train on it with --data.root {tree})")
    return 0
