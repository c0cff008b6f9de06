"""A layout-faithful Office-Home replica made from the shipped file lists, for tests and rehearsals.

Office-Home's images cannot be shipped or downloaded everywhere dabin is tested, but its layout
can: :func:`make_officehome_replica` writes one image for every line of the official lists
(``datamodules/lists/office_home_<Domain>.txt``) at its real relative path::

    <root>/OfficeHomeDataset_10072016/{Art,Clipart,Product,Real World}/<Class>/<nnnnn>.jpg

with the official folder spellings (``Real World`` with a space) and counts (Art 2,427,
Clipart 4,365, Product 4,439, Real World 4,357: 15,588 images, 65 classes), so every split, fold
and per-domain count computed on it is the one the real dataset gives.

**Ordinary images** (all but the odd ones below) are RGB JPEGs (quality 90) of 40-300 px sides
(so generating and decoding them is fast), not noise: each class has its own two colours and
stripe pattern (angle and frequency), each domain its own style (Art: textured canvas; Clipart:
flat shapes on white; Product: a shaded object on white; Real World: a noisy scene), and each
image its own size, aspect ratio, placement and noise.

**Odd images** (:data:`ODD_IMAGES`), each the first listed file of a class chosen from the seed,
so any subset with ``per_class >= 1`` keeps those of its domains; 14 in all:

- ``tiny``: an 18x18 JPEG (Clipart) and a 24x18 one (Real World): smaller than the crop, so
  they are upscaled.
- ``huge``: 3000x2250 (Art), 2250x3000 (Product, portrait) and 4000x3000 (Real World) noisy JPEGs
  of a few MB, like full-resolution photos (their decoding dominates in draft mode).
- ``gray``: single-channel (mode ``L``) JPEGs (Art, Product).
- ``cmyk``: CMYK JPEGs (Clipart, Real World).
- ``exif6``/``exif8``: JPEGs whose pixels are stored rotated, with EXIF orientation 6 (Real World,
  stored 320x240, shown 240x320) and 8 (Product, stored 280x200, shown 200x280); shown upright
  their top 15% is a red band.
- ``png``: PNG files under a ``.jpg`` name, one RGB (Art), one RGBA with a transparent background
  (Clipart).

The replica is deterministic for its seed (every image from its own generator, seeded by the seed
and its path), written to a temporary folder beside ``root`` and renamed into place, and marked
complete by ``root/.dabin-replica.json`` (format version, seed, subset): a second call with the
same arguments returns at once. All 15,588 images take about 10-20 s on 2 cores.
"""

from __future__ import annotations

import colorsys
import contextlib
import dataclasses
import json
import os
import shutil
import time
import uuid
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datamodules.officehome import ARCHIVE_FOLDER, OFFICE_HOME_DOMAINS, canonical_office_home_name, office_home_list

__all__ = ["MARKER", "ODD_IMAGES", "OddImage", "VERSION", "make_officehome_replica", "odd_image_paths"]

#: Bump when what is generated changes, so that complete replicas of an older version are rebuilt.
VERSION = 1
#: File in ``root`` that marks a complete replica (JSON: version, seed, subset, counts).
MARKER = ".dabin-replica.json"
#: EXIF tag number of the orientation.
_ORIENTATION = 0x0112


@dataclasses.dataclass(frozen=True)
class OddImage:
    """One unusual image of the replica.

    Attributes:
        kind: ``tiny``, ``huge``, ``gray``, ``cmyk``, ``exif6``, ``exif8`` or ``png``.
        domain: Office-Home domain it is in.
        size: ``(width, height)`` of the image as shown (after the EXIF rotation, for ``exif*``).
        mode: PIL mode of the stored pixels.
        fmt: File format (``JPEG`` or ``PNG``; the name always ends in ``.jpg``).
    """

    kind: str
    domain: str
    size: tuple[int, int]
    mode: str = "RGB"
    fmt: str = "JPEG"


