"""The official list files of the known datasets, read into a scanned tree's samples.

Three kinds of file, all ``<path> <label>`` lines whose image must be in the tree and whose label
must be its class folder's index in the dataset's official class order
(:data:`datamodules.presets.DATASETS`); any path prefix before the part dabin reads is ignored
(lists are often written with absolute paths):

- PACS's split files ``<domain>_{train,crossval,test}_kfold.txt`` (``<domain>/<class>/<file>``,
  labels 1..7), :func:`read_pacs_splits`, used by the DG module (``official_splits``).
- DomainNet's (and the digits tree's) ``<domain>_train.txt`` / ``<domain>_test.txt``
  (``<domain>/<class>/<file>``, labels from 0), :func:`read_official_lists`, the official transfer
  split (:func:`datamodules.splits.domain_split`). Looked for in the root, its parent and
  ``image_list/`` in either (tllib's layout), :func:`list_folder`.
- VisDA-2017's ``<domain>/image_list.txt`` (``<class>/<file>``, labels from 0), checked against
  the tree whenever it is scanned, :func:`check_domain_lists`.

A listed image that is not in the tree, a label that is not its folder's class, an image listed
twice: one-line :class:`~dabin.errors.DabinError` naming the list file and line. Images of the tree
that no list names (a copy with more images than the cleaned release) are a warning with the count.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from dabin.errors import DabinError
from datamodules.naming import domain_key
from datamodules.presets import DATASETS, DatasetInfo

__all__ = ["LIST_SPLITS", "PACS_SPLITS", "TreeView", "check_domain_lists", "list_folder", "list_name",
           "pacs_split_folder", "read_official_lists", "read_pacs_splits"]

#: The three split files of every PACS domain: ``<domain>_<split>_kfold.txt``.
PACS_SPLITS: tuple[str, ...] = ("train", "crossval", "test")
#: The two official lists of every domain of DomainNet and the digits: ``<domain>_<split>.txt``.
LIST_SPLITS: tuple[str, ...] = ("train", "test")
#: tllib's folder of image lists, beside the domain folders.
IMAGE_LIST_FOLDER = "image_list"


class TreeView(Protocol):
    """What this module and :func:`datamodules.catalog.check_layout` read of a :class:`~datamodules.tree.DomainTree`."""

    root: Path
    domains: list[Any]
    class_names: list[str]
    samples: list[Any]
    dataset: DatasetInfo | None

    @property
    def domain_names(self) -> list[str]: ...

    def counts(self) -> dict[str, int]: ...

    def domain_samples(self, domain: int) -> list[Any]: ...


def _lookup(tree: TreeView, domain: int) -> dict[str, Any]:
    """``"<class>/<file>"`` case-folded -> sample, for one domain."""
    return {sample.key.casefold(): sample for sample in tree.domain_samples(domain)}


def _read_list(path: Path, info: DatasetInfo, domain_name: str | None, first_label: int, by_key: dict[str, Any],
               root: Path) -> list[Any]:
    """The samples a list names, in its order.

    Args:
        path: The list file.
        info: Its dataset (label order).
        domain_name: The domain every line's ``<domain>/`` must name; None: lines are ``<class>/<file>``.
        first_label: The label of the first class (PACS: 1, else 0).
        by_key: :func:`_lookup` of the list's domain.
        root: The tree's root (for messages).
    """
    classes = {name.casefold(): index for index, name in enumerate(info.classes or ())}
    depth = 2 if domain_name is None else 3
    shape = "<class>/<file> <label>" if domain_name is None else "<domain>/<class>/<file> <label>"
    samples = []
    wanted = None if domain_name is None else domain_key(domain_name)
    seen_domains: dict[str, bool] = {}  # a list names its domain in one spelling: 173,000 lines, one comparison
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.rsplit(maxsplit=1)
        # Plain string splits, not pathlib: DomainNet's real lists have 173,000 lines.
        parts = [part for part in fields[0].replace("\\", "/").split("/") if part not in ("", ".")] \
            if len(fields) == 2 else []
        if len(parts) < depth or not fields[1].isdigit():
            raise DabinError(f"{where}: expected '{shape}', found {line!r}")
        class_name, file_name = parts[-2:]
        label = int(fields[1]) - first_label
        if wanted is not None and not _same_domain(parts[-3], wanted, seen_domains):
            raise DabinError(f"{where}: image of domain {parts[-3]!r} in the list of {domain_name!r}")
        if classes.get(class_name.casefold()) != label:
            expected = classes.get(class_name.casefold())
            what = f"not a {info.name} class" if expected is None else f"label {expected + first_label}"
            raise DabinError(f"{where}: label {label + first_label} is not the class of folder {class_name!r} "
                             f"({what}; {info.name} labels {first_label}..{first_label + info.num_classes - 1} "
                             f"follow its class order{_order_hint(info)})")
        sample = by_key.get(f"{class_name}/{file_name}".casefold())
        if sample is None:
            shown = f"{class_name}/{file_name}" if domain_name is None else f"{domain_name}/{class_name}/{file_name}"
            raise DabinError(f"{where}: listed image {shown} is not in {root}")
        samples.append(sample)
    return samples


def _same_domain(name: str, wanted: str, seen: dict[str, bool]) -> bool:
    """Whether a line's ``<domain>`` part names the list's domain (each spelling compared once, in ``seen``)."""
    same = seen.get(name)
    if same is None:
        same = seen[name] = domain_key(name) == wanted
    return same


def _order_hint(info: DatasetInfo) -> str:
    classes = info.classes or ()
    return f": {', '.join(classes)}" if len(classes) <= 12 else ""


def _in_order(tree: TreeView, domain: int, samples: Sequence[Any]) -> list[Any]:
    """``samples`` of one domain in tree order."""
    chosen = {id(sample) for sample in samples}
    return [sample for sample in tree.domain_samples(domain) if id(sample) in chosen]


def _first_shared(first: Sequence[Any], second: Sequence[Any]) -> Any | None:
    ids = {id(sample) for sample in first}
    return next((sample for sample in second if id(sample) in ids), None)


def _unlisted(tree: TreeView, info: DatasetInfo, domain: int, listed: Sequence[Any], lists: str) -> list[str]:
    count = len(tree.domain_samples(domain)) - len({id(sample) for sample in listed})
    if not count:
        return []
    return [f"{info.name} domain {tree.domains[domain].name!r}: {count} image(s) in {tree.domains[domain].folder} "
            f"are in no official list ({lists}); the official split leaves them out"]


# --------------------------------------------------------------------------------------------
# DomainNet's and the digits' <domain>_train.txt / <domain>_test.txt


def list_name(info: DatasetInfo, domain: str, split: str) -> str:
    """``<domain>_<split>.txt`` with the official domain name."""
    return f"{info.canonical(domain) or domain}_{split}.txt"


def _list_candidates(root: Path) -> list[Path]:
    return [root, root.parent, root / IMAGE_LIST_FOLDER, root.parent / IMAGE_LIST_FOLDER]


def list_folder(tree: TreeView, domain: int) -> Path | None:
    """The folder holding a domain's ``<domain>_train.txt``: the root, its parent or ``image_list/`` in either."""
    if tree.dataset is None:
        return None
    name = list_name(tree.dataset, tree.domains[domain].name, LIST_SPLITS[0])
    return next((folder for folder in _list_candidates(tree.root) if (folder / name).is_file()), None)


