"""Digits typeset in the fonts matplotlib ships: the synthetic source of the demo's pretrained backbone.

The demo's stand-in for ImageNet (:mod:`dabin.models.pretrained`) must be a source that is none of
the embedded domains (:mod:`datamodules.embedded`: scikit-learn's handwritten digits drawn as Ink,
Neon, Photo and Sketch). These are printed digits, not handwriting: each image is one of the ten
digits typeset in a random one of matplotlib's text fonts (DejaVu Sans/Serif/Mono and their bold
and italic faces, STIX, Computer Modern), at a random size, position and rotation, in a random
colour over a random two-colour gradient with smooth clutter, up to two stray lines and a little
noise. No photograph, outline, glow or
hatching is used, so no embedded style is seen before adaptation; only the concept "digit" is
shared, as ImageNet shares object concepts with Office-Home.

Rendering is deterministic for a seed (and a FreeType version) and takes about 0.1 ms per image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from dabin.errors import DabinError

__all__ = ["FONT_FILES", "font_paths", "render_font_digits"]

#: matplotlib's fonts whose digits are ordinary glyphs (its symbol and fallback fonts are left out).
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf",
)
_SIZE = 32


def font_paths() -> list[Path]:
    """The files of :data:`FONT_FILES` in this matplotlib installation (those present)."""
    import matplotlib  # a dependency; imported here because only rendering needs it

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = [folder / name for name in FONT_FILES if (folder / name).is_file()]
    if not paths:
        raise DabinError(f"none of matplotlib's fonts ({', '.join(FONT_FILES[:2])}, ...) found under {folder}; "
                         "reinstall matplotlib")
    return paths


def _mask(digit: int, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> np.ndarray:
    """A 32x32 coverage mask in [0, 1] of ``digit``, placed at random and rotated."""
    canvas = Image.new("L", (2 * _SIZE, 2 * _SIZE), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    # Centre the glyph's ink box on the canvas centre, then shift it by a random offset.
    shift = rng.uniform(-5, 5, size=2)
    x = _SIZE - (left + right) / 2 + shift[0]
    y = _SIZE - (top + bottom) / 2 + shift[1]
    draw.text((x, y), str(digit), fill=255, font=font)
    canvas = canvas.rotate(float(rng.uniform(-20, 20)), Image.Resampling.BILINEAR)
    half = _SIZE // 2
    return np.asarray(canvas, np.float32)[half:half + _SIZE, half:half + _SIZE] / 255.0


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Smooth grey-level clutter of random amplitude and grain, so features do not rely on flat backgrounds."""
    grain = float(rng.uniform(1.0, 4.0))
    noise = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (_SIZE, _SIZE)).astype(np.float32), grain)
    noise /= noise.std() + 1e-6
    return (noise * rng.uniform(0, 30))[..., None]


def _lines(rng: np.random.Generator) -> np.ndarray:
    """Zero to two thin random strokes in random colours (distractors that are not digits)."""
    layer = Image.new("RGB", (_SIZE, _SIZE), (0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(0, 3))):
        points = [tuple(float(v) for v in rng.uniform(0, _SIZE, 2)) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(0, 120, 3)), width=int(rng.integers(1, 3)))
    return np.asarray(layer, np.float32) * rng.choice((-1.0, 1.0))


def render_font_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Render ``count`` random font digits.

    Args:
        count: Number of images; the labels cycle through 0-9, so the classes are balanced.
        seed: Controls every random choice.

    Returns:
        ``(images, labels)``: uint8 ``(count, 32, 32, 3)`` RGB images and int64 ``(count,)`` digits.
    """
    rng = np.random.default_rng(seed)
    paths = font_paths()
    fonts: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    images = np.empty((count, _SIZE, _SIZE, 3), np.uint8)
    labels = np.arange(count, dtype=np.int64) % 10
    ramp = np.linspace(0.0, 1.0, _SIZE, dtype=np.float32)
    for index in range(count):
        key = (int(rng.integers(len(paths))), int(rng.integers(18, 35)))
        if key not in fonts:
            fonts[key] = ImageFont.truetype(str(paths[key[0]]), key[1])
        mask = _mask(int(labels[index]), fonts[key], rng)[..., None]
        # Background: a gradient between two random colours in a random direction; the digit's
        # colour is drawn until it differs enough from both, so every digit stays legible.
        start, end = rng.uniform(0, 255, (2, 3)).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        along = np.clip(0.5 + (np.cos(angle) * (ramp[None, :] - 0.5) + np.sin(angle) * (ramp[:, None] - 0.5)), 0, 1)
        background = start + (end - start) * along[..., None]
        ink = rng.uniform(0, 255, 3).astype(np.float32)
        for _ in range(20):
            if min(np.abs(ink - start).sum(), np.abs(ink - end).sum()) > 150:
                break
            ink = rng.uniform(0, 255, 3).astype(np.float32)
        background = background + _texture(rng) + _lines(rng)
        pixels = background * (1 - mask) + ink * mask + rng.normal(0, 6, (_SIZE, _SIZE, 1)).astype(np.float32)
        images[index] = np.clip(pixels, 0, 255).astype(np.uint8)
    return images, labels