#: The odd images, in the order their classes are drawn from the seed.
ODD_IMAGES: tuple[OddImage, ...] = (
    OddImage("tiny", "Clipart", (18, 18)),
    OddImage("tiny", "Real World", (24, 18)),
    OddImage("huge", "Art", (3000, 2250)),
    OddImage("huge", "Product", (2250, 3000)),
    OddImage("huge", "Real World", (4000, 3000)),
    OddImage("gray", "Art", (260, 190), mode="L"),
    OddImage("gray", "Product", (220, 220), mode="L"),
    OddImage("cmyk", "Clipart", (240, 180), mode="CMYK"),
    OddImage("cmyk", "Real World", (300, 225), mode="CMYK"),
    OddImage("exif6", "Real World", (240, 320)),
    OddImage("exif8", "Product", (200, 280)),
    OddImage("png", "Art", (210, 160), fmt="PNG"),
    OddImage("png", "Clipart", (180, 180), mode="RGBA", fmt="PNG"),
)

_NUM_CLASSES = 65


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def odd_image_paths(seed: int = 0) -> dict[str, OddImage]:
    """Where the odd images of a replica made with ``seed`` are.

    Args:
        seed: The replica's seed.

    Returns:
        Path relative to the archive folder (``Real World/Mug/00001.jpg``, as the official lists
        write it) -> the odd image there.
    """
    rng = np.random.default_rng([seed, 7_654_321])
    lists = {domain: office_home_list(domain) for domain in OFFICE_HOME_DOMAINS}
    used: dict[str, set[int]] = {domain: set() for domain in OFFICE_HOME_DOMAINS}
    chosen = {}
    for odd in ODD_IMAGES:
        # A different class for every odd image of a domain, so a per-class subset keeps them all.
        label = int(rng.choice(sorted(set(range(_NUM_CLASSES)) - used[odd.domain])))
        used[odd.domain].add(label)
        path = next(p for p, lab in lists[odd.domain] if lab == label)
        chosen[path] = odd
    return chosen


# --------------------------------------------------------------------------------------------
# Pixels


def _class_colours(label: int) -> tuple[np.ndarray, np.ndarray]:
    hue = (label * 0.6180339887) % 1.0  # golden-ratio steps: neighbouring labels differ a lot
    first = colorsys.hsv_to_rgb(hue, 0.55 + 0.4 * ((label * 7) % 5) / 4, 0.85)
    second = colorsys.hsv_to_rgb((hue + 0.45) % 1.0, 0.8, 0.35 + 0.5 * ((label * 3) % 4) / 3)
    return np.array(first, np.float32) * 255, np.array(second, np.float32) * 255


def _picture(rng: np.random.Generator, label: int, domain: int, width: int, height: int) -> np.ndarray:
    """A small ``(h, w, 3)`` float picture (at most 64 px a side) of a class in a domain's style."""
    scale = 64 / max(width, height)
    w, h = max(2, min(width, round(width * scale))), max(2, min(height, round(height * scale)))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs, ys = xs / max(w - 1, 1), ys / max(h - 1, 1)
    first, second = _class_colours(label)
    angle = np.deg2rad((label * 37) % 180 + rng.normal(0, 8))
    frequency = 2.0 + label % 5 + rng.uniform(-0.3, 0.3)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * frequency * (xs * np.cos(angle) + ys * np.sin(angle)) + phase)
    cx, cy = rng.uniform(0.35, 0.65, size=2)
    rx, ry = rng.uniform(0.2, 0.4, size=2)
    inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
    if label % 3 == 1:  # boxes for a third of the classes, ellipses for the rest
        inside = np.maximum(np.abs(xs - cx) / rx, np.abs(ys - cy) / ry) ** 2
    mask = (inside <= 1.0).astype(np.float32)[..., None]
    stripes = np.where(wave[..., None] > 0, first, second) if domain == 1 else (
        first + (second - first) * (0.5 + 0.5 * wave[..., None]))
    if domain == 0:  # Art: the pattern over a textured canvas of the class colour
        canvas = first * 0.6 + 90 + rng.normal(0, 25, (h, w, 1)).astype(np.float32)
        picture = canvas * (1 - mask) + stripes * mask
        picture += rng.normal(0, 12, (h, w, 3)).astype(np.float32)
    elif domain == 1:  # Clipart: flat colours on white, hard edges
        picture = 255 * (1 - mask) + stripes * mask
    elif domain == 2:  # Product: a shaded object on white
        shade = 1.0 - 0.35 * np.clip(inside, 0, 1)[..., None]
        picture = 245 * (1 - mask) + stripes * shade * mask
    else:  # Real World: a random scene gradient, the object, sensor noise
        top, bottom = rng.uniform(40, 220, size=(2, 3)).astype(np.float32)
        background = top + (bottom - top) * ys[..., None]
        picture = background * (1 - mask) + stripes * mask
        picture += rng.normal(0, 10, (h, w, 3)).astype(np.float32)
    return picture


