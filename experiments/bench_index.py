"""Benchmark: indexing a DomainNet-sized tree with dabin against torchvision's ImageFolder, at 10, 50, 100 %.

DomainNet's replica is generated once per scale under ``--out`` (reused by later runs) by
:func:`dabin.testing.replicas.make_scaled_replica`: the release's domain and class folders, file
names and list files, each domain's count scaled, every file a hard link to one tiny image per
(domain, class), so 586,575 files cost directory entries rather than inodes and data blocks.

Measured at each scale, side by side in one run, each measurement in a fresh subprocess (a
second scan in one process would find the strings, the allocator and the imports warm; import
time is excluded from every figure, and a full garbage collection runs before the clock starts, so
that one the imports made due does not land in the timed block), the median of ``--repeats``
interleaved rounds:

* **index**: ``DomainTree.scan(root)`` with an empty index folder (``$DABIN_CACHE``: the first
  process of a sweep, which lists the tree and writes the index) and with a warm one (every later
  process), against six ``torchvision.datasets.ImageFolder`` (one per domain folder, as a user
  would build them); for information, the listing alone: the ``pathlib`` walk tree.py used
  before :mod:`datamodules.index`, :func:`~datamodules.index.walk_layout`, and reading a valid
  index (:func:`~datamodules.index.cached_layout`);
* **split**: the 80/20 splits of all six domains (:func:`~datamodules.splits.transfer_split`, as
  the data modules call it) against sklearn's same stratified ``train_test_split`` on each
  ImageFolder's targets;
* **memory**: what the index holds (``tracemalloc``: allocations alive after the scan, and the
  peak during it), dabin's tree against the six ImageFolders; and the samples alone as
  :class:`~datamodules.tree.Sample` is now (a named tuple of its domain folder's string and its
  key), as it was (a dataclass with a ``Path``) and as a slotted dataclass with a string path;
* **first batch**: ``TransferDataModule(root, task="clipart->real", image_size=32,
  batch_size=32, num_workers=0)`` and ``next(iter(train_dataloader()["source"]))``, index folder
  empty and warm, against ImageFolder over the two domains + the same stratified split (sklearn)
  + a shuffling DataLoader with RandomResizedCrop(32).

All times are with a warm OS page cache: the tree is listed once, untimed, before the
measurements of each scale (dropping the caches needs root and slows everyone on the machine);
a first scan after a reboot is slower for every contender alike.

Usage::

    python experiments/bench_index.py [--scales 0.1 0.5 1] [--repeats 3] [--out /tmp/dabin-bench-index]
        [--json results.json]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dabin.testing.replicas import make_scaled_replica
from datamodules.presets import DATASETS
from datamodules.index import cached_layout, index_path, walk_layout
from datamodules.tree import IMAGE_EXTENSIONS, DatasetWarning, DomainTree

#: Bytes the index may hold at full size, at most ("well under 1 GB").
MEMORY_GOAL = 1 << 30
#: The default scales, as fractions of DomainNet's release counts.
SCALES = (0.1, 0.5, 1.0)
#: Bumped when the generated tree changes; a tree written by another version is regenerated.
TREE_VERSION = 3
#: Processes of a sweep over DomainNet's 30 single-source tasks.
SWEEP_TASKS = 30

INDEX_CONTENDERS = ("scan, index cold", "scan, index warm", "ImageFolder x6", "pathlib walk (before)",
                    "walk_layout", "index read")
BATCH_CONTENDERS = ("dabin, index cold", "dabin, index warm", "ImageFolder x2")


# --- the generated tree ------------------------------------------------------------------------

def tree_folder(out: Path, fraction: float) -> Path:
    """Where :func:`make_domainnet_tree` puts the tree of one scale."""
    return out / f"domainnet-{fraction * 100:g}"


def make_domainnet_tree(out: str | os.PathLike[str], fraction: float) -> Path:
    """Generate (or reuse) DomainNet's replica at ``fraction`` of the release (:func:`make_scaled_replica`).

    The tree is written beside its final place and renamed into it when complete, with a marker
    file naming its scale, so an interrupted run leaves no tree that a later run would reuse.

    Args:
        out: Folder holding the trees (created).
        fraction: Share of the release's per-domain counts (1.0: 586,575 images).

    Returns:
        The tree's root, ``<out>/domainnet-<percent>``.
    """
    root = tree_folder(Path(out), fraction)
    marker = root.with_name(root.name + ".json")
    expected = {"version": TREE_VERSION, "fraction": fraction}
    if root.is_dir() and marker.is_file() and json.loads(marker.read_text()) == expected:
        return root
    partial = root.with_name(f".{root.name}.partial")
    for stale in (partial, root):
        if stale.exists():
            shutil.rmtree(stale)
    marker.unlink(missing_ok=True)
    make_scaled_replica("domainnet", partial, fraction)
    partial.rename(root)
    marker.write_text(json.dumps(expected))
    return root


def pathlib_walk(root: Path, ignored: list[Path]) -> dict[str, dict[str, list[str]]]:
    """The listing tree.py did before :mod:`datamodules.index` (a ``Path`` per file), for the "before" row."""
    def visible(entry: os.DirEntry[str]) -> bool:
        return not entry.name.startswith((".", "__MACOSX"))

    def subdirs(folder: Path) -> list[os.DirEntry[str]]:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if visible(e) and e.is_dir()), key=lambda e: e.name)

    layout: dict[str, dict[str, list[str]]] = {}
    for domain in subdirs(root):
        classes: dict[str, list[str]] = {}
        for class_dir in subdirs(Path(domain.path)):
            images: list[str] = []
            for folder, dirnames, filenames in os.walk(class_dir.path):
                dirnames[:] = [d for d in dirnames if not d.startswith((".", "__MACOSX"))]
                for filename in filenames:
                    path = Path(folder, filename)
                    if filename.startswith("."):
                        continue
                    if filename.lower().endswith(IMAGE_EXTENSIONS):
                        images.append(path.relative_to(domain.path).as_posix())
                    else:
                        ignored.append(path)
            classes[class_dir.name] = images
        with os.scandir(domain.path) as entries:
            ignored.extend(Path(e.path) for e in entries if visible(e) and e.is_file())
        layout[domain.name] = classes
    return layout


# --- sample representations (the before and an alternative) --------------------------------------------------

@dataclass(frozen=True)
class PathSample:
    """tree.Sample before: a frozen dataclass holding a ``Path`` per image."""

    path: Path
    label: int
    domain: int
    key: str


@dataclass(frozen=True, slots=True)
class SlotsStrSample:
    """A frozen slotted dataclass with the path as a string."""

    path: str
    label: int
    domain: int
    key: str


def _representations(root: Path, layout: dict[str, dict[str, list[str]]]) -> dict[str, Callable[[], list[Any]]]:
    """Builders of the samples in each representation, from one layout, in tree order (as tree._build)."""
    from datamodules.tree import Sample

    classes = sorted({c for cs in layout.values() for c in cs}, key=lambda c: (c.lower(), c))
    order = [(d, folder) for d, folder in enumerate(DATASETS["domainnet"].domains)]
    items = [(d, folder, label, key) for d, folder in order for label, c in enumerate(classes)
             for key in sorted(layout[folder][c])]
    paths = {folder: str(root / folder) for _, folder in order}
    return {
        "dataclass + Path (tree.py before)": lambda: [PathSample(root / f / k, label, d, k) for d, f, label, k in items],
        "slots + str path": lambda: [SlotsStrSample(f"{paths[f]}/{k}", label, d, k) for d, f, label, k in items],
        "named tuple, folder + key (tree.py now)": lambda: [Sample(paths[f], k, label, d) for d, f, label, k in items],
    }


# --- the measurements, one per subprocess --------------------------------------------------------

def _imagefolders(root: Path, domains: tuple[str, ...]) -> list[Any]:
    from torchvision.datasets import ImageFolder

    return [ImageFolder(str(root / domain)) for domain in domains]


def _sklearn_split(targets: list[int]) -> tuple[list[int], list[int]]:
    from sklearn.model_selection import train_test_split

    # Stratified where sklearn can (as transfer_split): every class twice, and on both sides.
    held_out, classes = math.ceil(0.2 * len(targets)), len(set(targets))
    stratify = min(Counter(targets).values()) >= 2 and classes <= min(held_out, len(targets) - held_out)
    train, test = train_test_split(range(len(targets)), test_size=0.2, stratify=targets if stratify else None,
                                   random_state=0)
    return sorted(train), sorted(test)


def _index_worker(contender: str, root: Path, index_dir: Path) -> dict[str, Any]:
    """Time one indexing contender (and, for the warm scan and ImageFolder, the splits)."""
    importlib.import_module("sklearn.model_selection")  # before the clock starts, as every import
    from datamodules.splits import transfer_split

    if contender == "ImageFolder x6":
        importlib.import_module("torchvision.datasets")  # before the clock starts
    domains = DATASETS["domainnet"].domains
    result: dict[str, Any] = {}
    gc.collect()  # a full collection the imports made due would otherwise land in the timed block
    start = time.perf_counter()
    if contender.startswith("scan"):
        tree = DomainTree.scan(root)
        result["index_s"] = time.perf_counter() - start
        result["index_written"] = index_path(root).exists()
        if contender == "scan, index warm":
            start = time.perf_counter()
            for d, name in enumerate(tree.domain_names):
                samples = tree.domain_samples(d)
                train, test = transfer_split(samples, name, 0)
                [samples[i] for i in train], [samples[i] for i in test]
            result["split_s"] = time.perf_counter() - start
        result["images"] = len(tree.samples)
    elif contender == "ImageFolder x6":
        folders = _imagefolders(root, domains)
        result["index_s"] = time.perf_counter() - start
        start = time.perf_counter()
        for folder in folders:
            _sklearn_split(folder.targets)
        result["split_s"] = time.perf_counter() - start
        result["images"] = sum(len(folder) for folder in folders)
    else:
        if contender == "pathlib walk (before)":
            layout = pathlib_walk(root, [])
        elif contender == "walk_layout":
            layout = walk_layout(root, [])
        else:
            layout = cached_layout(root, [], index_dir)
        result["index_s"] = time.perf_counter() - start
        result["images"] = sum(len(keys) for classes in layout.values() for keys in classes.values())
    return result


def _memory_worker(contender: str, root: Path, index_dir: Path) -> dict[str, Any]:
    """Bytes held by the index (tracemalloc), and the samples alone in each representation."""
    if contender == "ImageFolder x6":
        importlib.import_module("torchvision.datasets")  # before the clock starts

        tracemalloc.start()
        folders = _imagefolders(root, DATASETS["domainnet"].domains)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"current": current, "peak": peak, "images": sum(len(folder) for folder in folders)}
    tracemalloc.start()
    tree = DomainTree.scan(root)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result: dict[str, Any] = {"current": current, "peak": peak, "images": len(tree.samples)}
    del tree
    gc.collect()
    # Representations: built from one layout read beforehand, so each window counts only the
    # samples' own objects; the key strings (shared by all of them) are counted once, apart.
    layout = cached_layout(root, [], index_dir)
    keys = sum(sys.getsizeof(key) for classes in layout.values() for ks in classes.values() for key in ks)
    result["keys"] = keys
    representations: dict[str, dict[str, int]] = {}
    for name, build in _representations(root, layout).items():
        start = time.perf_counter()
        build()  # untraced, for the time it takes (tracemalloc slows allocation down)
        seconds = time.perf_counter() - start
        gc.collect()
        tracemalloc.start()
        samples = build()
        built = tracemalloc.get_traced_memory()[0]
        for sample in samples:
            os.fspath(sample.path)  # an epoch opens every file: a Path caches its string then
        opened = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        representations[name] = {"built": built + keys, "after_epoch": opened + keys, "build_s": seconds}
        del samples
        gc.collect()
    result["representations"] = representations
    return result


def _batch_worker(contender: str, root: Path) -> dict[str, Any]:
    """Seconds from building the data to holding the first training batch (imports excluded)."""
    if contender.startswith("dabin"):
        from datamodules.transfer import TransferDataModule

        gc.collect()
        start = time.perf_counter()
        module = TransferDataModule(str(root), task="clipart->real", image_size=32, batch_size=32, num_workers=0)
        images, _, _ = next(iter(module.train_dataloader()["source"]))
        return {"first_batch_s": time.perf_counter() - start, "shape": list(images.shape),
                "index_written": index_path(module.root).exists()}
    importlib.import_module("sklearn.model_selection")
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD

    gc.collect()
    start = time.perf_counter()
    transform = transforms.Compose([transforms.RandomResizedCrop(32), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    source, target = (ImageFolder(str(root / domain), transform=transform) for domain in ("clipart", "real"))
    splits = [_sklearn_split(folder.targets) for folder in (source, target)]
    loader = DataLoader(Subset(source, splits[0][0]), batch_size=32, shuffle=True, num_workers=0, drop_last=True)
    images, _ = next(iter(loader))
    return {"first_batch_s": time.perf_counter() - start, "shape": list(images.shape)}


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    warnings.simplefilter("ignore", DatasetWarning)  # counts of a scaled tree differ from the release's
    root, index_dir = Path(spec["root"]), Path(spec["index_dir"])
    if spec["task"] == "index":
        return _index_worker(spec["contender"], root, index_dir)
    if spec["task"] == "memory":
        return _memory_worker(spec["contender"], root, index_dir)
    return _batch_worker(spec["contender"], root)


def run_worker(spec: dict[str, Any], cache: Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter with ``$DABIN_CACHE`` at ``cache``.

    Raises:
        RuntimeError: The measurement failed; carries the end of its error output.
    """
    env = {**os.environ, "DABIN_CACHE": str(cache)}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{spec}: exit status {done.returncode}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one scale ----------------------------------------------------------------------------------

