"""Which known dataset a tree is, and how it differs from the release.

Any ``root/<Domain>/<Class>/<image>`` tree works (:mod:`datamodules.tree`); a tree whose domain
folders are those of a dataset of :data:`~datamodules.presets.DATASETS` (in any spelling:
``Art_Painting``, ``art painting``) and whose class folders are mostly that dataset's is
*recognised*: its domains get their official names and order, and :func:`check_layout` compares it
with the release (a missing domain, missing or foreign class folders, per-domain counts: warnings),
while a recognised tree laid out wrong (an extra domain folder, class folders where domain folders
belong, a domain the dataset cannot do without) is a one-line :class:`~dabin.errors.DabinError`
naming the expected layout and the folder that does not fit. Folders a release keeps beside its
domains (VisDA-2017's unlabelled ``test/``, tllib's ``image_list/``) are set aside with a note
(:func:`set_aside`). Office-Home keeps its own rules (:mod:`datamodules.officehome`: all four
domains required).

The datasets' facts live in :mod:`datamodules.presets`, their official list files are read by
:mod:`datamodules.official`; ``DATASETS``, ``DatasetInfo``, ``PACS_SPLITS``, ``pacs_split_folder``
and ``read_pacs_splits`` are re-exported here for the modules that import them from this one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from dabin.errors import DabinError
from datamodules.naming import domain_key
from datamodules.official import IMAGE_LIST_FOLDER, PACS_SPLITS, TreeView, pacs_split_folder, read_pacs_splits
from datamodules.presets import DATASETS, LAYOUT, DatasetInfo

__all__ = ["DATASETS", "LAYOUT", "PACS_SPLITS", "DatasetInfo", "TreeView", "check_domains", "check_layout",
           "dataset_info", "identify", "layout_hint", "pacs_split_folder", "read_pacs_splits", "recognise",
           "set_aside"]


def dataset_info(name: str) -> DatasetInfo:
    """A dataset by key or name in any spelling (``"pacs"``, ``"TerraIncognita"``, ``"Office-Home"``).

    Raises:
        DabinError: Unknown name; the message lists the known ones.
    """
    key = domain_key(name)
    for dataset_key, info in DATASETS.items():
        if key in (domain_key(dataset_key), domain_key(info.name)):
            return info
    raise DabinError(f"unknown dataset {name!r}; known: {', '.join(info.name for info in DATASETS.values())}")


def identify(domain_names: Sequence[str]) -> DatasetInfo | None:
    """The dataset whose domains these folders are (at least two of them, any spelling, nothing else).

    Args:
        domain_names: Domain folder names found under a root.

    Returns:
        The dataset, or None. No two datasets share more than one domain name, so at most one fits.
    """
    if len({domain_key(name) for name in domain_names}) < 2:
        return None
    return next((info for info in DATASETS.values() if all(info.canonical(name) for name in domain_names)), None)


def _closest(domain_names: Sequence[str]) -> DatasetInfo | None:
    """The one dataset (not Office-Home) with the most, and at least two, of these domains; other folders allowed."""
    scores = [(len({info.canonical(n) for n in domain_names} - {None}), info)
              for key, info in DATASETS.items() if key != "office_home"]
    best = max(score for score, _ in scores)
    winners = [info for score, info in scores if score == best]
    return winners[0] if best >= 2 and len(winners) == 1 else None


def _known_classes(info: DatasetInfo, class_names: Sequence[str]) -> int:
    known = {name.casefold() for name in info.classes or ()}
    return sum(name.casefold() in known for name in class_names)


def recognise(root: str | os.PathLike[str], domain_folders: Sequence[str], class_names: Sequence[str],
              likely: DatasetInfo | None = None) -> DatasetInfo | None:
    """Which dataset a tree is, raising when it is one laid out wrong.

    A tree is a dataset's when at least two of its domain folders are that dataset's domains (or
    a folder of that release was set aside, :func:`set_aside`) and more than half of its class
    folders are that dataset's classes (``photo/``, ``sketch/`` holding ``bird/``, ``cat/`` is
    someone's own dataset, not PACS). Office-Home is never returned: the tree recognises it by
    :func:`~datamodules.officehome.is_office_home`, with its own rules (all four domains required,
    other folders make a custom tree).

    Args:
        root: The tree's root (for messages).
        domain_folders: Its domain folder names.
        class_names: Its class folder names (all domains together).
        likely: The dataset a folder set aside beside these belongs to (:func:`set_aside`), if any.

    Returns:
        The dataset, or None for any other tree.

    Raises:
        DabinError: A recognised tree with a folder that is not one of the dataset's domains, a
            dataset that needs all its domains without one of them, or a tree whose domain
            folders are a dataset's classes and class folders its domains.
    """
    info = likely if likely is not None else _closest(domain_folders)
    if info is not None and (info.classes is None or 2 * _known_classes(info, class_names) > len(class_names)):
        check_domains(info, domain_folders, root)
        return info
    swapped = _classes_of(domain_folders)
    if swapped is not None and sum(swapped.canonical(name) is not None for name in class_names) >= 2:
        raise DabinError(f"{root} holds <Class>/<Domain> folders ({', '.join(sorted(domain_folders)[:3])}, ...): "
                         f"{swapped.expected_layout(root)}")
    return None


def set_aside(folders: Mapping[str, Sequence[str]]) -> tuple[DatasetInfo | None, dict[str, str]]:
    """The top folders of a tree that are no domain, though a release keeps them beside its domains.

    Two kinds: a folder of a dataset's :attr:`~datamodules.presets.DatasetInfo.set_aside`
    (VisDA-2017's ``test/``) beside at least one of that dataset's domains and holding none of its
    classes (a ``test/`` of class folders is someone's own split, left to be a domain), and tllib's
    ``image_list/`` (list files, no sub-folders) beside any domains.

    Args:
        folders: Top folder name -> its sub-folder names (the tree's domains and their classes).

    Returns:
        ``(dataset, {folder: why})``: the dataset whose folder was set aside (None if none was),
        and why each folder was set aside.
    """
    aside = {name: "tllib's folder of image lists" for name, classes in folders.items()
             if name == IMAGE_LIST_FOLDER and not classes and len(folders) > 1}
    likely = None
    for info in DATASETS.values():
        for name, classes in folders.items():
            why = next((why for folder, why in info.set_aside.items() if domain_key(folder) == domain_key(name)), None)
            beside = any(info.canonical(other) for other in folders if other != name)
            if why is not None and beside and not _known_classes(info, classes):
                aside[name], likely = why, info
    return likely, aside


def check_domains(info: DatasetInfo, domain_folders: Sequence[str], root: str | os.PathLike[str]) -> None:
    """Refuse domain folders that are not the dataset's (a stray folder beside them, a typo), one spelled twice,
    or a missing domain of a dataset that needs all of them (:attr:`~datamodules.presets.DatasetInfo.all_domains`).

    Raises:
        DabinError: One line naming the folders and the expected layout.
    """
    unknown = sorted(name for name in domain_folders if info.canonical(name) is None)
    if unknown:
        article = "an" if info.name[0] in "AEIOU" else "a"
        what = f"folder {unknown[0]!r} is not {article}" if len(unknown) == 1 else \
            "folders " + ", ".join(map(repr, unknown)) + " are not"
        raise DabinError(f"{info.name} tree {root}: {what} {info.name} domain{'s' if len(unknown) > 1 else ''}; "
                         f"{info.expected_layout(root)}")
    present = {info.canonical(name) for name in domain_folders}
    missing = [domain for domain in info.domains if domain not in present]
    if info.all_domains and missing:
        raise DabinError(f"{info.name} tree {root} lacks domain {missing[0]!r} (no folder {Path(root) / missing[0]}); "
                         f"{info.expected_layout(root)}")
    seen: dict[str, str] = {}
    for name in sorted(domain_folders):
        official = info.canonical(name) or name
        if official in seen:
            raise DabinError(f"{info.name} tree {root}: folders {seen[official]!r} and {name!r} are both domain "
                             f"{official!r}; keep one")
        seen[official] = name


def _classes_of(folder_names: Sequence[str]) -> DatasetInfo | None:
    """The dataset (not Office-Home) whose classes these folders are: all of them, and half of its classes."""
    for key, info in DATASETS.items():
        hits = _known_classes(info, folder_names)
        if key != "office_home" and hits == len(folder_names) >= 2 and 2 * hits >= info.num_classes:
            return info
    return None


def layout_hint(root: str | os.PathLike[str], folder_names: Sequence[str]) -> str:
    """For a root whose sub-folders hold images: ``"; these are PACS classes: expected ..."`` or ``""``.

    Args:
        root: The folder the user gave.
        folder_names: Its sub-folders (class folders, since they hold images).
    """
    info = _classes_of(folder_names)
    if info is None:
        return ""
    path = Path(root)
    if info.canonical(path.name) is not None:  # the user gave one domain folder of the dataset
        return (f"; these are {info.name} classes and {path.name!r} is one of its domains: give the folder "
                f"above it, {info.expected_layout(path.parent)}")
    return f"; these are {info.name} classes: {info.expected_layout(root)}"


def _some(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(map(repr, names[:limit]))
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def check_layout(info: DatasetInfo, tree: TreeView) -> list[str]:
    """Compare a recognised tree with the dataset's release.

    Args:
        info: The dataset (:func:`recognise`).
        tree: The scanned tree.

    Returns:
        Soft problems, one line each with the numbers: missing domains, missing or foreign class
        folders, per-domain image counts that differ from the release.

    Raises:
        DabinError: A domain that is not the dataset's (:func:`check_domains`).
    """
    check_domains(info, tree.domain_names, tree.root)
    problems = []
    present = {info.canonical(name) for name in tree.domain_names}
    missing = [domain for domain in info.domains if domain not in present]
    if missing:
        problems.append(f"{info.name} tree {tree.root} has {len(present)} of its {len(info.domains)} domains: "
                        f"missing {_some(missing)} ({sum(info.counts[d] for d in missing)} images in the release)")
    if info.classes is not None:
        found = {name.casefold() for name in tree.class_names}
        known = {name.casefold() for name in info.classes}
        absent = [name for name in info.classes if name.casefold() not in found]
        foreign = [name for name in tree.class_names if name.casefold() not in known]
        if absent:
            problems.append(f"{info.name} tree {tree.root} has {info.num_classes - len(absent)} of its "
                            f"{info.num_classes} classes: missing {_some(absent)}")
        if foreign:
            problems.append(f"{info.name} tree {tree.root} has {len(foreign)} class folder(s) that are not "
                            f"{info.name} classes: {_some(foreign)}")
    for name, count in tree.counts().items():
        expected = info.counts[info.canonical(name) or name]
        if count != expected:
            problems.append(f"{info.name} domain {name!r} has {count} images, expected {expected} ({tree.root})")
    return problems


