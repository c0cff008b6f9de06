"""An offline multi-domain dataset built from what installed packages carry: digits in four styles.

scikit-learn ships 1,797 handwritten digits (8x8, 10 classes) and two photographs. We split the
digits into four disjoint, class-stratified quarters (about 450 each, different writers' samples in
every domain, as in a real multi-domain dataset) and render each quarter at 32x32 RGB in one style:

- **Ink** (``In``): dark ink on cream paper with grain.
- **Neon** (``Ne``): a glowing, saturated stroke on a near-black background (inverted polarity).
- **Photo** (``Ph``): a coloured stroke over a random crop of one of the two photographs.
- **Sketch** (``Sk``): a noisy, low-contrast pencil outline over hatching on grey.

Each glyph is upsampled smoothly and placed with random size, position, rotation and stroke
thickness, so a model cannot read the 8x8 grid. The dataset is deterministic from its seed,
generated in about a second and stored as ``<Domain>/<digit>/<index>.png`` under
``<cache>/embedded-digits-v1-seed<seed>/`` (default cache: ``$DABIN_CACHE`` or ``~/.cache/dabin``),
written to a temporary folder and renamed into place, so a reader never sees half a dataset.
:class:`~datamodules.kfold.KFoldDataModule` and :class:`~datamodules.transfer.TransferDataModule`
serve it when ``root`` is None or ``"embedded"``.

The domain gap is large. Source-only accuracy (%) of ``resnet18(norm="bn", small_input=True,
width=16)`` trained from scratch on one domain's 80% split (500 SGD steps) and tested on every
domain's 20% split (``experiments/embedded_gap.py``, seed 0; rows: source, columns: target; about
90 test images per domain, so each cell is good to about 5 points; chance is 10%)::

    source -> target     Ink    Neon   Photo  Sketch
    Ink                 95.6     6.6    27.8    10.0
    Neon                18.9    93.4    36.7     7.8
    Photo               77.8    51.6    70.0     8.9
    Sketch              11.1     9.9    11.1    84.4

In-domain 86% on average, across domains 23%. Sketch neither reaches nor is reached by the
others (chance level); Photo, the hardest to learn with 360 images, transfers best, even to Ink.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from datamodules.cache import default_cache_dir

__all__ = ["EMBEDDED_DOMAINS", "EMBEDDED_IMAGE_SIZE", "embedded_root", "is_embedded", "render_embedded"]

#: Domain names (codes In, Ne, Ph, Sk), alphabetical as the tree lists them.
EMBEDDED_DOMAINS: tuple[str, ...] = ("Ink", "Neon", "Photo", "Sketch")

#: Side of every image.
EMBEDDED_IMAGE_SIZE = 32

#: Bump when the rendering changes, so old caches are not reused.
_VERSION = 1

_SIZE = EMBEDDED_IMAGE_SIZE


def is_embedded(root: str | os.PathLike[str] | None) -> bool:
    """Whether a ``root`` argument asks for the embedded dataset (None or ``"embedded"``)."""
    return root is None or str(root) == "embedded"


def _glyph(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 32x32 stroke mask in [0, 1] from an 8x8 digit, with random size, place, angle, thickness."""
    side = int(rng.integers(18, 27))
    image = Image.fromarray((digit / 16.0).astype(np.float32))
    big = np.asarray(image.resize((side, side), Image.Resampling.BICUBIC))
    # A lower threshold gives a thicker stroke; the ramp keeps edges soft (anti-aliased).
    threshold = rng.uniform(0.2, 0.5)
    mask = np.clip((big - threshold) / 0.2, 0.0, 1.0)
    canvas = np.zeros((_SIZE, _SIZE), np.float32)
    top, left = (int(v) for v in rng.integers(0, _SIZE - side + 1, size=2))
    canvas[top:top + side, left:left + side] = mask
    rotated = Image.fromarray(canvas).rotate(float(rng.uniform(-15, 15)), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(rotated), 0.0, 1.0)


