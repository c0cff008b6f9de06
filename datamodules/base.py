"""What the k-fold and transfer data modules share: finding the data, transforms, loaders.

The tree is scanned in ``__init__`` (file names only, well under a second for Office-Home) so
that ``num_classes``, ``domains``, ``class_names`` and ``eval_names`` exist as soon as the module
is built: LightningCLI links ``data.num_classes`` to ``model.num_classes`` at instantiation,
before any ``setup``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch.distributed
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, RandomSampler, Sampler

from datamodules.cache import ResizedImageCache
from datamodules.dataset import ImageDataset
from datamodules.digits import digits_tree, is_torchvision_digits_root
from datamodules.embedded import embedded_root, is_embedded
from datamodules.splits import Split, domain_split
from datamodules.transforms import RESIZE_RATIO, ToNormalizedTensor, eval_transform, resize_size, train_transform
from datamodules.tree import DomainTree, Sample

__all__ = ["DomainDataModule"]


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() and \
        torch.distributed.get_world_size() > 1


class DomainDataModule(pl.LightningDataModule):
    """Base of the data modules over a :class:`~datamodules.tree.DomainTree`.

    Args:
        root: Dataset folder (``<Domain>/<Class>/<image>``, or the folder holding
            ``OfficeHomeDataset_10072016/``); None or ``"embedded"`` for the embedded digits; a
            torchvision root holding MNIST / USPS / SVHN in torchvision's layouts for the digits
            benchmark (checked against the published checksums and exported once,
            :func:`datamodules.digits.digits_tree`; exported to ``cache_dir`` or dabin's cache).
        image_size: Side of the square crops fed to the network.
        batch_size: Images per batch (per domain for the transfer module's training batches).
        num_workers: DataLoader worker processes.
        seed: Split seed (and seed of the training samplers' shuffling).
        cache_dir: For an image tree: cache resized images here (off when None). For the
            embedded dataset: where it is rendered (None: ``$DABIN_CACHE`` or ``~/.cache/dabin``).
        image_lists: Optional image-list file or folder (``<Domain>/<Class>/<file> <label>``
            lines relative to ``root``); only listed images are used.
        resize_ratio: Evaluation short side / ``image_size``; None: 256/224 for image trees, 1 for
            the embedded dataset (its 32-px digits fill the frame; a centre crop would cut them).
        crop_scale: Smallest area fraction of the training random resized crop; None: 0.08
            (ImageNet) for image trees, 0.6 for the embedded digits.
        hflip: Random horizontal flips in training; None: on for image trees, off for the
            embedded digits (a mirrored digit is another glyph).
    """

    #: Names of the test loaders, in order (set in ``__init__`` by every subclass); the training
    #: modules name their metrics after them.
    eval_names: list[str]
    #: Names of the validation loaders, in order.
    val_names: list[str]

    def __init__(
        self,
        root: str | None = None,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        cache_dir: str | None = None,
        image_lists: str | None = None,
        resize_ratio: float | None = None,
        crop_scale: float | None = None,
        hflip: bool | None = None,
    ) -> None:
        super().__init__()
        embedded = is_embedded(root)
        # A torchvision digits root (MNIST/raw, usps.bz2, train_32x32.mat) is exported once to a
        # <Domain>/<class>/<image> tree with the official split lists, in the cache.
        digits = not embedded and root is not None and is_torchvision_digits_root(root)
        data_root = embedded_root(cache_dir) if embedded else digits_tree(root, cache_dir) if digits else root
        self.tree = DomainTree.scan(data_root, image_lists=image_lists)
        self.root = self.tree.root
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        ratio = resize_ratio if resize_ratio is not None else (1.0 if embedded else RESIZE_RATIO)
        scale = crop_scale if crop_scale is not None else (0.6 if embedded else 0.08)
        flip = hflip if hflip is not None else not embedded
        self.image_size = image_size
        self.short_side = resize_size(image_size, ratio)
        self.train_transform = train_transform(image_size, (scale, 1.0), flip)
        # What evaluation computes. The evaluation datasets do not apply it: they decode straight
        # to its centre crop (ImageDataset's crop) and only convert that with self.to_tensor.
        self.eval_transform = eval_transform(image_size, ratio)
        self.to_tensor = ToNormalizedTensor()
        use_cache = cache_dir is not None and not embedded and not digits  # tiny images: nothing to save
        self.cache = ResizedImageCache(cache_dir, self.short_side) if use_cache else None

    @property
    def num_classes(self) -> int:
        """Number of classes (linked to the model's ``num_classes`` by the CLI)."""
        return self.tree.num_classes

    @property
    def class_names(self) -> list[str]:
        """Class names; a label indexes this list."""
        return list(self.tree.class_names)

    @property
    def domains(self) -> list[str]:
        """Names of every domain of the dataset; an item's domain id indexes this list."""
        return self.tree.domain_names

    def dataset(self, samples: Sequence[Sample], train: bool) -> ImageDataset:
        """A dataset over ``samples`` with the training or evaluation transform.

        Evaluation items equal ``self.eval_transform`` of the short-side-resized image, but are
        decoded straight to the centre crop (only the crop is resampled), which is faster.
        """
        if train:
            return ImageDataset(samples, self.train_transform, self.short_side, self.cache)
        return ImageDataset(samples, self.to_tensor, self.short_side, self.cache, crop=self.image_size)

    def domain_split(self, index: int, split: Split = "random") -> tuple[list[Sample], list[Sample]]:
        """Domain ``index``'s ``(train, test)`` samples (:func:`~datamodules.splits.domain_split`).

        Args:
            index: The domain's index.
            split: ``"random"``: the 80/20 split seeded by ``seed`` (what the DG and k-fold
                protocols use); ``"official"``: the dataset's published transfer split.
        """
        return domain_split(self.tree, index, split, self.seed)

    def cycled_loader(self, samples: Sequence[Sample], steps: int) -> DataLoader:
        """A training loader of ``steps`` batches over ``samples``, reshuffled after every pass, never exhausted early."""
        dataset = self.dataset(samples, train=True)
        # Without replacement, num_samples beyond the split's size makes RandomSampler chain fresh
        # permutations: every image once per pass, a new order each pass.
        sampler = RandomSampler(dataset, replacement=False, num_samples=steps * self.batch_size)
        return self.loader(dataset, sampler=sampler, drop_last=True)

    def loader(self, dataset: ImageDataset, sampler: Sampler[int] | Sequence[int] | None = None, shuffle: bool = False,
               drop_last: bool = False) -> DataLoader:
        """A DataLoader with this module's batch size and workers.

        An evaluation loader (no sampler, no shuffling) in a multi-process run gets a sampler that
        splits the set among the processes without repeating any image: Lightning's default
        DistributedSampler pads an uneven split with repeats, which would count some test images
        twice. Lightning keeps a DistributedSampler it finds in place.
        """
        if sampler is None and not shuffle and _distributed():
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, shuffle=shuffle,
                          drop_last=drop_last, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=False)
