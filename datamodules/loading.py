"""Fast image decoding: JPEGs are decoded at reduced scale (PIL draft mode) before resizing.

Office-Home images reach 6500x4900 pixels, yet the network sees 224x224. libjpeg can decode at
1/2, 1/4 or 1/8 scale directly from the DCT coefficients, skipping most of the inverse DCT, colour
conversion and resizing (not the entropy decoding: every byte is still read); PIL exposes this as
``Image.draft``. We ask for the smallest scale that still covers the final size and then resize
with the same bilinear (antialiased) filter torchvision's ``Resize`` uses, so the output has the
same size as ``Resize(short_side)`` and pixels that differ by less than one grey level on average
(0.3-0.5 over a dataset, at most 0.7 for one image, 99th percentile 3). For evaluation,
:func:`decode_center_crop` resamples only the centre crop that ``CenterCrop`` would keep, from
the same decoded pixels with the same weights, so its output is that of :func:`decode_image`
followed by ``CenterCrop`` (to a grey level or two for a few pixels), without resizing or copying
the discarded border.

``experiments/bench_loader.py`` measures this and the speed. Single-process evaluation loading
(:func:`decode_center_crop` and :class:`~datamodules.transforms.ToNormalizedTensor`) is about 3x
as fast as torchvision's ``ImageFolder`` + ``Resize(256)`` + ``CenterCrop(224)`` for 1600x1200
JPEGs of 230 KiB (2.96-3.80x, median 3.1x, over six runs on a busy 2-core machine; resizing the
whole image, then the v2 transforms: 2.52-3.29x in the same runs), 2.6x for 400 KiB ones (at
that size the entropy decoding both must do dominates: about 2.3 ms of ours' 3.5 ms at 230 KiB
already) and 7.5x for 4000x3000 ones; with the resized-image cache warm
(:mod:`datamodules.cache`) it is 12-21x.

Photos with an EXIF orientation tag (a camera held sideways) are turned upright, as an image
viewer shows them.

A file that cannot be decoded raises :class:`CorruptImageError` naming its path: training fails
fast rather than skipping images, because a skipped image silently changes the dataset. Run
``dabin data ROOT`` first to find every broken file at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from dabin.errors import DabinError

__all__ = [
    "CorruptImageError",
    "center_crop_box",
    "decode_center_crop",
    "decode_image",
    "resized_center_crop",
    "resized_size",
    "verify_image",
]

#: The EXIF orientation tag and the transpose that shows each value upright (as ImageOps.exif_transpose).
_EXIF_ORIENTATION = 0x0112
_EXIF_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

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


def center_crop_box(size: tuple[int, int], crop: int) -> tuple[int, int, int, int]:
    """Box of torchvision's ``CenterCrop(crop)`` in an image of ``size``, rounded as torchvision.

    torchvision rounds the offsets with Python's ``round`` (half to even: a 117-pixel margin puts
    58 pixels before the crop, not 59); doing the same keeps our crops on the same pixels.

    Args:
        size: ``(width, height)``, both at least ``crop``.
        crop: Side of the square crop.

    Returns:
        ``(left, upper, right, lower)``, as ``Image.crop`` takes it.

    Raises:
        ValueError: ``crop`` is not positive or exceeds a side (``CenterCrop`` would pad).
    """
    width, height = size
    if not 0 < crop <= min(width, height):
        raise ValueError(f"cannot take a {crop}x{crop} centre crop of a {width}x{height} image")
    left = int(round((width - crop) / 2.0))
    top = int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


def resized_center_crop(image: Image.Image, resized: tuple[int, int], crop: int,
                        extent: tuple[float, float] | None = None) -> Image.Image:
    """``CenterCrop(crop)`` of ``image`` resized to ``resized``, resampling only the crop.

    The crop box is mapped back into ``image``'s coordinates and only that box is resampled to
    ``crop x crop``. PIL's resampling places output pixel ``i`` at source coordinate
    ``box_left + (i + 0.5) * scale`` and takes its filter taps from outside the box where the
    image has them, so with the same scale as the full resize every output pixel is computed from
    the same source pixels with the same weights as in ``resize`` followed by a crop; only the
    ``reducing_gap`` pre-reduction (large downscales only) can be aligned differently. For an
    image that already has the size ``resized`` (a cached copy) it is a plain crop.

    Args:
        image: RGB image covering the whole picture.
        resized: ``(width, height)`` the whole image would be resized to, e.g.
            :func:`resized_size` of the original size.
        crop: Side of the square crop, at most the short side of ``resized``.
        extent: ``(width, height)`` in ``image``'s pixels that the picture spans; None: the whole
            image. A JPEG decoded at 1/s scale spans ``original / s`` pixels but libjpeg rounds
            its size up, so the last row or column is partly padding.

    Returns:
        A new ``crop x crop`` image.

    Raises:
        ValueError: ``crop`` is not positive or exceeds the short side of ``resized``.
    """
    left, top, right, bottom = center_crop_box(resized, crop)
    span_x, span_y = extent if extent is not None else image.size
    if (span_x, span_y) == image.size == resized:
        return image.crop((left, top, right, bottom))
    scale_x, scale_y = span_x / resized[0], span_y / resized[1]
    box = (left * scale_x, top * scale_y, right * scale_x, bottom * scale_y)
    # Same filter and reducing_gap as decode_image's full resize, so both paths agree.
    return image.resize((crop, crop), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)


def _decode(path: str | os.PathLike[str], short_side: int | None, crop: int | None) -> Image.Image:
    """Decode for :func:`decode_image` (``crop`` None) or :func:`decode_center_crop`.

    Args:
        path: Image file.
        short_side: Short side of the resized image; None keeps the original size.
        crop: Side of the centre crop to return (needs ``short_side``); None: the whole image.

    Returns:
        A new, loaded RGB image.

    Raises:
        CorruptImageError: The file cannot be decoded; names the path.
    """
    try:
        with Image.open(path) as image:
            target = None if short_side is None else resized_size(image.size, short_side)
            extent = image.size
            if target is not None and min(image.size) > short_side:
                # JPEG only (None elsewhere): decode at 1/2..1/8 scale, still >= target. The box
                # it returns is the picture's extent at that scale (the size is rounded up).
                drafted = image.draft("RGB", target)
                if drafted is not None:
                    extent = drafted[1][2:]
            image.load()
            # Already RGB (nearly every photo): no conversion copy. The opened image itself must
            # not be returned, though: leaving the with block closes it, which frees its pixels.
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            transpose = _EXIF_TRANSPOSE.get(image.getexif().get(_EXIF_ORIENTATION, 1))
            if transpose is not None:
                # A camera's rotated photo: show it upright, as a viewer does (torchvision's loader
                # does not). Only the picture's extent is turned; the short side stays the same.
                rgb = rgb.crop((0, 0, round(extent[0]), round(extent[1]))).transpose(transpose)
                extent = rgb.size
                target = None if short_side is None else resized_size(rgb.size, short_side)
            if crop is not None:
                assert target is not None  # decode_center_crop requires short_side
                return resized_center_crop(rgb, target, crop, extent)
            if target is None or (rgb.size == target and extent == target):
                return rgb.copy() if rgb is image else rgb
            # reducing_gap: box-reduce first where the image is still much larger than the target,
            # then bilinear-resample the rest (PIL's documented speed/quality trade-off; 3 is
            # lossless-looking).
            return rgb.resize(target, Image.Resampling.BILINEAR, box=(0, 0, *extent), reducing_gap=3.0)
    except _DECODE_ERRORS as error:
        raise CorruptImageError(f"cannot read image {path}: {error}") from None


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
    return _decode(path, short_side, None)


def decode_center_crop(path: str | os.PathLike[str], short_side: int, crop: int) -> Image.Image:
    """Decode the centre ``crop x crop`` square of an image resized to short side ``short_side``.

    The evaluation fast path: the result is that of :func:`decode_image` followed by
    ``CenterCrop(crop)`` (i.e. of ``Resize(short_side)`` + ``CenterCrop(crop)``, the evaluation
    transform), but only the crop is resampled (:func:`resized_center_crop`), from the same
    draft-mode decode; the discarded border is never resized or copied.

    Args:
        path: Image file.
        short_side: Short side of the resized image the crop is taken from.
        crop: Side of the square crop, at most ``short_side``.

    Returns:
        A loaded ``crop x crop`` RGB image.

    Raises:
        ValueError: ``crop`` is not positive or exceeds ``short_side``.
        CorruptImageError: The file is corrupt, truncated or not an image; names the path.
    """
    if not 0 < crop <= short_side:
        # Checked before decoding, so that a bad argument is never reported as a bad file.
        raise ValueError(f"crop {crop} must be positive and at most the short side {short_side}")
    return _decode(path, short_side, crop)


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
