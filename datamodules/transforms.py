"""ImageNet transform presets at any image size (Section 4.1 of the paper; torchvision's recipe).

Training: random resized crop to ``image_size`` and a horizontal flip. Evaluation: resize the
short side to ``image_size * resize_ratio`` (256/224 by default) and take the centre
``image_size`` crop. Both end with ImageNet mean/std normalisation, which pretrained ResNets expect.
The loader (:mod:`datamodules.loading`) already hands the transforms an image whose short side is
:func:`resize_size`, so the evaluation ``Resize`` is then a no-op and the training crop works on a
small image instead of a 6500x4900 one.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "RESIZE_RATIO", "eval_transform", "resize_size", "train_transform"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: ImageNet's evaluation resize: short side 256 for a 224 crop.
RESIZE_RATIO = 256 / 224


def resize_size(image_size: int, resize_ratio: float = RESIZE_RATIO) -> int:
    """Short side the images are resized to before cropping ``image_size`` (256 for 224).

    Args:
        image_size: Side of the square crop fed to the network.
        resize_ratio: Short side / crop side (at least 1).

    Returns:
        The short side in pixels.
    """
    return max(image_size, round(image_size * resize_ratio))


def _to_normalized_tensor() -> list[v2.Transform]:
    return [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(image_size: int = 224, crop_scale: tuple[float, float] = (0.08, 1.0),
                    hflip: bool = True) -> v2.Compose:
    """Training preset: random resized crop, optional horizontal flip, normalisation.

    Args:
        image_size: Output side in pixels.
        crop_scale: Area range of the random crop, as a fraction of the image (ImageNet: 0.08-1).
        hflip: Flip horizontally with probability 1/2 (off for data where mirroring changes the
            class, such as digits).

    Returns:
        A transform from a PIL RGB image to a normalised float tensor ``[3, image_size, image_size]``.
    """
    steps: list[v2.Transform] = [v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _to_normalized_tensor())


def eval_transform(image_size: int = 224, resize_ratio: float = RESIZE_RATIO) -> v2.Compose:
    """Evaluation preset: resize the short side, centre crop, normalisation.

    Args:
        image_size: Output side in pixels.
        resize_ratio: Short side before cropping / ``image_size`` (ImageNet: 256/224).

    Returns:
        A transform from a PIL RGB image to a normalised float tensor ``[3, image_size, image_size]``.
    """
    return v2.Compose([v2.Resize(resize_size(image_size, resize_ratio), antialias=True),
                       v2.CenterCrop(image_size)] + _to_normalized_tensor())
