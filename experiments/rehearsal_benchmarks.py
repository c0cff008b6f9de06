"""Rehearse the benchmark presets end to end, at the releases' image counts, on replicas: ``make rehearsal-benchmarks``.

For each of Office-31, VisDA-2017, DomainNet and the digits, what a user with the real data runs
is run here, on stand-ins for what cannot be shipped:

1. a replica at the release's image counts, made once under ``OUT/data/<dataset>``:
   :func:`dabin.testing.replicas.make_scaled_replica` at scale 1 (every domain and class folder,
   file name and official list file of the release, the real images per class where a source
   lists them, tiny images hard-linked); the digits: torchvision's own files (``MNIST/raw/*-ubyte.gz``,
   ``usps.bz2``, ``usps.t.bz2``) at the official counts, written with numpy, so that the run goes
   through the torchvision-root hook (:mod:`datamodules.digits`);
2. ``dabin sweep experiments/<dataset>/sweep.yaml`` narrowed by the sweep's own filters to one
   run (DANN, BN, seed 0) of one task: Office-31 amazon→webcam, VisDA-2017 train→validation,
   DomainNet clipart→painting (tllib's first task; its 21,850 test images fit the time here),
   digits MNIST→USPS; the real config (``dann.yaml``, the digits' ``dann_mnist_usps.yaml``) with
   ``--data.root`` pointing at 1 and only the overrides below, each printed with its reason;
3. ``dabin report`` on the sweep folder;
4. checks, printed as a table (expected | got | PASS/FAIL), with the expected numbers taken from
   the official counts of :mod:`datamodules.presets` and from the replica's own files (list
   lines, files per class folder), never from dabin's split code: the replica holds the release's
   counts; the run finished; the target's test result has ``n`` = the official test size (Office-31,
   VisDA-2017: every target image; DomainNet, digits: the target's test list) and a per-class result
   with the dataset's classes whose counts are those of the replica's files, class by class; the
   source and target train splits of the data module the run's recorded config builds have the
   official sizes; the report's Table 4 has the run's accuracy and tllib's published number beside
   it (VisDA-2017: also the mean class accuracy row).

Overrides, and why (nothing else differs from the configs):

- ``--trainer.max_steps N`` (default 1): only training is cut short.
- ``--trainer.limit_val_batches 0 --trainer.num_sanity_val_steps 0`` and
  ``--model.evaluation_points 0``: no validation passes and no evaluation points. On Office-31
  and VisDA-2017 the source's "validation" is every source image (the transductive protocol), so
  each pass would cost as much as the test itself; the test is what is rehearsed.
- ``--data.num_workers 1``: a 2-core CPU (the configs' 4 and 8 are for GPU machines).
- Office-31 ``--model.weights OUT/weights/resnet50-0676ba61.pth``: no ImageNet download offline;
  a file in the layout of torchvision's published ResNet-50 file instead (random values, no
  ``num_batches_tracked``, the legacy serialization), as the config's "offline" line suggests.
  Everything else is the config's: ResNet-50 at 224 px, batch 32 + 32, every webcam image tested.
- VisDA-2017 and DomainNet ``--data.image_size 32 --model.backbone resnet18 --model.width 8
  --model.small_input true --model.weights null``: testing 55,388 (VisDA) or 21,850 (DomainNet)
  images with ResNet-101 at 224 px is days on this CPU. The narrow network keeps the data path
  whole: every image of the evaluated split is still read, decoded and tested. The data path and
  the counts are what is rehearsed here, not accuracy.
- Digits: none beyond the common ones (LeNet at 28 px, from scratch, is the config's); the
  torchvision files' published md5s cannot match synthetic files, so the export into the cache
  (``OUT/cache``, ``DABIN_CACHE``) is made in this process with torchvision's md5 table pointed
  at the files written, once; the run then finds it current, as a user's second run does.

Exit status 0 when every check passes, 1 otherwise. Usage::

    python experiments/rehearsal_benchmarks.py [--out runs/rehearsal-benchmarks] [--steps 1]
        [--datasets office31 visda2017 domainnet digits] [--check-only]

``--check-only`` runs no sweep: it rewrites each report and checks what is there (the replicas are
reused when complete). Each dataset's time (replica, sweep, report, checks) is printed.
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"

if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))
if str(EXPERIMENTS) not in sys.path:  # the Office-Home rehearsal's table and report reader
    sys.path.insert(0, str(EXPERIMENTS))

from rehearsal import Checks, _number, _table  # noqa: E402

from dabin.report.published_da import PUBLISHED  # noqa: E402
from datamodules.naming import domain_key, format_task  # noqa: E402
from datamodules.presets import DATASETS, DatasetInfo, class_counts  # noqa: E402

#: The image suffixes the replicas and the digits export write.
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: The common overrides (module docstring), with their reason.
_COMMON_REASON = "only training is cut short: no validation passes, no evaluation points, 1 loader process"


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One preset's rehearsal: its config, task and overrides.

    Attributes:
        name: The ``--datasets`` name (``office31``), also the folder under ``experiments/`` and ``OUT/``.
        preset: Its key in :data:`datamodules.presets.DATASETS`.
        spec: The sweep spec (under ``experiments/<name>/``).
        source: The task's source, as the sweep's ``--tasks`` and the data module name it.
        target: The task's target.
        published: The task as tllib's table names it (:data:`dabin.report.published_da.PUBLISHED`).
        overrides: ``(arguments, reason)`` beyond the common ones; ``{weights}`` stands for the
            weights file the rehearsal writes.
        weights_arch: torchvision architecture of that weights file, if one is written.
    """

    name: str
    preset: str
    spec: str
    source: str
    target: str
    published: tuple[str, str]
    overrides: tuple[tuple[tuple[str, ...], str], ...] = ()
    weights_arch: str | None = None

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.preset]

    @property
    def task(self) -> str:
        return f"{self.source}->{self.target}"


