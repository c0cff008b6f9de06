"""``dabin data ROOT``: check a dataset and show what a long run would see, before starting it.

Prints the domains with their codes and image counts, the number of classes, warnings, the
80/20 transfer split sizes per domain and the k-fold sizes per fold and domain, after opening
every image. Exit status: 0 for a usable dataset (count differences are only warnings), 1 when
images are broken (each named by path), 2 for a layout error (raised as
:class:`~dabin.errors.DabinError` and printed by ``dabin`` as one line) or a domain too small to
split (printed after the image checks, which still run).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dabin.errors import DabinError
from datamodules.digits import is_torchvision_digits_root, present_domains
from datamodules.embedded import embedded_root, is_embedded
from datamodules.loading import verify_image
from datamodules.splits import kfold_split, transfer_split
from datamodules.tree import DomainTree

__all__ = ["check_dataset", "main"]


def check_dataset(root: str | None, seed: int = 0, k: int = 5, image_lists: str | None = None,
                  verify: bool = True) -> dict[str, Any]:
    """Scan a dataset, split it both ways and open every image.

    Args:
        root: Dataset folder, or None / ``"embedded"`` for the embedded digits.
        seed: Split seed (as ``--data.seed``).
        k: Number of folds.
        image_lists: Optional image-list file or folder.
        verify: Open every image (set False to check the layout only).

    Returns:
        The report: ``root``, ``dataset`` (the known dataset recognised, :mod:`datamodules.catalog`:
        ``{name, domains, classes, images}`` of its release, else None), ``domains`` (list of
        ``{name, code, images}``), ``num_classes``,
        ``class_names``, ``warnings``, ``ignored_files``, ``splits`` (``transfer``:
        ``{domain: {train, test}}``; ``kfold``: one ``{domain: count}`` per fold), ``broken``
        (list of ``{path, error}``), ``errors`` (splits that cannot be made, one line each: the
        images are still checked).

    Raises:
        DabinError: The layout is broken (missing root or domain, empty class folder, ...).
    """
    with warnings.catch_warnings(record=True) as caught:
        # Collect rather than print: the report lists every warning once, in its own section.
        warnings.simplefilter("always")
        tree = DomainTree.scan(embedded_root() if is_embedded(root) else root, image_lists=image_lists)
        transfer: dict[str, dict[str, int]] = {}
        errors: list[str] = []
        # A domain too small to split is reported beside the image checks, not instead of them.
        for index, domain in enumerate(tree.domains):
            try:
                train, test = transfer_split(tree.domain_samples(index), domain.name, seed)
            except DabinError as error:
                errors.append(str(error))
                continue
            transfer[domain.name] = {"train": len(train), "test": len(test)}
        folds = kfold_split(tree.samples, k, seed)  # a k that does not fit the data is an argument error
    notes = list(tree.warnings)
    # The tree's own warnings are already in tree.warnings; the splits' are not.
    notes += [line for line in (str(w.message).splitlines()[0] for w in caught) if line not in notes]
    kfold = [{d.name: sum(tree.samples[i].domain == j for i in part) for j, d in enumerate(tree.domains)}
             for part in folds]
    broken = []
    if verify:
        # Decoding releases the GIL, so threads use every core without pickling samples.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            reasons = pool.map(verify_image, [s.path for s in tree.samples])
            broken = [{"path": str(s.path), "error": r} for s, r in zip(tree.samples, reasons) if r]
    return {
        "root": str(tree.root),
        "dataset": None if tree.dataset is None else {
            "name": tree.dataset.name, "domains": len(tree.dataset.domains), "classes": tree.dataset.num_classes,
            "images": tree.dataset.total},
        "domains": [{"name": d.name, "code": d.code, "images": n} for d, n in zip(tree.domains, tree.counts().values())],
        "num_classes": tree.num_classes,
        "class_names": tree.class_names,
        "warnings": notes,
        "ignored_files": len(tree.ignored),
        "splits": {"seed": seed, "transfer": transfer, "k": k, "kfold": kfold},
        "broken": broken,
        "errors": errors,
    }


def _print_report(report: dict[str, Any]) -> None:
    names = [d["name"] for d in report["domains"]]
    width = max(len(n) for n in names)
    print(f"dataset {report['root']}")
    if report["dataset"]:
        known = report["dataset"]
        print(f"recognised as {known['name']} (release: {known['domains']} domains, {known['classes']} classes, "
              f"{known['images']} images)")
    print(f"{len(names)} domains, {report['num_classes']} classes, "
          f"{sum(d['images'] for d in report['domains'])} images")
    for domain in report["domains"]:
        print(f"  {domain['code']:<4} {domain['name']:<{width}}  {domain['images']:>7} images")
    if report["ignored_files"]:
        print(f"ignored {report['ignored_files']} non-image files")
    print(f"warnings: {len(report['warnings'])}")
    for note in report["warnings"]:
        print(f"  - {note}")
    splits = report["splits"]
    print(f"transfer split 80/20 (seed {splits['seed']}):")
    for name, sizes in splits["transfer"].items():
        print(f"  {name:<{width}}  train {sizes['train']:>6}  test {sizes['test']:>6}")
    print(f"k-fold (k={splits['k']}, seed {splits['seed']}), held-out images per fold and domain:")
    print("  fold  " + "  ".join(f"{n:>{max(len(n), 6)}}" for n in names) + "   total")
    for index, fold in enumerate(splits["kfold"]):
        cells = "  ".join(f"{fold[n]:>{max(len(n), 6)}}" for n in names)
        print(f"  {index:>4}  {cells}  {sum(fold.values()):>6}")
    if report["broken"]:
        print(f"broken images: {len(report['broken'])}")
        for item in report["broken"]:
            print(f"  {item['path']}: {item['error']}")
    else:
        print("all images open")
    for error in report["errors"]:
        print(f"error: {error}")


def main(argv: list[str]) -> int:
    """Run ``dabin data`` (``argv`` without the word ``data``).

    Args:
        argv: ``ROOT [--seed S] [--k K] [--lists PATH] [--json]``.

    Returns:
        0 if the dataset is usable, 1 if some images are broken, 2 if a split cannot be made (the
        images are checked and reported all the same).

    Raises:
        DabinError: A layout error (``dabin`` prints it as one line and exits 2).
    """
    parser = argparse.ArgumentParser(prog="dabin data", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="dataset folder (<domain>/<class>/<image>), or 'embedded'")
    parser.add_argument("--seed", type=int, default=0, help="split seed, as --data.seed (default 0)")
    parser.add_argument("--k", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--lists", default=None, help="image-list file or folder ('<domain>/<class>/<file> <label>')")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if is_torchvision_digits_root(args.root):
        # torchvision's files, not a tree yet: the data modules export them (as this command does).
        raise DabinError(f"{args.root} holds torchvision's digit files ({', '.join(present_domains(args.root))}), "
                         f"not a <domain>/<class>/<image> tree: export them with `dabin data digits --from "
                         f"{args.root}`, then check the folder it prints")
    report = check_dataset(args.root, seed=args.seed, k=args.k, image_lists=args.lists)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(report)
    return 2 if report["errors"] else 1 if report["broken"] else 0
