"""Small layout-faithful replicas of the domain-generalization datasets, for tests and rehearsals.

:func:`make_replica` writes ``per_class`` tiny images for every class of every domain of a dataset
of :data:`datamodules.catalog.DATASETS`, at ``root/<Domain>/<Class>/<file>`` with the official
domain and class folder names (PACS, VLCS, TerraIncognita, DomainNet: 345 classes), so that
:class:`~datamodules.tree.DomainTree` recognises it as the real dataset would be (only the counts
differ, and say so in warnings). For PACS it also writes the authors' split files beside the
domains (:func:`datamodules.catalog.read_pacs_splits` reads them). Office-Home is delegated to
:func:`dabin.testing.officehome.make_officehome_replica`, which writes every file of its lists.

Pixels come from the Office-Home replica's renderer (a class's colours and stripes in one of four
styles), so images of different classes differ. File names follow each release's pattern where it
is known from a source, else are neutral numbers:

- PACS: ``art_painting`` and ``cartoon`` ``pic_001.jpg`` (the authors' names), ``photo``
  ``00001.jpg``, ``sketch`` ``00001.png`` (PACS sketches are PNG files).
- VLCS: 32 hex digits ``.jpg``, as DomainBed's copy names its files (e.g. the image lists of
  muse1998/Source-Free-Domain-Generalization); the digits here are a hash, not real names.
- TerraIncognita: UUID-shaped ``.jpg`` names, as DomainBed copies the camera-trap files; hashes.
- DomainNet: ``<domain>_<NNN>_<nnnnnn>.jpg`` with ``NNN`` the official 1-based class index (the
  pattern of every path in DomainBed's ``domain_net_duplicates.txt``); quickdraw as ``.png``
  (the official page: ".jpg (or .png)"; which domain is PNG is not verified here).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dabin.testing.officehome import _render, _rng, make_officehome_replica
from datamodules.catalog import DATASETS, PACS_SPLITS, DatasetInfo, dataset_info

__all__ = ["make_replica"]

#: Domain -> renderer style (0 textured canvas, 1 flat clipart, 2 shaded object on white, 3 scene).
_STYLES = {"art_painting": 0, "cartoon": 1, "photo": 3, "sketch": 1, "Caltech101": 2, "LabelMe": 3, "SUN09": 3,
           "VOC2007": 3, "clipart": 1, "infograph": 1, "painting": 0, "quickdraw": 1, "real": 3}


def _hash(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()


def _file_name(key: str, domain: str, label: int, index: int) -> str:
    """The ``index``-th (from 0) file name of a class, in the release's pattern (module docstring)."""
    if key == "pacs":
        return {"art_painting": f"pic_{index + 1:03d}.jpg", "cartoon": f"pic_{index + 1:03d}.jpg",
                "sketch": f"{index + 1:05d}.png"}.get(domain, f"{index + 1:05d}.jpg")
    if key == "vlcs":
        return _hash(domain, label, index)[:32] + ".jpg"
    if key == "terra_incognita":
        h = _hash(domain, label, index)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}.jpg"
    if key == "domainnet":
        return f"{domain}_{label + 1:03d}_{index + 1:06d}.{'png' if domain == 'quickdraw' else 'jpg'}"
    raise ValueError(key)


def _pacs_split_lines(info: DatasetInfo, domain: str, files: dict[str, list[str]]) -> dict[str, list[str]]:
    """The three split files of one domain: the last image of each class is validation (if it has two)."""
    lines: dict[str, list[str]] = {split: [] for split in PACS_SPLITS}
    for label, class_name in enumerate(info.classes or ()):
        for index, name in enumerate(files[class_name]):
            line = f"{domain}/{class_name}/{name} {label + 1}"
            lines["crossval" if 0 < index == len(files[class_name]) - 1 else "train"].append(line)
            lines["test"].append(line)
    return lines


def make_replica(dataset: str, root: str | os.PathLike[str], per_class: int = 1, image_size: int = 8,
                 seed: int = 0) -> Path:
    """Write a replica of a dataset: real domain and class folders, ``per_class`` tiny images each.

    Args:
        dataset: ``pacs``, ``vlcs``, ``terra_incognita``, ``domainnet`` or ``office_home`` (any
            spelling of a key or name, :func:`~datamodules.catalog.dataset_info`).
        root: The folder to hold the domain folders (created; files already there are overwritten).
            Office-Home: the folder to hold ``OfficeHomeDataset_10072016/``.
        per_class: Images per class and domain (Office-Home: at most this many, the listed ones).
        image_size: Side of every image in pixels (not used for Office-Home, whose replica has its
            own sizes).
        seed: Seed of the pixels (file names do not depend on it).

    Returns:
        ``root``.

    Raises:
        DabinError: Unknown dataset.
        ValueError: ``per_class`` or ``image_size`` below 1.
    """
    info = dataset_info(dataset)
    key = next(k for k, v in DATASETS.items() if v is info)
    if per_class < 1 or image_size < 1:
        raise ValueError(f"per_class and image_size must be at least 1, got {per_class} and {image_size}")
    root = Path(root).expanduser()
    if key == "office_home":
        return make_officehome_replica(root, seed=seed, per_class=per_class)
    for domain in info.domains:
        files: dict[str, list[str]] = {}
        for label, class_name in enumerate(info.classes or ()):
            folder = root / domain / class_name
            folder.mkdir(parents=True, exist_ok=True)
            files[class_name] = [_file_name(key, domain, label, index) for index in range(per_class)]
            for name in files[class_name]:
                relative = f"{domain}/{class_name}/{name}"
                image = _render(_rng(seed, relative), label, _STYLES.get(domain, 3), (image_size, image_size))
                if name.endswith(".png"):
                    image.save(folder / name, "PNG")
                else:
                    image.save(folder / name, "JPEG", quality=90)
        if key == "pacs":
            for split, lines in _pacs_split_lines(info, domain, files).items():
                (root / f"{domain}_{split}_kfold.txt").write_text("\n".join(lines) + "\n")
    return root
