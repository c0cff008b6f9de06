"""Layout-faithful replicas of the known datasets, tiny or at the release's size, for tests and rehearsals.

:func:`make_replica` writes ``per_class`` tiny images for every class of every domain of a dataset
of :data:`datamodules.presets.DATASETS`, with the official domain and class folder names and the
release's layout, so that :class:`~datamodules.tree.DomainTree` recognises it as the real dataset
would be (only the counts differ, and say so in warnings). :func:`make_scaled_replica` writes the
release's image counts (or a fraction of them) quickly: one tiny image per domain and class,
every other file a hard link to it. Office-Home is delegated to
:func:`dabin.testing.officehome.make_officehome_replica`, which writes every file of its lists.

What each replica holds beside the images, as the release does:

- PACS: the authors' split files ``<domain>_{train,crossval,test}_kfold.txt`` (the last image of
  each class with two or more is validation), read by :func:`datamodules.official.read_pacs_splits`.
- DomainNet and the digits: ``<domain>_train.txt`` / ``<domain>_test.txt`` at the root (lines
  ``<domain>/<class>/<file> <label>``, the official label order), the images of each domain
  assigned to them in its official train/test proportion, interleaved in file order as the
  official lists are.
- Office-31: the archive's ``<domain>/images/<class>/`` level.
- VisDA-2017: ``train/image_list.txt`` and ``validation/image_list.txt`` (``<class>/<file> <label>``)
  and the unlabelled ``test/<trunk>/`` folder (with its ``image_list.txt`` of paths).

File names follow each release's pattern (from the sources in :mod:`datamodules.presets`); digits
that identify an object in the release (hashes, ids) are a hash here, not real names:

- PACS: ``art_painting`` and ``cartoon`` ``pic_001.jpg`` (the authors' names), ``photo``
  ``00001.jpg``, ``sketch`` ``00001.png`` (PACS sketches are PNG files).
- VLCS: 32 hex digits ``.jpg``, as DomainBed's copy names its files (e.g. the image lists of
  muse1998/Source-Free-Domain-Generalization); TerraIncognita: UUID-shaped ``.jpg`` names.
- DomainNet: ``<domain>_<NNN>_<nnnnnn>.jpg`` with ``NNN`` the official 1-based class index (every
  path of the official lists), quickdraw ``<16 digits>.png`` (its official lists' names).
- Office-31: ``frame_NNNN.jpg`` numbered from 1 in each class (thuml/CDAN's lists).
- VisDA-2017: train ``src_<n>_<synset>_<md5>__<yaw>_<light>_<pitch>.png``, validation
  ``<class>_<id>.jpg``, test ``<trunkNN>/<md5>.jpg`` (the challenge's README and lists).
- digits: ``<split>_<index:05d>.png``, as :mod:`datamodules.digits` exports torchvision's sets.

**Images per class** at a scale (:func:`make_scaled_replica`): each domain's (or each official
list's) release count times the scale, spread over the classes in the proportions of the counted
lists where a source lists them (:func:`datamodules.presets.class_counts`: Office-31, VisDA-2017's
validation, DomainNet's lists, USPS, MNIST's test list), in the proportions of the domain's other
list where only one was counted (DomainNet's quickdraw and real train lists, MNIST's train set),
else evenly (VisDA-2017's train, SVHN, PACS, VLCS, TerraIncognita); rounded so that the per-class
counts sum to the scaled per-domain (per-list) count exactly, every class keeping one image at
least. At scale 1 every count is the release's.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path

from dabin.testing.officehome import _render, _rng, make_officehome_replica
from datamodules.catalog import dataset_info
from datamodules.official import LIST_SPLITS, PACS_SPLITS
from datamodules.presets import DatasetInfo, class_counts, dataset_key

__all__ = ["make_replica", "make_scaled_replica"]

#: Domain -> renderer style (0 textured canvas, 1 flat clipart, 2 shaded object on white, 3 scene).
_STYLES = {"art_painting": 0, "cartoon": 1, "photo": 3, "sketch": 1, "Caltech101": 2, "LabelMe": 3, "SUN09": 3,
           "VOC2007": 3, "clipart": 1, "infograph": 1, "painting": 0, "quickdraw": 1, "real": 3, "amazon": 2,
           "dslr": 3, "webcam": 3, "train": 2, "validation": 3, "MNIST": 1, "USPS": 1, "SVHN": 3}
#: VisDA-2017's unlabelled test set: 72,372 images in 20 trunks (CDTrans's data/visda/test/image_list.txt).
_VISDA_TEST, _VISDA_TRUNKS = 72372, 20

#: One class of one domain: the split (``"all"``, ``"train"``, ``"test"``) of each of its files, in file order.
_Plan = dict[str, list[list[str]]]


def _hash(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()


def _file_name(key: str, info: DatasetInfo, domain: str, label: int, index: int, split: str) -> str:
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
        if domain == "quickdraw":  # 16 digits; the index in the low digits keeps a class's names apart
            return f"{10 ** 15 + int(_hash(domain, label, index)[:12], 16) % (9 * 10 ** 9) * 10 ** 6 + index}.png"
        return f"{domain}_{label + 1:03d}_{index + 1:06d}.jpg"
    if key == "office_31":
        return f"frame_{index + 1:04d}.jpg"
    if key == "visda2017" and domain == "train":  # <section>_<synset of the class>_<object md5>__<yaw>_<light>_<pitch>
        synset, h = int(_hash(label)[:7], 16) % 10 ** 8, _hash(domain, label, index)
        return f"src_{1 + index % 2}_{synset:08d}_{h[:32]}__{index % 360}_{int(h[32:34], 16)}_150.png"
    if key == "visda2017":  # <class>_<COCO object id>, the id rising with the index: distinct in a class
        return f"{(info.classes or ())[label]}_{1_000_000 + 17 * index + label}.jpg"
    if key == "digits":
        return f"{split}_{index:05d}.png"
    raise ValueError(key)


def _relative(key: str, domain: str, class_name: str, name: str) -> str:
    # Office-31's archive has an images/ folder between a domain and its classes.
    return f"{domain}/images/{class_name}/{name}" if key == "office_31" else f"{domain}/{class_name}/{name}"


def _allocate(total: int, weights: list[int] | tuple[int, ...]) -> list[int]:
    """``total`` split in proportion to ``weights`` (all equal if they sum to 0), largest remainders first."""
    weights = list(weights) if sum(weights) else [1] * len(weights)
    exact = [total * w / sum(weights) for w in weights]
    counts = [math.floor(x) for x in exact]
    for i in sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _splits(info: DatasetInfo) -> tuple[str, ...]:
    return LIST_SPLITS if info.transfer_protocol == "lists" else ("all",)


def _release_sizes(info: DatasetInfo, domain: str) -> dict[str, int]:
    if info.transfer_protocol == "lists":
        return dict(zip(LIST_SPLITS, info.split_sizes[domain]))
    return {"all": info.counts[domain]}


def _interleave(counts: dict[str, int]) -> list[str]:
    """Files in order, each split's spread evenly among them (the official lists interleave train and test)."""
    total = sum(counts.values())
    if len(counts) == 1 or not total:
        return [split for split, n in counts.items() for _ in range(n)]
    test = counts["test"]
    return ["test" if (i + 1) * test // total > i * test // total else "train" for i in range(total)]


def _plan_per_class(info: DatasetInfo, per_class: int) -> _Plan:
    """``per_class`` files in every class; a lists dataset's in its domain's official proportion, over the domain."""
    plan: _Plan = {}
    for domain in info.domains:
        files = ["all"] * per_class * info.num_classes
        if info.transfer_protocol == "lists":
            train, test = info.split_sizes[domain]
            n_test = len(files) * test // (train + test)
            files = _interleave({"train": len(files) - n_test, "test": n_test})
        plan[domain] = [files[c * per_class:(c + 1) * per_class] for c in range(info.num_classes)]
    return plan


def _plan_scaled(info: DatasetInfo, key: str, scale: float) -> _Plan:
    """The release's counts times ``scale`` (module docstring), every class keeping one image at least."""
    plan: _Plan = {}
    for domain in info.domains:
        sizes = {split: round(n * scale) for split, n in _release_sizes(info, domain).items()}
        known = {split: class_counts(key, domain, split) for split in sizes}
        per_split = {}
        for split, total in sizes.items():
            weights = known[split] or next((w for w in known.values() if w), None) or [1] * info.num_classes
            per_split[split] = _allocate(total, weights)
        if sum(sizes.values()) < info.num_classes:
            raise ValueError(f"scale {scale} gives {info.name} domain {domain!r} {sum(sizes.values())} images, "
                             f"fewer than its {info.num_classes} classes")
        for label in range(info.num_classes):
            if not any(counts[label] for counts in per_split.values()):
                # One image moves here from the largest class (two or more images, as there are at least as
                # many images as classes), from its larger split: the totals stay exact.
                donor = max(range(info.num_classes), key=lambda c: sum(counts[c] for counts in per_split.values()))
                split = max(per_split, key=lambda s: per_split[s][donor])
                per_split[split][donor] -= 1
                per_split[split][label] += 1
        plan[domain] = [_interleave({split: per_split[split][label] for split in sizes})
                        for label in range(info.num_classes)]
    return plan


def _link(source: str, path: str) -> bool:
    """Hard-link ``path`` to ``source`` (replacing a file there); False where links fail (then copy it yourself)."""
    try:
        os.link(source, path)
    except FileExistsError:
        os.unlink(path)
        return _link(source, path)
    except OSError:  # no links on this file system, or ``source`` has the most links one file may have
        return False
    return True


def _save(image_path: str, relative: str, label: int, domain: str, size: int, seed: int) -> None:
    image = _render(_rng(seed, relative), label, _STYLES.get(domain, 3), (size, size))
    if image_path.endswith(".png"):
        image.save(image_path, "PNG")
    else:
        image.save(image_path, "JPEG", quality=90)


def _write_class(key: str, info: DatasetInfo, root: str, domain: str, label: int, splits: list[str],
                 counters: dict[str, int], image_size: int, seed: int, link: bool) -> list[tuple[str, str]]:
    """Write one class's files; returns ``(split, relative path)`` of each."""
    class_name = (info.classes or ())[label]
    written = []
    source = ""
    for index, split in enumerate(splits):
        # The digits number their files by position in the split (torchvision's), over all classes.
        number = counters.setdefault(split, 0) if key == "digits" else index
        counters[split] = counters.get(split, 0) + 1
        relative = _relative(key, domain, class_name, _file_name(key, info, domain, label, number, split))
        path = os.path.join(root, relative)
        if index == 0:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if not link or not source:
            _save(path, relative, label, domain, image_size, seed)
            source = path
        elif not _link(source, path):
            shutil.copyfile(source, path)
            source = path  # a fresh file to link the next ones to
        written.append((split, relative))
    return written


def _write(key: str, info: DatasetInfo, root: Path, plan: _Plan, image_size: int, seed: int, link: bool,
           visda_test: int) -> Path:
    top = os.fspath(root)
    for domain in info.domains:
        files: dict[str, list[str]] = {}
        lines: dict[str, list[str]] = {split: [] for split in _splits(info)}
        counters: dict[str, int] = {}
        for label, splits in enumerate(plan[domain]):
            class_name = (info.classes or ())[label]
            written = _write_class(key, info, top, domain, label, splits, counters, image_size, seed, link)
            files[class_name] = [relative.rsplit("/", 1)[1] for _, relative in written]
            for split, relative in written:
                # Lists name <domain>/<class>/<file> (DomainNet, digits), VisDA's <class>/<file>.
                lines[split].append(f"{relative.split('/', 1)[1] if key == 'visda2017' else relative} {label}")
        if key == "pacs":
            for split, pacs_lines in _pacs_split_lines(info, domain, files).items():
                (root / f"{domain}_{split}_kfold.txt").write_text("\n".join(pacs_lines) + "\n")
        elif info.transfer_protocol == "lists":
            for split, list_lines in lines.items():
                (root / f"{domain}_{split}.txt").write_text("".join(line + "\n" for line in list_lines))
        elif key == "visda2017":
            (root / domain / "image_list.txt").write_text("".join(line + "\n" for line in lines["all"]))
    if key == "visda2017":
        _write_visda_test(root, visda_test, image_size, seed, link)
    return root


def _write_visda_test(root: Path, count: int, image_size: int, seed: int, link: bool) -> None:
    """``test/trunkNN/<md5>.jpg``, ``count`` images spread over the trunks, and ``test/image_list.txt`` (paths only)."""
    trunks = min(_VISDA_TRUNKS, max(count, 1))
    listed = []
    for trunk, n in enumerate(_allocate(count, [1] * trunks), start=1):
        folder = root / "test" / f"trunk{trunk:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        source = ""
        for index in range(n):
            relative = f"trunk{trunk:02d}/{hashlib.md5(f'{trunk}/{index}'.encode()).hexdigest()}.jpg"
            path = os.fspath(root / "test" / relative)
            if not (link and source and _link(source, path)):
                _save(path, f"test/{relative}", index % 12, "validation", image_size, seed)
                source = path
            listed.append(relative + "\n")
    (root / "test" / "image_list.txt").write_text("".join(listed))


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
        dataset: A key or name of :data:`~datamodules.presets.DATASETS` in any spelling (``pacs``,
            ``Office-31``, ``visda2017``, ``domainnet``, ``digits``, ``office_home``, ...).
        root: The folder to hold the domain folders (created; files already there are overwritten).
            Office-Home: the folder to hold ``OfficeHomeDataset_10072016/``.
        per_class: Images per class and domain (Office-Home: at most this many, the listed ones;
            VisDA-2017's test folder gets this many too).
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
    key = dataset_key(info)
    if per_class < 1 or image_size < 1:
        raise ValueError(f"per_class and image_size must be at least 1, got {per_class} and {image_size}")
    root = Path(root).expanduser()
    if key == "office_home":
        return make_officehome_replica(root, seed=seed, per_class=per_class)
    return _write(key, info, root, _plan_per_class(info, per_class), image_size, seed, False, per_class)


def make_scaled_replica(dataset: str, root: str | os.PathLike[str], scale: float = 1.0, image_size: int = 8,
                        seed: int = 0) -> Path:
    """Write a replica at the release's image counts times ``scale``, hard-linking one image per domain and class.

    Every domain and class folder, file name and list file is the release's (as :func:`make_replica`
    writes them); the images per class are the module docstring's. One image per domain and class
    is encoded, the others are hard links to it (copies where the file system refuses links), so
    DomainNet at scale 1 (586,575 files) takes seconds, not an hour, and little disk.

    Args:
        dataset: A key or name of :data:`~datamodules.presets.DATASETS` (not Office-Home: its
            replica, :func:`~dabin.testing.officehome.make_officehome_replica`, is full size already).
        root: The folder to hold the domain folders (created; files already there are replaced).
        scale: Fraction of the release's counts (1: the release's; 0.1: a tenth of every count).
        image_size: Side of every image in pixels.
        seed: Seed of the pixels.

    Returns:
        ``root``.

    Raises:
        DabinError: Unknown dataset.
        ValueError: Office-Home, a scale not above 0, so small a scale that a domain has fewer
            images than classes, or ``image_size`` below 1.
    """
    info = dataset_info(dataset)
    key = dataset_key(info)
    if key == "office_home":
        raise ValueError("Office-Home's replica is full size already: use make_replica('office_home', root)")
    if not scale > 0 or image_size < 1:
        raise ValueError(f"scale must be above 0 and image_size at least 1, got {scale} and {image_size}")
    root = Path(root).expanduser()
    plan = _plan_scaled(info, key, scale)
    return _write(key, info, root, plan, image_size, seed, True, round(_VISDA_TEST * scale))
