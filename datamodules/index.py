"""Listing a domain tree's image files fast, and remembering the listing between processes.

:func:`walk_layout` lists ``root/<Domain>/<Class>/**/<image>`` with :func:`os.scandir` and plain
string joins (no :class:`~pathlib.Path` per file), as :class:`~datamodules.tree.DomainTree`'s scan
needs it. :func:`cached_layout` does the same, but keeps the listing of a large tree in an index
file under the cache folder, so that the processes of a sweep (every ``dabin fit`` is its own
process) do not each list DomainNet's 586,575 files again.

**When the index is trusted.** The index records the inode and modification time (``st_ino``,
``st_mtime_ns``) of every folder it listed: the root, every domain and class folder and every
sub-folder inside a class folder. A folder's modification time changes whenever an entry is
added to it, removed from it or renamed in it, so re-checking these folders (one ``stat`` each,
about 2,100 for DomainNet) sees every change of the layout made by creating, deleting or renaming
files and folders. What it cannot see, and why that is safe or documented:

* a file replaced in place under the same name, or its content edited: the layout (names only)
  is unchanged, and images are read from disk anyway;
* changes behind symbolic links inside a class folder (a linked folder is not listed, as with
  :func:`os.walk`; a dangling link whose target appears or vanishes): rare, and a link's target
  changing does not touch the folder holding the link;
* a folder whose clock is coarser than two seconds or runs ahead of this machine's (an NFS
  server's skewed clock): an index is not written while any listed folder was modified within
  the last two seconds (a second change within the same clock tick would keep the time, so the
  listing could miss it), which covers coarse clocks, not skewed ones.

A stale, corrupt or unreadable index is rebuilt silently; an index that cannot be written (a
read-only cache folder, a full disk) is skipped, and the tree is simply listed every time.

**File format** (version :data:`INDEX_VERSION`): one JSON line (the checked folders, the ignored
files, the domains and classes with their image counts), then the image paths relative to their
domain folder, NUL-separated (a byte no file name contains), zlib-compressed (its checksum catches
a damaged file). No pickle: reading an index never runs code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zlib
from pathlib import Path

from dabin.errors import DabinError
from dabin.io import atomic_open
from datamodules.cache import default_cache_dir

__all__ = ["IMAGE_EXTENSIONS", "INDEX_VERSION", "MIN_INDEXED_IMAGES", "Layout", "cached_layout", "index_path",
           "walk_layout"]

#: File name endings read as images (torchvision's ImageFolder list); anything else is ignored.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

#: Bumped whenever the file format or what the walk lists changes; other versions are rebuilt.
INDEX_VERSION = 1

#: Trees with fewer images are not indexed: listing them costs less than writing an index file
#: (Office-Home, PACS, VLCS list in well under 0.1 s), and tests build many small trees.
MIN_INDEXED_IMAGES = 50_000

#: An index is not written while a listed folder was modified this recently (see module docstring).
RACY_SECONDS = 2.0

#: domain folder name -> class folder name -> image paths relative to the domain folder, "/"-separated.
Layout = dict[str, dict[str, list[str]]]

#: A listed folder: path relative to the root ("" for the root), inode, modification time in ns.
_Folder = tuple[str, int, int]

_HIDDEN = (".", "__MACOSX")  # dot folders and macOS archive debris are never data
_MAGIC = "dabin-index"


def walk_layout(root: str | os.PathLike[str], ignored: list[Path]) -> Layout:
    """List the images of ``root/<Domain>/<Class>/...``, as :class:`~datamodules.tree.DomainTree` reads them.

    Domains and classes are the visible sub-folders (not starting with ``.`` or ``__MACOSX``),
    sorted by name; inside a class folder every visible sub-folder is listed too, depth first in
    listing order, like :func:`os.walk` (which neither follows links to folders below the class
    folder nor reports folders it cannot read). Files ending in :data:`IMAGE_EXTENSIONS` (any
    case) are images; other visible files, in class folders and directly in domain folders, are
    appended to ``ignored``.

    Args:
        root: The folder holding the domain folders.
        ignored: Receives the non-image files found, in listing order.

    Returns:
        The layout; image lists are in listing order (the tree sorts them). A domain folder
        without class folders maps to ``{}`` (:class:`~datamodules.tree.DomainTree` refuses it or
        sets it aside).
    """
    return _walk(os.fspath(root), ignored, None)


def index_path(root: str | os.PathLike[str], index_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the index of the tree at ``root`` lives (whether or not it exists).

    Args:
        root: The tree's root; it is resolved, so every spelling of one folder shares an index.
        index_dir: Folder of index files; None: ``index/`` in :func:`~datamodules.cache.default_cache_dir`.
    """
    folder = Path(index_dir).expanduser() if index_dir is not None else default_cache_dir() / "index"
    digest = hashlib.sha1(str(Path(root).resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return folder / f"{digest}.dabin-index"


def cached_layout(root: str | os.PathLike[str], ignored: list[Path], index_dir: str | os.PathLike[str] | None = None,
                  min_images: int = MIN_INDEXED_IMAGES) -> Layout:
    """:func:`walk_layout`, read from the tree's index when the index is still valid.

    Without a valid index the tree is listed and, if it has at least ``min_images`` images, the
    index is written (atomically: concurrent processes may write it together). Any problem with
    the index (missing, stale, damaged, from another version, unwritable) only means listing the
    tree; see the module docstring for what the validity check sees.

    Args:
        root: The folder holding the domain folders.
        ignored: Receives the non-image files found, as :func:`walk_layout` would.
        index_dir: Folder of index files; None: ``index/`` in :func:`~datamodules.cache.default_cache_dir`.
        min_images: Smallest tree that is worth an index file.

    Returns:
        The layout, equal to :func:`walk_layout`'s.
    """
    top = os.fspath(root)
    path = index_path(top, index_dir)
    cached = _read(path, top)
    if cached is not None:
        layout, relative_ignored = cached
        ignored.extend(Path(os.path.join(top, name)) for name in relative_ignored)
        return layout
    started = time.time_ns()
    found: list[Path] = []
    folders: list[_Folder] = []
    layout = _walk(top, found, folders)
    ignored.extend(found)
    images = sum(len(keys) for classes in layout.values() for keys in classes.values())
    racy = max(mtime for _, _, mtime in folders) > started - int(RACY_SECONDS * 1e9)
    if images >= min_images and not racy:
        _write(path, top, folders, [os.path.relpath(p, top) for p in found], layout)
    return layout


def _folder(relative: str, stat: os.stat_result) -> _Folder:
    return relative, stat.st_ino, stat.st_mtime_ns


def _walk(top: str, ignored: list[Path], folders: list[_Folder] | None) -> Layout:
    """The walk behind :func:`walk_layout`; records every listed folder in ``folders`` unless None."""
    if folders is not None:
        # Stat before listing: a change after the stat moves the time past the recorded one.
        folders.append(_folder("", os.stat(top)))
    with os.scandir(top) as entries:
        domains = sorted((e for e in entries if not e.name.startswith(_HIDDEN) and e.is_dir()), key=lambda e: e.name)
    layout: Layout = {}
    for domain in domains:
        if folders is not None:
            folders.append(_folder(domain.name, domain.stat()))
        with os.scandir(domain.path) as entries:
            visible = [e for e in entries if not e.name.startswith(_HIDDEN)]
        class_dirs = sorted((e for e in visible if e.is_dir()), key=lambda e: e.name)
        classes: dict[str, list[str]] = {}
        for class_dir in class_dirs:
            images: list[str] = []
            if folders is not None:
                folders.append(_folder(f"{domain.name}/{class_dir.name}", class_dir.stat()))
            _walk_class(class_dir.path, class_dir.name, images, ignored, folders, f"{domain.name}/")
            classes[class_dir.name] = images
        ignored.extend(Path(e.path) for e in visible if e.is_file())
        layout[domain.name] = classes  # a folder without classes is the tree's to refuse or set aside
    return layout


def _walk_class(folder: str, key: str, images: list[str], ignored: list[Path], folders: list[_Folder] | None,
                domain_prefix: str) -> None:
    """List one folder of a class: ``key`` is its path relative to the domain folder.

    Mirrors :func:`os.walk` (top-down, not following links, unreadable folders skipped) so the
    result is the same as the walk it replaces, but joins strings instead of building paths.
    """
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return  # os.walk skips a folder it cannot read (no onerror)
    subfolders: list[os.DirEntry[str]] = []
    prefix = key + "/"
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if not name.startswith(_HIDDEN):
                subfolders.append(entry)
        elif not name.startswith("."):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                images.append(prefix + name)
            else:
                ignored.append(Path(entry.path))
    for entry in subfolders:
        if entry.is_symlink():
            continue  # os.walk lists a link to a folder but does not descend into it
        if folders is not None:
            try:
                stat = entry.stat()
            except OSError:
                continue  # vanished or unreadable: os.walk would not list it either
            folders.append(_folder(domain_prefix + prefix + entry.name, stat))
        _walk_class(entry.path, prefix + entry.name, images, ignored, folders, domain_prefix)


def _header(top: str, folders: list[_Folder], ignored: list[str], layout: Layout) -> dict[str, object]:
    return {"format": _MAGIC, "version": INDEX_VERSION, "root": str(Path(top).resolve()),
            "extensions": list(IMAGE_EXTENSIONS), "folders": folders, "ignored": ignored,
            "layout": [[domain, [[name, len(keys)] for name, keys in classes.items()]]
                       for domain, classes in layout.items()]}


def _write(path: Path, top: str, folders: list[_Folder], ignored: list[str], layout: Layout) -> None:
    header = json.dumps(_header(top, folders, ignored, layout), separators=(",", ":"))
    joined = "\0".join(key for classes in layout.values() for images in classes.values() for key in images)
    # Level 1: the paths compress about 8x at any level, and writing should stay cheap.
    body = zlib.compress(joined.encode("utf-8", "surrogateescape"), 1)
    # An index that cannot be written (read-only or full cache folder) just means listing next time.
    with contextlib.suppress(OSError, DabinError):
        with atomic_open(path, "wb") as handle:
            handle.write(header.encode("ascii") + b"\n")
            handle.write(body)


def _valid(header: dict[str, object], top: str) -> bool:
    """Whether the header is this version's, for this root, and no listed folder changed."""
    if header.get("format") != _MAGIC or header.get("version") != INDEX_VERSION:
        return False
    if header.get("extensions") != list(IMAGE_EXTENSIONS) or header.get("root") != str(Path(top).resolve()):
        return False
    # A malformed entry raises TypeError or ValueError, which the reader takes as a damaged index.
    for relative, inode, mtime in header["folders"]:
        try:
            stat = os.stat(os.path.join(top, relative) if relative else top)
        except OSError:
            return False
        if stat.st_mtime_ns != mtime or stat.st_ino != inode:
            return False
    return True


def _read(path: Path, top: str) -> tuple[Layout, list[str]] | None:
    """The layout and ignored files (relative to ``top``) of a valid index, else None."""
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.readline())
            if not isinstance(header, dict) or not _valid(header, top):
                return None
            text = zlib.decompress(handle.read()).decode("utf-8", "surrogateescape")
        keys = text.split("\0") if text else []
        layout: Layout = {}
        start = 0
        for domain, classes in header["layout"]:
            layout[domain] = {}
            for name, count in classes:
                layout[domain][name] = keys[start:start + count]
                start += count
        if start != len(keys) or not all(isinstance(name, str) for name in header["ignored"]):
            return None
        return layout, header["ignored"]
    except (OSError, ValueError, TypeError, KeyError, zlib.error):
        # Missing, unreadable, truncated, damaged or not an index at all: list the tree instead.
        return None