def read_official_lists(tree: TreeView, domain: int) -> tuple[tuple[list[Any], list[Any]], list[str]]:
    """One domain's official train and test lists (DomainNet's, the digits'), as the tree's samples.

    Args:
        tree: A scanned tree of a dataset whose protocol is ``"lists"``.
        domain: The domain's index.

    Returns:
        ``((train samples, test samples), notes)``, the samples in tree order; the notes (one line,
        or none) count the domain's images that neither list names.

    Raises:
        DabinError: A list missing (naming the expected path), a malformed line, a label that is
            not its folder's class, a listed image not in the tree, an image in both lists.
    """
    info = tree.dataset
    if info is None or info.transfer_protocol != "lists":
        raise DabinError(f"{tree.root} is not a dataset with official <domain>_train.txt / _test.txt lists")
    name = tree.domains[domain].name
    folder = list_folder(tree, domain)
    names = [list_name(info, name, split) for split in LIST_SPLITS]
    if folder is None:
        looked = ", ".join(str(place) for place in _list_candidates(tree.root)[1:])
        raise DabinError(f"the official split of {info.name} needs {tree.root / names[0]} (also looked in {looked})")
    missing = [folder / file for file in names if not (folder / file).is_file()]
    if missing:
        raise DabinError(f"the official split of {info.name} needs {missing[0]} (beside {folder / names[0]})")
    by_key = _lookup(tree, domain)
    train, test = (_read_list(folder / file, info, name, 0, by_key, tree.root) for file in names)
    shared = _first_shared(train, test)
    if shared is not None:
        raise DabinError(f"{shared.path} is in both {folder / names[0]} and {folder / names[1]}")
    notes = _unlisted(tree, info, domain, train + test, " / ".join(names))
    return (_in_order(tree, domain, train), _in_order(tree, domain, test)), notes


