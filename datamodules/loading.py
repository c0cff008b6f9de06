"""Fast image decoding: JPEGs are decoded at reduced scale (PIL draft mode) before resizing.

Office-Home images reach 6500x4900 pixels, yet the network sees 224x224. libjpeg can decode at
1/2, 1/4 or 1/8 scale directly from the DCT coefficients, skipping most of the inverse DCT, colour
conversion and resizing (not the entropy decoding: every byte is still read); PIL exposes this as
``Image.draft``. We ask for the smallest scale that still covers the final size and then resize
with the same bilinear (antialiased) filter torchvision's ``Resize`` uses, so the output has the
same size as ``Resize(short_side)`` and pixels that differ by less than one grey level on average
(0.3-0.5 over a dataset, at most 0.7 for one image, 99th percentile 3).

``experiments/bench_loader.py`` measures this and the speed. Single-process evaluation loading is
2.7-3.0x as fast as torchvision's ``ImageFolder`` + ``Resize(256)`` for 1600x1200 JPEGs of
230 KiB and 2.2x for 400 KiB ones (at that size the entropy decoding both must do dominates), 6.8x
for 4000x3000 ones; with the resized-image cache warm (:mod:`datamodules.cache`) it is 9-11x.

A file that cannot be decoded raises :class:`CorruptImageError` naming its path: training fails
fast rather than skipping images, because a skipped image silently changes the dataset. Run
``dabin data ROOT`` first to find every broken file at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from dabin.errors import DabinError

__all__ = ["CorruptImageError", "decode_image", "resized_size", "verify_image"]

# PIL reports broken files with several exception types depending on the format and the damage.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class CorruptImageError(DabinError):
    """An image file that cannot be decoded; the message names its path."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker re-raises our error in the main process as
        # type(error)("Caught ... Original Traceback ... CorruptImageError: <message>"); keep only
        # the original one-line message so the CLI still prints a single line naming the file.
        lines = message.strip().splitlines()
        if len(lines) > 1 and lines[-1].startswith(f"{__name__}.CorruptImageError: "):
            message = lines[-1].split(": ", 1)[1]
        super().__init__(message)


def resized_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """Size with the short side set to ``short_side`` and the aspect ratio kept, as torchvision.

    torchvision's ``Resize(int)`` truncates the long side (``int(short * long / short_old)``);
    doing the same keeps our output the same size as the reference pipeline's.

    Args:
        size: ``(width, height)``.
        short_side: Requested short side.

    Returns:
        ``(width, height)`` after resizing.
    """
    width, height = size
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


def decode_image(path: str | os.PathLike[str], short_side: int | None = None) -> Image.Image:
    """Decode an image as RGB, resized so its short side is ``short_side``.

    Args:
        path: Image file.
        short_side: Short side of the result; None keeps the original size. Images are resized
            up as well as down so that every output has the same short side.

    Returns:
        A loaded RGB image.

    Raises:
        CorruptImageError: The file is corrupt, truncated or not an image; names the path.
    """
    try:
        with Image.open(path) as image:
            target = None if short_side is None else resized_size(image.size, short_side)
            if target is not None and min(image.size) > short_side:
                # JPEG only (a no-op elsewhere): decode at 1/2..1/8 scale, still >= target.
                image.draft("RGB", target)
            rgb = image.convert("RGB")
    except _DECODE_ERRORS as error:
        raise CorruptImageError(f"cannot read image {path}: {error}") from None
    if target is None or rgb.size == target:
        return rgb
    # reducing_gap: box-reduce first where the image is still much larger than the target,
    # then bilinear-resample the rest (PIL's documented speed/quality trade-off; 3 is lossless-looking).
    return rgb.resize(target, Image.Resampling.BILINEAR, reducing_gap=3.0)


def verify_image(path: str | os.PathLike[str]) -> str | None:
    """Check that an image decodes completely, cheaply.

    JPEGs are decoded at 1/8 scale (every byte is still read, so truncation is found); other
    formats are decoded fully.

    Args:
        path: Image file.

    Returns:
        None if the image is fine, else a one-line reason.
    """
    try:
        with Image.open(Path(path)) as image:
            image.draft("RGB", (1, 1))
            image.load()
    except _DECODE_ERRORS as error:
        return str(error) or type(error).__name__
    return None
