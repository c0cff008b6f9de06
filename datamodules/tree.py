"""A multi-domain image tree ``root/<Domain>/<Class>/<image>`` with one class index for all domains.

The tree is scanned once (file names only; images are opened by :mod:`datamodules.check` and by
the loaders). Every layout problem is a :class:`~dabin.errors.DabinError` whose one line names the
path or value; soft problems (counts of a known dataset that differ from its release, non-image
files) are warnings, both emitted with :mod:`warnings` and collected in :attr:`DomainTree.warnings`
so that ``dabin data`` can print them.

Two shapes of the known releases are read as they come: Office-31's extra level
``<domain>/images/<class>/`` (a domain whose only folder is ``images/``; the samples' keys keep the
``images/`` prefix), and folders a release keeps beside its domains that are no domain (VisDA-2017's
unlabelled ``test/``, tllib's ``image_list/``), set aside with a note
(:func:`datamodules.catalog.set_aside`). A known dataset's own list files in its domain folders
(VisDA-2017's ``image_list.txt``) are checked against the tree (:func:`datamodules.official.check_domain_lists`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from dabin.errors import DabinError
from datamodules.catalog import check_layout, layout_hint, recognise, set_aside
from datamodules.naming import domain_aliases, domain_key, unique_codes
from datamodules.officehome import (
    ARCHIVE_FOLDER,
    OFFICE_HOME_COUNTS,
    OFFICE_HOME_DOMAINS,
    canonical_office_home_name,
    is_office_home,
)
from datamodules.index import IMAGE_EXTENSIONS, Layout, cached_layout
from datamodules.official import check_domain_lists
from datamodules.presets import DATASETS, DatasetInfo

__all__ = ["IMAGE_EXTENSIONS", "DatasetWarning", "Domain", "DomainTree", "Sample"]

class DatasetWarning(UserWarning):
    """A dataset that works but differs from what was expected (counts, ignored files)."""


class Sample(NamedTuple):
    """One image of the tree.

    A named tuple holding its domain folder's path string rather than its own path: a tree of
    DomainNet's size then builds as fast as a listing and holds one path string per domain, where
    a :class:`~pathlib.Path` per image would dominate both (``experiments/bench_index.py``).

    Attributes:
        folder: The domain's folder on disk, as a string shared by the domain's samples.
        key: Path relative to the domain folder, ``/``-separated; splits depend on it, not on
            where the tree lives or how its domain folder is spelled.
        label: Class index (alphabetical over the class folder names, ignoring case).
        domain: Index of the domain in :attr:`DomainTree.domains`.
    """

    folder: str
    key: str
    label: int
    domain: int

    @property
    def path(self) -> Path:
        """Absolute path of the image file (joined on each access, which costs far less than the decode)."""
        return Path(self.folder, self.key)


@dataclass(frozen=True)
class Domain:
    """One domain of the tree.

    Attributes:
        name: Display name (a known dataset's official spelling, else the folder name).
        code: Two-letter code (``Ar``), unique within the tree.
        folder: The domain's folder on disk.
    """

    name: str
    code: str
    folder: Path


@dataclass
class DomainTree:
    """The scanned dataset: domains, classes, samples and what was noticed on the way.

    Build it with :meth:`scan`. Samples are ordered by domain, then class, then relative path, so
    everything derived from them is independent of file-system listing order.

    Attributes:
        root: The folder holding the domain folders (after stepping into the archive folder).
        domains: Domains in a fixed order (a known dataset's, :mod:`datamodules.catalog`; else alphabetical).
        class_names: Class folder names, alphabetical ignoring case; a label indexes this list.
        samples: Every image.
        warnings: Soft problems, one line each (also emitted as :class:`DatasetWarning`).
        ignored: Non-image files found inside domain folders (ignored, counted).
        office_home: Whether the domains are Office-Home's.
        dataset: The known dataset the tree is (:mod:`datamodules.catalog`), else None.
    """

    root: Path
    domains: list[Domain]
    class_names: list[str]
    samples: list[Sample]
    warnings: list[str] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    office_home: bool = False
    dataset: DatasetInfo | None = None

    @property
    def domain_names(self) -> list[str]:
        """Display names of the domains, in order."""
        return [domain.name for domain in self.domains]

    @property
    def num_classes(self) -> int:
        """Number of classes shared by all domains."""
        return len(self.class_names)

    def counts(self) -> dict[str, int]:
        """Images per domain, by display name, in domain order."""
        counts = {domain.name: 0 for domain in self.domains}
        for sample in self.samples:
            counts[self.domains[sample.domain].name] += 1
        return counts

    def domain_samples(self, domain: int) -> list[Sample]:
        """The samples of one domain (by index), in tree order."""
        return [sample for sample in self.samples if sample.domain == domain]

    def resolve(self, name: str) -> int:
        """Index of a domain given by name, code or unique initial in any spelling (``"Rw"``, ``"real_world"``, ``"R"``).

        Args:
            name: What the user wrote.

        Returns:
            The index into :attr:`domains`.

        Raises:
            DabinError: No domain matches; the message lists the domains found.
        """
        key = domain_key(str(name))
        for index, domain in enumerate(self.domains):
            if key in (domain_key(domain.name), domain_key(domain.code), domain_key(domain.folder.name)):
                return index
        alias = domain_aliases(self.domain_names).get(key)  # a unique initial, as papers write tasks
        if alias is not None:
            return self.domain_names.index(alias)
        found = ", ".join(f"{d.name} ({d.code})" for d in self.domains)
        raise DabinError(f"unknown domain {name!r} in {self.root}; found: {found}")

    @classmethod
    def scan(cls, root: str | os.PathLike[str], image_lists: str | os.PathLike[str] | None = None) -> DomainTree:
        """Scan a dataset folder.

        Args:
            root: The folder holding ``<Domain>/<Class>/<image>`` (or Office-31's
                ``<Domain>/images/<Class>/<image>``), or a folder whose only sub-folder is such a
                tree (e.g. the one holding ``OfficeHomeDataset_10072016/``).
            image_lists: Optional image-list file, or folder of ``*.txt`` files, with
                ``<Domain>/<Class>/<file> <label>`` lines relative to ``root``, as other toolkits
                ship; only the listed images are used.

        Returns:
            The scanned tree.

        Raises:
            DabinError: Missing root, not a domain tree, empty class folder, a class missing from
                a domain, an Office-Home domain missing, a listed file missing, a known dataset
                laid out wrong (:func:`datamodules.catalog.recognise`), a file its own lists name
                missing (:func:`datamodules.official.check_domain_lists`).
        """
        base = _find_tree_root(Path(root).expanduser())
        ignored: list[Path] = []
        if image_lists is None:
            # Listed once and remembered in an index (datamodules.index): a sweep's processes share it.
            layout = cached_layout(base, ignored)
        else:
            layout = _read_lists(base, Path(image_lists).expanduser())
        return _build(base, layout, ignored)


def _visible(entry: os.DirEntry[str]) -> bool:
    # Dot folders and macOS archive debris are never data.
    return not entry.name.startswith((".", "__MACOSX"))


def _subdirs(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if _visible(e) and e.is_dir()), key=lambda e: e.name)


def _files(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return [e for e in entries if _visible(e) and e.is_file()]


#: The folder Office-31's archive has between a domain and its classes.
_IMAGES = "images"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _find_tree_root(root: Path) -> Path:
    """Step into the archive folder (or a lone wrapper folder) and check the shape of the tree."""
    if not root.exists():
        raise DabinError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise DabinError(f"dataset root {root} is not a folder")
    subdirs = _subdirs(root)
    archive = [d for d in subdirs if d.name == ARCHIVE_FOLDER]
    if archive:
        return _find_tree_root(Path(archive[0].path))
    # A lone folder whose sub-folders have sub-folders is a wrapper around the tree (an unpacked
    # archive); a lone domain (root/Domain/Class/img) has images, not folders, one level down.
    if len(subdirs) == 1 and any(_subdirs(Path(c.path)) for c in _subdirs(Path(subdirs[0].path))):
        return _find_tree_root(Path(subdirs[0].path))
    expected = f"expected {root}/<domain>/<class>/<image>"
    if len(subdirs) == 1 and subdirs[0].name.lower() == _IMAGES:
        # One Office-31 domain folder given (amazon/images/<class>/): say so rather than read a one-domain tree.
        hint = layout_hint(root, [d.name for d in _subdirs(Path(subdirs[0].path))])
        if hint:
            raise DabinError(f"{expected}, found only {subdirs[0].path}, one domain's images folder{hint}")
    if not subdirs:
        found = [e.name for e in _files(root)]
        raise DabinError(f"{expected}, found no folders in {root} ({len(found)} files)")
    if any(_is_image(e.name) for e in _files(root)):
        raise DabinError(f"{expected}, found images directly in {root}")
    for domain in subdirs:
        if any(_is_image(e.name) for e in _files(Path(domain.path))):
            raise DabinError(f"{expected}, found images directly in {domain.path} (a class folder at domain "
                             "level: put single-domain class folders inside a domain folder)"
                             + layout_hint(root, [d.name for d in subdirs]))
    return root


def _images_level(layout: Layout) -> Layout:
    """Office-31's archive level ``<domain>/images/<class>/``: a domain whose only folder is ``images/`` holding
    class folders gets those classes (keys keep the ``images/`` prefix: they stay relative to the domain folder)."""
    result: Layout = {}
    for domain, classes in layout.items():
        only = next(iter(classes)) if len(classes) == 1 else None
        if only is None or only.lower() != _IMAGES or not all(key.count("/") >= 2 for key in classes[only]):
            result[domain] = classes
            continue
        regrouped: dict[str, list[str]] = {}
        for key in classes[only]:
            regrouped.setdefault(key.split("/", 2)[1], []).append(key)
        result[domain] = dict(sorted(regrouped.items()))
    return result


def _list_files(lists: Path) -> list[Path]:
    if not lists.exists():
        raise DabinError(f"image list {lists} does not exist")
    files = sorted(lists.glob("*.txt")) if lists.is_dir() else [lists]
    if not files:
        raise DabinError(f"no image lists (*.txt) in {lists}")
    return files


def _read_lists(root: Path, lists: Path) -> Layout:
    layout: Layout = {}
    labels: dict[str, tuple[int, str]] = {}  # class -> (label, where first seen)
    # A list written for "Real World/..." also serves a tree whose folder is spelled "Real_World".
    on_disk = {domain_key(d.name): d.name for d in _subdirs(root)}
    for list_file in _list_files(lists):
        for number, line in enumerate(list_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{list_file}:{number}"
            parts = line.rsplit(maxsplit=1)  # paths may contain spaces ("Real World/...")
            path = Path(parts[0])
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or len(path.parts) < 3:
                raise DabinError(f"{where}: expected '<domain>/<class>/<file> <label>', found {line!r}")
            # Office-31's lists (e.g. CDTrans's ./amazon/images/<class>/frame_0001.jpg) name the images/ level.
            office_31 = path.parts[1].lower() == _IMAGES and len(path.parts) >= 4
            class_name, label = path.parts[2 if office_31 else 1], int(parts[1])
            seen = labels.setdefault(class_name, (label, where))
            if seen[0] != label:
                raise DabinError(f"{where}: class {class_name!r} has label {label}, but {seen[0]} at {seen[1]}")
            folder = on_disk.get(domain_key(path.parts[0]), path.parts[0])
            path = Path(folder, *path.parts[1:])
            if not (root / path).is_file():
                raise DabinError(f"{where}: listed image {root / path} does not exist")
            layout.setdefault(folder, {}).setdefault(class_name, []).append(
                Path(*path.parts[1:]).as_posix())
    return layout


def _build(root: Path, layout: Layout, ignored: list[Path]) -> DomainTree:
    layout = _images_level(layout)
    likely, aside = set_aside({folder: list(classes) for folder, classes in layout.items()})
    notes = [f"set aside {root / folder}: {why}" for folder, why in aside.items()]
    for folder in aside:
        del layout[folder]
        ignored = [path for path in ignored if not path.is_relative_to(root / folder)]
    for folder, classes in layout.items():
        if not classes:
            raise DabinError(f"domain folder {root / folder} has no class folders "
                             f"(expected {root}/<domain>/<class>/<image>)")
    folders = list(layout)
    office_home = is_office_home(folders)
    if office_home:
        names = {folder: canonical_office_home_name(folder) or folder for folder in folders}
        missing = [d for d in OFFICE_HOME_DOMAINS if d not in names.values()]
        if missing:
            raise DabinError(f"Office-Home tree {root} lacks domain {missing[0]!r} "
                             f"(found: {', '.join(sorted(folders))})")
        folders.sort(key=lambda f: OFFICE_HOME_DOMAINS.index(names[f]))
        dataset: DatasetInfo | None = DATASETS["office_home"]
    else:
        # PACS, VLCS, TerraIncognita, DomainNet: official names and order; a stray folder is an error.
        dataset = recognise(root, folders, sorted({c for classes in layout.values() for c in classes}), likely)
        names = {folder: folder for folder in folders}
        if dataset is not None:
            names = {folder: dataset.canonical(folder) or folder for folder in folders}
            folders.sort(key=lambda f: dataset.domains.index(names[f]))
    # Case-insensitive, like the labels of Office-Home's official lists ("Trash_Can" < "TV").
    class_names = sorted({c for classes in layout.values() for c in classes}, key=lambda c: (c.lower(), c))
    for folder in folders:
        for class_name in class_names:
            if class_name not in layout[folder]:
                raise DabinError(f"class {class_name!r} is missing from domain {names[folder]!r} "
                                 f"(no folder {root / folder / class_name}); every domain needs the same classes")
            if not layout[folder][class_name]:
                raise DabinError(f"empty class folder {root / folder / class_name} (no images)")
    codes = unique_codes([names[f] for f in folders])
    domains = [Domain(names[f], code, root / f) for f, code in zip(folders, codes)]
    index = {name: label for label, name in enumerate(class_names)}
    folder_paths = [str(domain.folder) for domain in domains]  # one string per domain, shared by its samples
    with _collector_paused():
        samples = [Sample(folder_paths[d], key, index[class_name], d)
                   for d, folder in enumerate(folders)
                   for class_name in class_names
                   for key in sorted(layout[folder][class_name])]
    if dataset is not None and dataset.domain_lists is not None:
        # The release's own list files (VisDA-2017's image_list.txt) are read below, not ignored.
        lists = {root / folder / dataset.domain_lists for folder in folders}
        ignored = [path for path in ignored if path not in lists]
    tree = DomainTree(root, domains, class_names, samples, ignored=ignored, office_home=office_home, dataset=dataset)
    problems = check_layout(dataset, tree) + check_domain_lists(tree) if dataset is not None and not office_home else []
    _warn(tree, notes + problems + _soft_problems(tree))
    return tree


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large list of samples is built.

    Every few hundred new tuples the collector would walk the young objects, and now and then all
    of them: half of the time of building DomainNet's samples. Samples hold only strings and
    integers, so they can form no cycle for it to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _soft_problems(tree: DomainTree) -> list[str]:
    problems = []
    if tree.office_home:
        for name, count in tree.counts().items():
            if count != OFFICE_HOME_COUNTS[name]:
                problems.append(f"Office-Home domain {name!r} has {count} images, expected "
                                f"{OFFICE_HOME_COUNTS[name]} ({tree.root})")
    if tree.ignored:
        problems.append(f"ignored {len(tree.ignored)} non-image file(s) in {tree.root} "
                        f"(e.g. {tree.ignored[0]})")
    return problems


def _warn(tree: DomainTree, problems: Sequence[str]) -> None:
    for problem in problems:
        tree.warnings.append(problem)
        # stacklevel 4: point at the caller of DomainTree.scan, not at this helper.
        warnings.warn(problem, DatasetWarning, stacklevel=4)