# --------------------------------------------------------------------------------------------
# VisDA-2017's <domain>/image_list.txt


def check_domain_lists(tree: TreeView) -> list[str]:
    """Check the list file the release keeps in every domain folder (VisDA-2017's ``image_list.txt``).

    Returns:
        Soft problems: per domain, the images its list does not name (one line with the count).

    Raises:
        DabinError: A listed image not in the tree (list file, line, path), a label that is not
            its folder's class, a malformed line.
    """
    info = tree.dataset
    if info is None or info.domain_lists is None:
        return []
    problems = []
    for index, domain in enumerate(tree.domains):
        path = domain.folder / info.domain_lists
        if path.is_file():
            listed = _read_list(path, info, None, 0, _lookup(tree, index), domain.folder)
            problems += _unlisted(tree, info, index, listed, str(path))
    return problems


# --------------------------------------------------------------------------------------------
# PACS's official splits


def pacs_split_folder(tree: TreeView) -> Path | None:
    """Where a PACS tree's official split files are, if anywhere dabin looks.

    Looked for (``<domain>_train_kfold.txt`` of one of the tree's domains) in the tree's root, its
    parent (the root was the folder holding ``kfold/``), and ``splits/`` in either (Dassl's layout).

    Returns:
        The folder, or None.
    """
    first = DATASETS["pacs"].canonical(tree.domain_names[0]) or tree.domain_names[0]
    for folder in (tree.root, tree.root.parent, tree.root / "splits", tree.root.parent / "splits"):
        if (folder / f"{first}_train_kfold.txt").is_file():
            return folder
    return None


def read_pacs_splits(tree: TreeView, folder: str | os.PathLike[str] | None = None) -> dict[str, tuple[list[Any],
                                                                                                  list[Any]]]:
    """The authors' train / validation split of every domain of a PACS tree, as the tree's samples.

    Reads ``<domain>_train_kfold.txt`` and ``<domain>_crossval_kfold.txt`` (lines
    ``<domain>/<class>/<file> <label>``, label 1..7 in the order dog ... person; any path prefix
    before ``<domain>/`` is ignored). ``<domain>_test_kfold.txt`` lists the whole domain (the test
    set of a held-out domain) and is not read. Each line's label must name its class folder, and
    its image must be in the tree; the samples keep dabin's labels (alphabetical class index: the
    authors' label minus one when the tree has all seven classes).

    Args:
        tree: A scanned PACS tree (:class:`~datamodules.tree.DomainTree`, possibly of fewer domains).
        folder: The folder holding the split files; None: :func:`pacs_split_folder`.

    Returns:
        Official domain name -> ``(train samples, validation samples)``, each in tree order.

    Raises:
        DabinError: Not a PACS tree, no split files, a file missing, a malformed line, a label
            that is not its folder's class, an image that is not in the tree, an image in both splits.
    """
    pacs = DATASETS["pacs"]
    names = [pacs.canonical(name) for name in tree.domain_names]
    if not all(names):
        raise DabinError(f"PACS split files need a PACS tree; {tree.root} has domains {', '.join(tree.domain_names)}")
    where = Path(folder).expanduser() if folder is not None else pacs_split_folder(tree)
    if where is None:
        raise DabinError(f"no PACS split files (<domain>_train_kfold.txt) in {tree.root} or {tree.root.parent}")
    result: dict[str, tuple[list[Any], list[Any]]] = {}
    for domain, name in enumerate(names):
        parts = []
        by_key = _lookup(tree, domain)
        for split in PACS_SPLITS[:2]:
            path = where / f"{name}_{split}_kfold.txt"
            if not path.is_file():
                raise DabinError(f"PACS split file {path} does not exist")
            parts.append(_read_list(path, pacs, str(name), 1, by_key, tree.root))
        shared = _first_shared(parts[0], parts[1])
        if shared is not None:
            raise DabinError(f"{shared.path} is in both {name}_train_kfold.txt and {name}_crossval_kfold.txt")
        result[str(name)] = (_in_order(tree, domain, parts[0]), _in_order(tree, domain, parts[1]))
    return result
