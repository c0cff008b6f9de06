"""Lightning data modules for multi-domain image datasets (Office-Home, PACS, the embedded digits).

Each dataset item is ``(image: Tensor[3, H, W] float, label: int, domain: int)``.

- :class:`TransferDataModule`: one source->target task, 80/20 split of every domain (Table 4).
- :class:`KFoldDataModule`: mixed-domain k-fold cross-validation (Table 3).
- :func:`transfer_tasks`: the tasks of a dataset (Office-Home: the paper's 12, in order).
- :func:`domain_code`: ``"Real World"`` -> ``"Rw"``.
- :class:`DomainTree`: the scanned ``root/<Domain>/<Class>/<image>`` tree.
- :func:`embedded_root`: the offline digits dataset (rendered and cached on first use).
- ``dabin data ROOT``: :func:`datamodules.check.main`.
"""

from datamodules.base import DomainDataModule
from datamodules.cache import ResizedImageCache, default_cache_dir
from datamodules.dataset import ImageDataset
from datamodules.embedded import EMBEDDED_DOMAINS, embedded_root, is_embedded
from datamodules.kfold import KFoldDataModule
from datamodules.loading import CorruptImageError, decode_image, verify_image
from datamodules.naming import domain_code, domain_key
from datamodules.officehome import OFFICE_HOME_COUNTS, OFFICE_HOME_DOMAINS, OFFICE_HOME_TASKS
from datamodules.splits import kfold_split, transfer_split
from datamodules.tasks import parse_task, task_name, transfer_tasks
from datamodules.transfer import TransferDataModule
from datamodules.transforms import eval_transform, resize_size, train_transform
from datamodules.tree import DatasetWarning, Domain, DomainTree, Sample

__all__ = [
    "EMBEDDED_DOMAINS",
    "OFFICE_HOME_COUNTS",
    "OFFICE_HOME_DOMAINS",
    "OFFICE_HOME_TASKS",
    "CorruptImageError",
    "DatasetWarning",
    "Domain",
    "DomainDataModule",
    "DomainTree",
    "ImageDataset",
    "KFoldDataModule",
    "ResizedImageCache",
    "Sample",
    "TransferDataModule",
    "decode_image",
    "default_cache_dir",
    "domain_code",
    "domain_key",
    "embedded_root",
    "eval_transform",
    "is_embedded",
    "kfold_split",
    "parse_task",
    "resize_size",
    "task_name",
    "train_transform",
    "transfer_split",
    "transfer_tasks",
    "verify_image",
]