_NARROW = (("--data.image_size", "32", "--model.backbone", "resnet18", "--model.width", "8",
            "--model.small_input", "true", "--model.weights", "null"),
           "ResNet-101 at 224 px over every target image is days on this CPU: a width-8 ResNet-18 at 32 px "
           "still reads and tests every image (the data path is rehearsed, not accuracy); no ImageNet weights")

BENCHMARKS: dict[str, Benchmark] = {
    "office31": Benchmark(
        "office31", "office_31", "sweep.yaml", "amazon", "webcam", ("amazon", "webcam"),
        overrides=((("--model.weights", "{weights}"),
                    "no ImageNet download offline: random weights in the layout of torchvision's published "
                    "resnet50-0676ba61.pth; ResNet-50 at 224 px as configured"),),
        weights_arch="resnet50"),
    "visda2017": Benchmark("visda2017", "visda2017", "sweep.yaml", "train", "validation", ("Synthetic", "Real"),
                           overrides=(_NARROW,)),
    "domainnet": Benchmark("domainnet", "domainnet", "sweep.yaml", "clipart", "painting", ("clipart", "painting"),
                           overrides=(_NARROW,)),
    "digits": Benchmark("digits", "digits", "sweep_mnist_usps.yaml", "MNIST", "USPS", ("MNIST", "USPS")),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/rehearsal-benchmarks", help="work folder (data, weights, sweeps)")
    parser.add_argument("--datasets", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS),
                        help="presets to rehearse (default: all four)")
    parser.add_argument("--steps", type=int, default=1, help="training steps of the run (default 1)")
    parser.add_argument("--check-only", action="store_true",
                        help="run no sweep: rewrite the reports of OUT/<dataset>/sweep and check them")
    return parser