def _blur(array: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(array.astype(np.float32), sigma)


def _smooth_noise(rng: np.random.Generator, scale: float, radius: float) -> np.ndarray:
    return _blur(rng.normal(0.0, scale, (_SIZE, _SIZE)), radius)[..., None]


def _ink(mask: np.ndarray, rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    paper = np.array([rng.uniform(232, 250), rng.uniform(225, 242), rng.uniform(200, 225)])
    background = paper + _smooth_noise(rng, 40, 3) + rng.normal(0, 4, (_SIZE, _SIZE, 1))
    ink = np.array([rng.uniform(15, 55), rng.uniform(15, 50), rng.uniform(50, 110)])
    alpha = (mask * rng.uniform(0.8, 1.0))[..., None]
    return background * (1 - alpha) + ink * alpha


def _neon(mask: np.ndarray, rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    hue = rng.choice(np.array([[255, 40, 200], [40, 240, 255], [120, 255, 40], [255, 230, 40], [255, 120, 20]]))
    gradient = np.linspace(rng.uniform(0, 25), rng.uniform(0, 25), _SIZE)[:, None, None]
    background = gradient * np.array([0.6, 0.3, 1.0]) + rng.normal(0, 2, (_SIZE, _SIZE, 1))
    glow = np.clip(_blur(mask, 2.0) * 1.5, 0, 1)[..., None]
    core = mask[..., None] ** 2
    color = background * (1 - glow) + hue * glow
    return color * (1 - core * 0.5) + 255 * core * 0.5  # white-hot centre of the tube


def _photo(mask: np.ndarray, rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    photo = photos[int(rng.integers(len(photos)))]
    crop = int(rng.integers(48, 160))
    top = int(rng.integers(0, photo.shape[0] - crop))
    left = int(rng.integers(0, photo.shape[1] - crop))
    patch = Image.fromarray(photo[top:top + crop, left:left + crop]).resize((_SIZE, _SIZE), Image.Resampling.BILINEAR)
    background = np.asarray(patch, np.float32)
    # Pick the stroke's brightness against the patch, so the digit stays readable.
    bright = background.mean() < 110
    color = rng.uniform(190, 255, 3) if bright else rng.uniform(0, 70, 3)
    alpha = mask[..., None]
    return background * (1 - alpha) + color * alpha


def _sketch(mask: np.ndarray, rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    grey = rng.uniform(120, 170)
    rows = np.arange(_SIZE)[:, None] + np.arange(_SIZE)[None, :] * rng.uniform(-1.5, 1.5)
    hatch = (np.sin(rows * rng.uniform(0.8, 1.6)) > 0.7) * rng.uniform(4, 10)
    # The outline (stroke minus its eroded core) is what a pencil sketch draws.
    eroded = ndimage.grey_erosion(mask, size=3)
    outline = np.clip(mask - 0.7 * eroded, 0, 1)
    contrast = rng.uniform(35, 60)
    value = grey - hatch - contrast * outline + rng.normal(0, 10, (_SIZE, _SIZE))
    return np.repeat(value[..., None], 3, axis=2) + rng.normal(0, 3, (1, 1, 3))


_STYLES = {"Ink": _ink, "Neon": _neon, "Photo": _photo, "Sketch": _sketch}


def render_embedded(folder: str | os.PathLike[str], seed: int = 0) -> dict[str, int]:
    """Render the dataset into ``folder`` (created; must not exist yet).

    Args:
        folder: Destination, laid out as ``<Domain>/<digit>/<index>.png``.
        seed: Controls the domain assignment and every random choice of the rendering.

    Returns:
        Images per domain.
    """
    from sklearn.datasets import load_digits, load_sample_images  # only needed when rendering

    digits = load_digits()
    photos = [np.asarray(image) for image in load_sample_images().images]
    rng = np.random.default_rng(seed)
    # Disjoint, class-stratified quarters: deal each class's shuffled digits round-robin.
    domain_of = np.empty(len(digits.target), int)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(digits.target == digit))
        domain_of[members] = (np.arange(len(members)) + digit) % len(EMBEDDED_DOMAINS)
    counts = dict.fromkeys(EMBEDDED_DOMAINS, 0)
    root = Path(folder)
    for index, (digit_image, digit) in enumerate(zip(digits.images, digits.target)):
        domain = EMBEDDED_DOMAINS[domain_of[index]]
        mask = _glyph(digit_image, rng)
        pixels = np.clip(_STYLES[domain](mask, rng, photos), 0, 255).astype(np.uint8)
        target = root / domain / str(digit) / f"{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target, compress_level=1)
        counts[domain] += 1
    (root / "README.txt").write_text(
        f"dabin embedded digits v{_VERSION}, seed {seed}: scikit-learn's load_digits rendered in four styles "
        f"({', '.join(EMBEDDED_DOMAINS)}); see datamodules/embedded.py.\n")
    return counts


def embedded_root(cache_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> Path:
    """Folder of the embedded dataset, rendering it first if it is not cached yet.

    Args:
        cache_dir: Cache folder; None means :func:`~datamodules.cache.default_cache_dir`.
        seed: Dataset seed (a different seed gives a different dataset, not a different split).

    Returns:
        The dataset root (``<Domain>/<digit>/<index>.png``).
    """
    parent = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = parent / f"embedded-digits-v{_VERSION}-seed{seed}"
    if final.is_dir():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    # Render beside the destination and rename: the rename is atomic, so a crash leaves only a
    # hidden temporary folder and a concurrent renderer's result is kept as it is.
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=parent))
    try:
        render_embedded(scratch / "data", seed)
        try:
            os.rename(scratch / "data", final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final