def _timed(spec: dict[str, Any], warm: Path, scratch: Path, cold: bool) -> dict[str, Any]:
    if not cold:
        return run_worker(spec, warm)
    with tempfile.TemporaryDirectory(dir=scratch) as empty:  # a fresh, empty cache per cold run
        return run_worker(spec, Path(empty))


def bench_scale(out: Path, fraction: float, repeats: int) -> dict[str, Any]:
    """Every measurement at one scale; medians and the raw values of each repeat."""
    start = time.perf_counter()
    root = make_domainnet_tree(out, fraction)
    generated = time.perf_counter() - start
    scratch = out / "scratch"
    scratch.mkdir(exist_ok=True)
    warm = out / f"cache-{root.name}"
    # Warm the page cache and write the warm index (min_images=0: the scale does not matter);
    # a tree renamed into place moments ago is "racy" (datamodules.index): wait and retry.
    walk_layout(root, [])
    index_dir = warm / "index"
    index_path(root, index_dir).unlink(missing_ok=True)  # maybe the index of a tree since regenerated
    while True:
        cached_layout(root, [], index_dir, min_images=0)
        if index_path(root, index_dir).exists():
            break
        time.sleep(1.0)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in (*INDEX_CONTENDERS, *BATCH_CONTENDERS)}
    base = {"root": str(root), "index_dir": str(index_dir)}
    for _ in range(repeats):
        for name in INDEX_CONTENDERS:
            rounds[name].append(_timed({**base, "task": "index", "contender": name}, warm, scratch, "cold" in name))
        for name in BATCH_CONTENDERS:
            rounds[name].append(_timed({**base, "task": "batch", "contender": name}, warm, scratch, "cold" in name))
    memory = {name: run_worker({**base, "task": "memory", "contender": name}, warm)
              for name in ("dabin", "ImageFolder x6")}

    def median(name: str, field: str) -> float:
        return statistics.median(run[field] for run in rounds[name])

    index = {name: median(name, "index_s") for name in INDEX_CONTENDERS}
    return {
        "fraction": fraction, "root": str(root), "images": rounds["ImageFolder x6"][0]["images"],
        "dabin_images": rounds["scan, index warm"][0]["images"], "generate_s": generated,
        "index_bytes": index_path(root, index_dir).stat().st_size,
        "tree_py_wired": rounds["scan, index cold"][0]["index_written"],
        "index_s": index, "split_s": {name: median(name, "split_s") for name in ("scan, index warm", "ImageFolder x6")},
        "first_batch_s": {name: median(name, "first_batch_s") for name in BATCH_CONTENDERS},
        "memory": memory, "raw": rounds,
    }


