"""A map-style dataset over tree samples, yielding ``(image, label, domain)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.cache import ResizedImageCache
from datamodules.loading import decode_image
from datamodules.tree import Sample

__all__ = ["ImageDataset"]


class ImageDataset(Dataset[tuple[Tensor, int, int]]):
    """Images of a :class:`~datamodules.tree.DomainTree`, decoded fast and transformed.

    Args:
        samples: The samples to serve, in order.
        transform: PIL RGB image -> tensor (see :mod:`datamodules.transforms`).
        short_side: Short side to decode to before the transform (draft-mode JPEG decoding).
        cache: Optional cache of resized images with the same short side.

    Item ``i`` is ``(image [3, H, W] float, label, domain index)``. A file that cannot be decoded
    raises :class:`~datamodules.loading.CorruptImageError` naming its path (fail fast).
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable[[Image.Image], Tensor], short_side: int,
                 cache: ResizedImageCache | None = None) -> None:
        if cache is not None and cache.short_side != short_side:
            raise ValueError(f"cache short side {cache.short_side} != {short_side}")
        self.samples = list(samples)
        self.transform = transform
        self.short_side = short_side
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        sample = self.samples[index]
        if self.cache is not None:
            image = self.cache.load(sample.path)
        else:
            image = decode_image(sample.path, self.short_side)
        return self.transform(image), sample.label, sample.domain