def _render(rng: np.random.Generator, label: int, domain: int, size: tuple[int, int],
            noise: int = 0) -> Image.Image:
    width, height = size
    small = np.clip(_picture(rng, label, domain, width, height), 0, 255).astype(np.uint8)
    resample = Image.Resampling.NEAREST if domain == 1 else Image.Resampling.BILINEAR
    image = Image.fromarray(small).resize((width, height), resample)
    if noise:
        pixels = np.asarray(image, np.int16) + rng.integers(-noise, noise + 1, (height, width, 1), dtype=np.int16)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image


def _ordinary_size(rng: np.random.Generator, domain: int) -> tuple[int, int]:
    low = (80, 40, 120, 120)[domain]
    long_side = int(rng.integers(low, 301))
    # Product photos are mostly square; the other domains take any common aspect ratio.
    aspects = (1.0, 1.0, 1.0, 4 / 3) if domain == 2 else (1.0, 1.0, 4 / 3, 3 / 2, 16 / 9, 1.25)
    aspect = float(rng.choice(aspects))
    short_side = max(40, round(long_side / aspect))
    return (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)


def _write_odd(path: Path, rng: np.random.Generator, label: int, domain: int, odd: OddImage) -> None:
    if odd.kind == "huge":
        _render(rng, label, domain, odd.size, noise=12).save(path, "JPEG", quality=92)
        return
    if odd.kind.startswith("exif"):
        shown = _render(rng, label, domain, odd.size)
        band = round(0.15 * odd.size[1])
        shown.paste((230, 20, 20), (0, 0, odd.size[0], band))
        orientation = int(odd.kind[4:])
        # exif_transpose turns orientation 6 by ROTATE_270 and 8 by ROTATE_90: store the inverse.
        stored = shown.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
        exif = Image.Exif()
        exif[_ORIENTATION] = orientation
        stored.save(path, "JPEG", quality=90, exif=exif.tobytes())
        return
    image = _render(rng, label, domain, odd.size)
    if odd.mode == "RGBA":
        alpha = np.where(np.asarray(image).min(axis=2) > 250, 0, 255).astype(np.uint8)  # white -> transparent
        image = image.copy()
        image.putalpha(Image.fromarray(alpha))
    elif odd.mode != "RGB":
        image = image.convert(odd.mode)
    image.save(path, odd.fmt, **({"quality": 90} if odd.fmt == "JPEG" else {}))


def _write_class(folder: str, seed: int, domain: int, items: list[tuple[str, int]],
                 odd: dict[str, OddImage]) -> int:
    """Write one class folder's images (``items``: path relative to the archive folder, label)."""
    root = Path(folder)
    for relative, label in items:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = _rng(seed, relative)
        if relative in odd:
            _write_odd(path, rng, label, domain, odd[relative])
        else:
            _render(rng, label, domain, _ordinary_size(rng, domain)).save(path, "JPEG", quality=90)
    return len(items)


# --------------------------------------------------------------------------------------------
# The replica


def _plan(domains: Sequence[str] | None, per_class: int | None) -> dict[str, list[tuple[str, int]]]:
    names = OFFICE_HOME_DOMAINS if domains is None else tuple(dict.fromkeys(
        _canonical(domain) for domain in domains))
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    plan = {}
    for name in names:
        items = office_home_list(name)
        if per_class is not None:
            taken: dict[int, int] = {}
            kept = []
            for path, label in items:
                if taken.get(label, 0) < per_class:
                    taken[label] = taken.get(label, 0) + 1
                    kept.append((path, label))
            items = kept
        plan[name] = items
    return plan