# --- report ---------------------------------------------------------------------------------------

def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def report(results: list[dict[str, Any]], repeats: int) -> list[tuple[str, bool]]:
    """Print the tables; return the goals as ``(line, met)``."""
    print(f"\nmedian of {repeats} interleaved rounds, each in a fresh process, warm OS page cache, imports excluded")
    wired = all(r["tree_py_wired"] for r in results)
    if not wired:
        print("NOTE: DomainTree.scan wrote no index: tree.py does not call datamodules.index yet, so both "
              "'scan' rows are the pathlib walk; the 'index read' row is what a wired scan would list with")
    print("\n| scale | images | contender | index s | vs ImageFolder | split s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        folder = r["index_s"]["ImageFolder x6"]
        for name in INDEX_CONTENDERS:
            split = r["split_s"].get(name)
            info = " (listing only, info)" if name not in ("scan, index cold", "scan, index warm",
                                                            "ImageFolder x6") else ""
            print(f"| {r['fraction'] * 100:g} % | {r['images']:,} | {name}{info} | {r['index_s'][name]:.2f} | "
                  f"{r['index_s'][name] / folder:.2f}x | {'-' if split is None else f'{split:.2f}'} |")
    print("\n| scale | contender | held after indexing | peak while indexing | bytes/image | index file |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        for name in ("dabin", "ImageFolder x6"):
            m = r["memory"][name]
            file = _mb(r["index_bytes"]) if name == "dabin" else "-"
            print(f"| {r['fraction'] * 100:g} % | {name} | {_mb(m['current'])} | {_mb(m['peak'])} | "
                  f"{m['current'] / m['images']:.0f} | {file} |")
    print("\nsamples alone, by representation (key strings included), built / after one epoch:")
    print("\n| scale | representation | built | after an epoch | bytes/image after an epoch | build s (once) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        for name, m in r["memory"]["dabin"]["representations"].items():
            print(f"| {r['fraction'] * 100:g} % | {name} | {_mb(m['built'])} | {_mb(m['after_epoch'])} | "
                  f"{m['after_epoch'] / r['memory']['dabin']['images']:.0f} | {m['build_s']:.2f} |")
    print("\n| scale | contender | first batch s | vs ImageFolder |")
    print("| --- | --- | --- | --- |")
    for r in results:
        folder = r["first_batch_s"]["ImageFolder x2"]
        for name in BATCH_CONTENDERS:
            print(f"| {r['fraction'] * 100:g} % | {name} | {r['first_batch_s'][name]:.2f} | "
                  f"{r['first_batch_s'][name] / folder:.2f}x |")
    full = max(results, key=lambda r: r["fraction"])
    held = full["memory"]["dabin"]["current"]
    warm_ratio = full["index_s"]["scan, index warm"] / full["index_s"]["ImageFolder x6"]
    cold_ratio = full["index_s"]["scan, index cold"] / full["index_s"]["ImageFolder x6"]
    goals = [
        (f"index at {full['fraction'] * 100:g} %: warm scan {warm_ratio:.2f}x ImageFolder's time (goal <= 1)",
         warm_ratio <= 1),
        (f"index at {full['fraction'] * 100:g} %: cold scan {cold_ratio:.2f}x ImageFolder's time (goal <= 1)",
         cold_ratio <= 1),
        (f"memory at {full['fraction'] * 100:g} %: {_mb(held)} held (goal well under {_mb(MEMORY_GOAL)})",
         held < MEMORY_GOAL / 2),
        (f"sweep of {SWEEP_TASKS} tasks: the tree indexed once (scan wrote an index: {wired}); "
         f"{SWEEP_TASKS} warm scans {SWEEP_TASKS * full['index_s']['scan, index warm']:.0f} s against "
         f"{SWEEP_TASKS * full['index_s']['pathlib walk (before)']:.0f} s of listing alone before", wired),
    ]
    if len(results) > 1:
        small = min(results, key=lambda r: r["fraction"])
        per_small = small["memory"]["dabin"]["current"] / small["images"]
        per_full = held / full["images"]
        goals.append((f"memory grows linearly: {per_small:.0f} bytes/image at {small['fraction'] * 100:g} %, "
                      f"{per_full:.0f} at {full['fraction'] * 100:g} % (within 10 %)",
                      abs(per_full - per_small) <= 0.1 * per_small))
    print()
    for line, met in goals:
        print(f"{'met' if met else 'MISSED'}: {line}")
    return goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=list(SCALES),
                        help="fractions of DomainNet's size (default 0.1 0.5 1)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per measurement (default 3)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "dabin-bench-index",
                        help="folder of the generated trees, reused across runs")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for fraction in args.scales:
        start = time.perf_counter()
        results.append(bench_scale(args.out, fraction, args.repeats))
        print(f"{fraction * 100:g} %: {results[-1]['images']:,} images, measured in "
              f"{time.perf_counter() - start:.0f} s (tree generated in {results[-1]['generate_s']:.0f} s)", flush=True)
    goals = report(results, args.repeats)
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "repeats": args.repeats,
                                         "load_average": os.getloadavg(),
                                         "goals": [{"goal": line, "met": met} for line, met in goals]}, indent=1))


if __name__ == "__main__":
    main()
