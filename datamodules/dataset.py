"""A map-style dataset over tree samples, yielding ``(image, label, domain)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.cache import ResizedImageCache
from datamodules.loading import decode_center_crop, decode_image, resized_center_crop
from datamodules.tree import Sample

__all__ = ["ImageDataset"]


class ImageDataset(Dataset[tuple[Tensor, int, int]]):
    """Images of a :class:`~datamodules.tree.DomainTree`, decoded fast and transformed.

    Args:
        samples: The samples to serve, in order.
        transform: PIL RGB image -> tensor (see :mod:`datamodules.transforms`).
        short_side: Short side to decode to before the transform (draft-mode JPEG decoding).
        cache: Optional cache of resized images with the same short side.
        crop: Evaluation fast path. None: ``transform`` gets the whole image resized to short side
            ``short_side`` (training: it takes random crops of it). An int: ``transform`` gets the
            centre ``crop x crop`` square of that image, which is what ``Resize(short_side)`` +
            ``CenterCrop(crop)`` give, but only the square is resampled
            (:func:`~datamodules.loading.decode_center_crop`; with a cache it is cut from the
            cached image); ``transform`` then only has to convert it, e.g.
            :class:`~datamodules.transforms.ToNormalizedTensor`.

    Item ``i`` is ``(image [3, H, W] float, label, domain index)``. A file that cannot be decoded
    raises :class:`~datamodules.loading.CorruptImageError` naming its path (fail fast).

    Raises:
        ValueError: The cache has another short side, or ``crop`` is not in ``1..short_side``.
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable[[Image.Image], Tensor], short_side: int,
                 cache: ResizedImageCache | None = None, crop: int | None = None) -> None:
        if cache is not None and cache.short_side != short_side:
            raise ValueError(f"cache short side {cache.short_side} != {short_side}")
        if crop is not None and not 0 < crop <= short_side:
            raise ValueError(f"crop {crop} must be positive and at most the short side {short_side}")
        self.samples = list(samples)
        self.transform = transform
        self.short_side = short_side
        self.cache = cache
        self.crop = crop

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        sample = self.samples[index]
        if self.cache is not None:
            image = self.cache.load(sample.path)
            if self.crop is not None:
                image = resized_center_crop(image, image.size, self.crop)  # a plain crop: already resized
        elif self.crop is not None:
            image = decode_center_crop(sample.path, self.short_side, self.crop)
        else:
            image = decode_image(sample.path, self.short_side)
        return self.transform(image), sample.label, sample.domain
