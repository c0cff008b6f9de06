"""Mixed-domain k-fold cross-validation over all domains (the paper's Table 3 protocol).

The union of all domains is cut into ``k`` folds stratified by (domain, class), deterministic
from ``seed``; fold ``fold`` is held out and evaluated per domain (one loader per domain, named in
``eval_names``), the other ``k - 1`` folds train the model. Training length follows the trainer
(``max_steps`` or ``max_epochs``); the training loader reshuffles every epoch, following the
global torch seed (``seed_everything``).
"""

from __future__ import annotations

from torch.utils.data import DataLoader

from dabin.errors import DabinError
from datamodules.base import DomainDataModule
from datamodules.splits import kfold_split
from datamodules.tree import Sample

__all__ = ["KFoldDataModule"]


class KFoldDataModule(DomainDataModule):
    """One fold of mixed-domain k-fold cross-validation.

    Args:
        root: Dataset folder; None or ``"embedded"`` for the embedded digits.
        k: Number of folds (at least 2).
        fold: Index of the held-out fold, ``0 <= fold < k``.
        seed: Seed of the fold assignment.
        image_size: Side of the square crops fed to the network.
        batch_size: Images per batch (128 in the paper).
        num_workers: DataLoader worker processes.
        cache_dir: Resized-image cache for image trees; rendering folder for the embedded data.
        image_lists: Optional image-list file or folder (see :class:`DomainDataModule`).
        resize_ratio: Evaluation short side / ``image_size`` (None: dataset preset).
        crop_scale: Smallest area fraction of the training crop (None: dataset preset).
        hflip: Random horizontal flips in training (None: dataset preset).

    Attributes:
        eval_names: Domain names, one per validation/test loader, in domain order.
        val_names: Same as ``eval_names`` (the held-out fold is validated and tested per domain).
        folds: The ``k`` folds as lists of samples; they partition the dataset.
    """

    def __init__(
        self,
        root: str | None = None,
        k: int = 5,
        fold: int = 0,
        seed: int = 0,
        image_size: int = 224,
        batch_size: int = 128,
        num_workers: int = 4,
        cache_dir: str | None = None,
        image_lists: str | None = None,
        resize_ratio: float | None = None,
        crop_scale: float | None = None,
        hflip: bool | None = None,
    ) -> None:
        if k < 2:
            raise DabinError(f"k-fold needs k >= 2, got k={k}")
        if not 0 <= fold < k:
            raise DabinError(f"fold {fold} is out of range for k={k} (expected 0..{k - 1})")
        super().__init__(root, image_size, batch_size, num_workers, seed, cache_dir, image_lists,
                         resize_ratio, crop_scale, hflip)
        self.k = k
        self.fold = fold
        samples = self.tree.samples
        self.folds: list[list[Sample]] = [[samples[i] for i in part] for part in kfold_split(samples, k, seed)]
        self.eval_names = list(self.domains)
        self.val_names = self.eval_names

    @property
    def train_samples(self) -> list[Sample]:
        """Samples of every fold but the held-out one."""
        return [s for j, part in enumerate(self.folds) if j != self.fold for s in part]

    def held_out(self, domain: int) -> list[Sample]:
        """Held-out samples of one domain (by index)."""
        return [s for s in self.folds[self.fold] if s.domain == domain]

    def train_dataloader(self) -> DataLoader:
        """The other folds, all domains mixed, shuffled each epoch."""
        dataset = self.dataset(self.train_samples, train=True)
        # A last batch of one or two images would give BatchNorm useless statistics; drop it,
        # unless that would leave no batch at all.
        return self.loader(dataset, shuffle=True, drop_last=len(dataset) > self.batch_size)

    def val_dataloader(self) -> list[DataLoader]:
        """The held-out fold, one loader per domain (names in :attr:`eval_names`)."""
        return [self.loader(self.dataset(self.held_out(d), train=False)) for d in range(len(self.domains))]

    def test_dataloader(self) -> list[DataLoader]:
        """Same as :meth:`val_dataloader`: the held-out fold is the fold's test set."""
        return self.val_dataloader()

    def predict_dataloader(self) -> list[DataLoader]:
        """The held-out fold, one loader per domain."""
        return self.val_dataloader()