def _canonical(domain: str) -> str:
    name = canonical_office_home_name(domain)
    if name is None:
        raise ValueError(f"unknown Office-Home domain {domain!r}; domains: {', '.join(OFFICE_HOME_DOMAINS)}")
    return name


def _read_marker(root: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _remove_stale_temporaries(root: Path) -> None:
    # A generation killed half-way leaves its temporary folder; its pid is in the name.
    for folder in root.parent.glob(f".{root.name}.tmp-*"):
        pid = folder.name.rsplit("-", 2)[-2]
        alive = pid.isdigit()
        if alive:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                alive = False
            except PermissionError:
                pass
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)


def make_officehome_replica(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    domains: Sequence[str] | None = None,
    per_class: int | None = None,
    workers: int | None = None,
) -> Path:
    """Write (or find) an Office-Home replica under ``root`` (see the module docstring).

    Args:
        root: The folder to hold ``OfficeHomeDataset_10072016/``; pass it as ``--data.root``.
            It must not exist, or be empty, or hold a replica (which is reused if complete with
            the same arguments, else replaced); any other content is refused, never deleted.
        seed: Seed of every pixel and of which files are odd.
        domains: Only these domains (any spelling); None: all four. A tree with fewer than four
            Office-Home domains is refused by :class:`~datamodules.tree.DomainTree` (it wants
            all four), so subsets for tests usually keep every domain and cut ``per_class``.
        per_class: At most this many images per class and domain (the first ones listed, which
            include the odd images); None: all of them.
        workers: Processes generating images; None: one per CPU core (one for small subsets).

    Returns:
        ``root``.

    Raises:
        ValueError: An unknown domain, ``per_class`` below 1, or a ``root`` holding something else.
    """
    root = Path(root).expanduser().resolve()
    plan = _plan(domains, per_class)
    settings = {"version": VERSION, "seed": seed, "domains": list(plan),
                "per_class": per_class}
    marker = _read_marker(root)
    if marker is not None and {key: marker.get(key) for key in settings} == settings:
        return root
    if root.exists() and marker is None and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root} exists and is not an Office-Home replica ({MARKER} missing); "
                         "choose an empty or new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    started = time.perf_counter()
    temporary = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    archive = temporary / ARCHIVE_FOLDER
    odd = {path: image for path, image in odd_image_paths(seed).items() if image.domain in plan}
    try:
        jobs = []
        for domain, items in plan.items():
            index = OFFICE_HOME_DOMAINS.index(domain)
            by_class: dict[int, list[tuple[str, int]]] = {}
            for path, label in items:
                by_class.setdefault(label, []).append((path, label))
            jobs += [(str(archive), seed, index, chunk, odd) for chunk in by_class.values()]
        total = sum(len(items) for items in plan.values())
        processes = workers if workers is not None else (os.cpu_count() or 1) if total > 2000 else 1
        if processes > 1:
            with ProcessPoolExecutor(max_workers=processes) as pool:
                written = sum(pool.map(_write_class, *zip(*jobs), chunksize=4))
        else:
            written = sum(_write_class(*job) for job in jobs)
        counts = {domain: len(items) for domain, items in plan.items()}
        assert written == total, (written, total)
        info = {**settings, "counts": counts, "images": total,
                "odd": {path: dataclasses.asdict(image) for path, image in odd.items()},
                "seconds": round(time.perf_counter() - started, 1)}
        (temporary / MARKER).write_text(json.dumps(info, indent=1) + "\n")
        if root.exists():
            # An empty folder, or a replica made with other arguments (its marker says so): replace it.
            old = root.parent / f".{root.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                root.rename(old)
            except FileNotFoundError:
                old = None  # another process just moved it
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        try:
            temporary.rename(root)
        except OSError:
            # Another process finished the same replica first: keep its copy.
            marker = _read_marker(root)
            if marker is None or {key: marker.get(key) for key in settings} != settings:
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(temporary)
    return root