def overrides(bench: Benchmark, replica: Path, steps: int, weights: Path | None) -> list[tuple[list[str], str]]:
    """Every argument the rehearsal adds to the config, in groups with their reason (module docstring)."""
    groups = [(["--data.root", str(replica)], "the replica"),
              (["--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
                "--trainer.num_sanity_val_steps", "0", "--model.evaluation_points", "0",
                "--data.num_workers", "1"], _COMMON_REASON)]
    for arguments, reason in bench.overrides:
        groups.append(([str(weights) if a == "{weights}" else a for a in arguments], reason))
    return groups


# --------------------------------------------------------------------------------------------
# Stand-ins: weights, the digits' torchvision files


def write_torchvision_weights(path: Path, arch: str) -> Path:
    """Random weights under torchvision's key set for ``arch``, as its published files are stored.

    The published files (2017) have no ``num_batches_tracked`` buffers, no ``_metadata`` and the
    legacy serialization; torchvision's model has exactly their other keys and shapes.
    """
    import collections

    import torch
    import torchvision

    if path.is_file():
        return path
    torch.manual_seed(0)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    plain = collections.OrderedDict((k, v.detach().clone()) for k, v in state.items()
                                    if not k.endswith("num_batches_tracked"))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    torch.save(plain, partial, _use_new_zipfile_serialization=False)
    partial.replace(path)
    return path


def _labels(domain: str, split: str, total: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` digit labels in a shuffled order, the class proportions those of the counted release where known."""
    counts = class_counts("digits", domain, split) or class_counts("digits", domain, "test") or (1,) * 10
    exact = [total * c / sum(counts) for c in counts]
    whole = [int(x) for x in exact]
    for i in sorted(range(10), key=lambda i: whole[i] - exact[i])[:total - sum(whole)]:
        whole[i] += 1
    labels = np.repeat(np.arange(10, dtype=np.uint8), whole)
    rng.shuffle(labels)
    return labels


def _idx(magic: int, array: np.ndarray) -> bytes:
    """An idx file (MNIST's format): big-endian magic, big-endian dimensions, then the bytes."""
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


def write_digits_root(root: Path, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """torchvision's MNIST and USPS files at the official counts under ``root``; returns the labels written.

    Images are one pattern per digit (the pixels do not matter, the formats and counts do); MNIST's
    ``.gz`` files as distributed, USPS's bzip2-compressed libsvm lines (label 1..10, 256 values in [-1, 1]).
    """
    rng = np.random.default_rng(seed)
    sizes = DATASETS["digits"].split_sizes
    labels: dict[str, dict[str, np.ndarray]] = {"MNIST": {}, "USPS": {}}
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    patterns = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    for split, prefix, n in (("train", "train", sizes["MNIST"][0]), ("test", "t10k", sizes["MNIST"][1])):
        y = _labels("MNIST", split, n, rng)
        for kind, magic, array in (("images-idx3", 0x0803, patterns[y]), ("labels-idx1", 0x0801, y)):
            (raw / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(_idx(magic, array), compresslevel=1))
        labels["MNIST"][split] = y
    rows = [" ".join(f"{i + 1}:{v:.4f}" for i, v in enumerate(rng.uniform(-1, 1, 256))) for _ in range(10)]
    for split, name, n in (("train", "usps.bz2", sizes["USPS"][0]), ("test", "usps.t.bz2", sizes["USPS"][1])):
        y = _labels("USPS", split, n, rng)
        text = "".join(f"{label + 1} {rows[label]}\n" for label in y)
        (root / name).write_bytes(bz2.compress(text.encode(), compresslevel=1))
        labels["USPS"][split] = y
    return labels


@contextlib.contextmanager
def _published_md5s(root: Path) -> Iterator[None]:
    """torchvision's md5 table (and TFDS's sizes) pointed at the files under ``root``, for this block only."""
    import hashlib

    from torchvision.datasets import MNIST, USPS

    from datamodules import archives

    def md5(path: Path) -> str:
        return hashlib.md5(path.read_bytes()).hexdigest()

    saved = MNIST.resources, USPS.split_list, archives.TFDS_DIGITS
    raw = root / "MNIST" / "raw"
    try:
        MNIST.resources = [(name, md5(raw / name)) for name, _ in saved[0]]
        USPS.split_list = {split: [url, name, md5(root / name)] for split, (url, name, _) in saved[1].items()}
        archives.TFDS_DIGITS = {}  # its published sizes are the real files'
        yield
    finally:
        MNIST.resources, USPS.split_list, archives.TFDS_DIGITS = saved


def make_digits_replica(folder: Path, cache: Path) -> Path:
    """The torchvision root of the digits rehearsal, exported once into ``cache`` (module docstring)."""
    from datamodules.digits import default_digits_out, export_digits

    root = folder / "torchvision"
    marker = folder / ".complete"
    if not marker.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        write_digits_root(root)
        marker.write_text("write_digits_root\n")
    with _published_md5s(root):
        export_digits(root, default_digits_out(root, cache), domains=("MNIST", "USPS"))
    return root


def make_data(bench: Benchmark, out: Path) -> Path:
    """The replica of ``bench`` (made once: a ``.complete`` marker says it is whole)."""
    from dabin.testing.replicas import make_scaled_replica

    folder = out / "data" / bench.name
    if bench.name == "digits":
        return make_digits_replica(folder, out / "cache")
    marker = folder / ".complete"
    if not marker.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        make_scaled_replica(bench.preset, folder, scale=1.0)
        marker.write_text("make_scaled_replica scale 1.0\n")
    return folder


# --------------------------------------------------------------------------------------------
# Expected numbers, from the presets and the replica's files (not from dabin's split code)


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a correct run on the replica reports.

    Attributes:
        source_train: Official size of the source's train split.
        target_train: Official size of the target's train split (unlabelled).
        target_test: Official size of the target's test split.
        test_classes: Images per class of the target's test split, by class folder name, counted in the replica.
        num_classes: The dataset's classes.
        replica: ``(check, expected, got)`` rows about the replica itself.
    """

    source_train: int
    target_train: int
    target_test: int
    test_classes: dict[str, int]
    num_classes: int
    replica: tuple[tuple[str, Any, Any], ...] = ()


def _images(folder: Path) -> Counter[str]:
    """Image files per class folder below ``folder`` (``<class>/<file>``; Office-31's ``images/`` level read through)."""
    if (folder / "images").is_dir():
        folder = folder / "images"
    counts: Counter[str] = Counter()
    with os.scandir(folder) as classes:
        for entry in classes:
            if entry.is_dir():
                with os.scandir(entry.path) as files:
                    counts[entry.name] = sum(f.name.lower().endswith(_IMAGE_SUFFIXES) for f in files)
    return counts


def _list_classes(path: Path) -> Counter[str]:
    """Lines per class of an official list (``<domain>/<class>/<file> <label>``)."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        if line.strip():
            counts[line.split()[0].split("/")[-2]] += 1
    return counts


def _torchvision_digits(root: Path) -> dict[str, dict[str, Counter[str]]]:
    """Images per digit of MNIST's and USPS's train and test files, read from the files themselves."""
    found: dict[str, dict[str, Counter[str]]] = {"MNIST": {}, "USPS": {}}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        raw = gzip.decompress((root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
        found["MNIST"][split] = Counter(str(label) for label in raw[8:])  # after the magic and the count
    for split, name in (("train", "usps.bz2"), ("test", "usps.t.bz2")):
        lines = bz2.decompress((root / name).read_bytes()).decode().splitlines()
        found["USPS"][split] = Counter(str(int(line.split(" ", 1)[0]) - 1) for line in lines if line)  # labels 1..10
    return found


def expected_counts(bench: Benchmark, data: Path) -> Expected:
    """Official sizes (presets) and the replica's per-class test counts (its files), for ``bench``'s task."""
    info = bench.info
    rows: list[tuple[str, Any, Any]] = []
    if bench.name == "digits":
        files = _torchvision_digits(data)
        rows.append(("replica: torchvision files (train, test) per domain",
                     {d: info.split_sizes[d] for d in files},
                     {d: tuple(sum(files[d][s].values()) for s in ("train", "test")) for d in files}))
        test_classes = dict(files[bench.target]["test"])
        train = {d: info.split_sizes[d][0] for d in info.domains}
        test = info.split_sizes[bench.target][1]
    else:
        domains = [bench.source, bench.target]
        files = {d: _images(data / d) for d in domains}
        rows.append(("replica: images per domain (files)", {d: info.counts[d] for d in domains},
                     {d: sum(files[d].values()) for d in domains}))
        rows.append(("replica: class folders per domain", {d: info.num_classes for d in domains},
                     {d: len(files[d]) for d in domains}))
        if info.transfer_protocol == "lists":
            lists = {(d, s): _list_classes(data / f"{d}_{s}.txt") for d in domains for s in ("train", "test")}
            rows.append(("replica: official list lines (train, test)", {d: info.split_sizes[d] for d in domains},
                         {d: (sum(lists[d, "train"].values()), sum(lists[d, "test"].values())) for d in domains}))
            test_classes = dict(lists[bench.target, "test"])
            train = {d: info.split_sizes[d][0] for d in domains}
            test = info.split_sizes[bench.target][1]
        else:  # transductive: every image of a domain is its train and its test part
            test_classes = dict(files[bench.target])
            train = {d: info.counts[d] for d in domains}
            test = info.counts[bench.target]
    return Expected(source_train=train[bench.source], target_train=train[bench.target], target_test=test,
                    test_classes=test_classes, num_classes=info.num_classes, replica=tuple(rows))


# --------------------------------------------------------------------------------------------
# What the run did


def find_run(sweep_dir: Path, bench: Benchmark) -> tuple[Path | None, str]:
    """The finished DANN BN run of the task in ``sweep_dir`` and its state (``done``, ``not done``, ``no run``)."""
    found = []
    for job_file in sorted(sweep_dir.glob("*/job.json")):
        try:
            job = json.loads(job_file.read_text())
        except ValueError:
            continue
        if (job.get("method"), job.get("norm")) == ("dann", "bn") and \
                (domain_key(job.get("source", "")), domain_key(job.get("target", ""))) == \
                (domain_key(bench.source), domain_key(bench.target)):
            found.append(job_file.parent)
    done = [folder for folder in found if (folder / "done").is_file()]
    if done:
        return done[0], "done"
    return (found[0] if found else None), ("not done" if found else "no run")


def read_metrics(run_dir: Path | None) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()) if run_dir else None
    except (OSError, ValueError):
        return None


def _target_entry(metrics: dict[str, Any] | None, target: str) -> dict[str, Any] | None:
    for name, entry in (metrics or {}).get("test", {}).items():
        if domain_key(name) == domain_key(target):
            return entry
    return None


def split_sizes(metrics: dict[str, Any]) -> dict[str, int]:
    """Train and test sizes of the data module that the run's recorded config builds, in this process.

    A run records its config but not its split sizes, so the data module is rebuilt from the
    recorded ``data`` arguments (the same root, task, split and seed give the same split).
    """
    from datamodules import TransferDataModule
    from datamodules.tree import DatasetWarning

    data = dict(metrics["config"]["data"]["init_args"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # the replica's count notes; the checks compare counts
        module = TransferDataModule(**data)
    source, target = module.splits[module.source_name], module.splits[module.target_name]
    return {"source_train": len(source[0]), "target_train": len(target[0]), "target_test": len(target[1])}


# --------------------------------------------------------------------------------------------
# Checks


def check_replica(checks: Checks, bench: Benchmark, expected: Expected) -> None:
    """The replica's rows: it holds the release's counts."""
    for name, want, got in expected.replica:
        checks.add(f"{bench.name} {name}", want, got)


def check_run(checks: Checks, bench: Benchmark, expected: Expected, sweep_dir: Path,
              sizes: dict[str, int] | None, sweep_status: int | None, report_status: int | None) -> None:
    """The run's and the report's rows (module docstring, step 4).

    Args:
        checks: The table to add to.
        bench: The benchmark.
        expected: :func:`expected_counts`.
        sweep_dir: The sweep folder.
        sizes: :func:`split_sizes` of the run (None: no run to build it from).
        sweep_status: ``dabin sweep``'s exit status (None: not run now).
        report_status: ``dabin report``'s exit status (None: not run).
    """
    name = bench.name
    if sweep_status is not None:
        checks.add(f"{name}: dabin sweep exit status", 0, sweep_status)
    run_dir, state = find_run(sweep_dir, bench)
    metrics = read_metrics(run_dir) if state == "done" else None
    if not checks.add(f"{name} {bench.task}: run finished (done, metrics.json)", "done",
                      state if state != "done" or metrics else "no metrics.json"):
        return
    entry = _target_entry(metrics, bench.target) or {}
    checks.add(f"{name}: target test n = official test size", expected.target_test, entry.get("n"))
    per_class = entry.get("per_class") or {}
    classes, counts = per_class.get("classes") or [], per_class.get("n") or []
    checks.add(f"{name}: per-class result, classes", expected.num_classes, len(classes))
    checks.add(f"{name}: per-class n sums to the test size", expected.target_test, sum(counts))
    got = dict(zip(classes, counts))
    # A class without test images (DomainNet's painting_test.txt has no syringe) is 0 on both sides.
    differ = sorted(c for c in set(got) | set(expected.test_classes)
                    if got.get(c, 0) != expected.test_classes.get(c, 0))
    checks.add(f"{name}: per-class n = the replica's test files per class", "all classes",
               "all classes" if not differ else f"{len(differ)} differ (e.g. {differ[0]}: "
               f"{expected.test_classes.get(differ[0], 0)} vs {got.get(differ[0], 0)})")
    checks.add(f"{name}: class_accuracy recorded", "a number",
               "a number" if isinstance(entry.get("class_accuracy"), (int, float)) else entry.get("class_accuracy"))
    if sizes is not None:
        for key, label in (("source_train", f"source ({bench.source}) train split"),
                           ("target_train", f"target ({bench.target}) train split"),
                           ("target_test", f"target ({bench.target}) test split")):
            checks.add(f"{name}: data module {label} = official", getattr(expected, key), sizes.get(key))
    _check_report(checks, bench, sweep_dir, entry, report_status)


def _check_report(checks: Checks, bench: Benchmark, sweep_dir: Path, entry: dict[str, Any],
                  report_status: int | None) -> None:
    """Table 4: the run's cell and tllib's published number beside it (VisDA-2017: the mean class row too)."""
    name = bench.name
    if report_status is not None:
        checks.add(f"{name}: dabin report exit status", 0, report_status)
    report_file = sweep_dir / "report.md"
    report = report_file.read_text() if report_file.is_file() else ""
    table = _table(report, "Table 4")
    header = table[0] if table else []
    column = header.index("DANN BN") if "DANN BN" in header else None
    tllib = header.index("tllib DANN") if "tllib DANN" in header else None
    if not checks.add(f"{name}: report Table 4 has DANN BN and tllib DANN columns", "both",
                      "both" if column is not None and tllib is not None else f"header {header}"):
        return
    published = PUBLISHED[bench.name]
    index = published.tasks.index(bench.published)
    # The report lists every task of the spec (the others without runs); the task's row is named as
    # Table 4 writes tasks (format_task: "Am→We"), VisDA-2017's mean class row "<task> mean class".
    label = format_task(bench.source, bench.target)
    rows = {row[0]: row for row in table[1:] if row}
    wanted = [("accuracy", label, published.rows["dann"][index])]
    if published.class_means:
        wanted.append(("class_accuracy", f"{label} mean class", published.class_means["dann"]))
    for field, row_label, number in wanted:
        row = rows.get(row_label, [])
        cell = row[column] if len(row) > column else ""
        paper = row[tllib] if len(row) > tllib else ""
        value, measured = _number(cell), entry.get(field)
        what = "mean class" if field == "class_accuracy" else "task"
        checks.add(f"{name}: report {what} row {row_label}: DANN BN | tllib",
                   f"{measured:.2f} | {number:.1f}" if isinstance(measured, (int, float)) else f"? | {number:.1f}",
                   f"{cell} | {paper}",
                   ok=value is not None and isinstance(measured, (int, float)) and abs(value - measured) < 0.006
                   and paper == f"{number:.1f}")


# --------------------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def rehearse(bench: Benchmark, out: Path, steps: int, check_only: bool, checks: Checks) -> dict[str, float]:
    """One preset's replica, sweep, report and checks; returns the seconds of each phase."""
    seconds: dict[str, float] = {}
    work = out / bench.name
    env = {**os.environ, "DABIN_CACHE": str(out / "cache")}  # the digits export (and nothing else) goes there
    os.environ["DABIN_CACHE"] = env["DABIN_CACHE"]  # the in-process data module finds it too
    step = time.perf_counter()
    data = make_data(bench, out)
    weights = (write_torchvision_weights(out / "weights" / "resnet50-0676ba61.pth", bench.weights_arch)
               if bench.weights_arch else None)
    seconds["replica"] = time.perf_counter() - step
    print(f"[{bench.name}] replica {data}: {seconds['replica']:.1f} s", flush=True)

    groups = overrides(bench, data, steps, weights)
    for arguments, reason in groups:
        print(f"[{bench.name}] override {' '.join(arguments)}  ({reason})", flush=True)
    sweep_dir = work / "sweep"
    command = [sys.executable, "-m", "dabin", "sweep", str(EXPERIMENTS / bench.name / bench.spec),
               "--out", str(sweep_dir), "--methods", "dann", "--norms", "bn", "--seeds", "0",
               "--tasks", bench.task, "--workers", "1", "--", *(a for arguments, _ in groups for a in arguments)]
    step = time.perf_counter()
    sweep_status = None
    if not check_only:
        shutil.rmtree(sweep_dir, ignore_errors=True)
        print(f"[{bench.name}] {' '.join(command)}", flush=True)
        sweep_status = subprocess.call(command, cwd=REPO, env=env)
    seconds["sweep"] = time.perf_counter() - step
    print(f"[{bench.name}] sweep: exit status {sweep_status}, {_minutes(seconds['sweep'])}", flush=True)

    step = time.perf_counter()
    report_status = subprocess.call([sys.executable, "-m", "dabin", "report", str(sweep_dir)], cwd=REPO, env=env)
    seconds["report"] = time.perf_counter() - step

    step = time.perf_counter()
    expected = expected_counts(bench, data)
    check_replica(checks, bench, expected)
    run_dir, state = find_run(sweep_dir, bench)
    metrics = read_metrics(run_dir) if state == "done" else None
    sizes = split_sizes(metrics) if metrics else None
    check_run(checks, bench, expected, sweep_dir, sizes, sweep_status, report_status)
    seconds["checks"] = time.perf_counter() - step
    print(f"[{bench.name}] times: " + ", ".join(f"{k} {_minutes(v)}" for k, v in seconds.items())
          + f"; total {_minutes(sum(seconds.values()))}", flush=True)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out).resolve()
    checks = Checks()
    times = {}
    started = time.perf_counter()
    for name in args.datasets:
        times[name] = rehearse(BENCHMARKS[name], out, args.steps, args.check_only, checks)
    print()
    checks.print()
    for name, seconds in times.items():
        print(f"[rehearsal-benchmarks] {name}: " + ", ".join(f"{k} {_minutes(v)}" for k, v in seconds.items())
              + f"; total {_minutes(sum(seconds.values()))}")
    print(f"[rehearsal-benchmarks] total wall time {_minutes(time.perf_counter() - started)}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
