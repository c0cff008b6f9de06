"""Lightning data modules for multi-domain image datasets (Office-Home, PACS, the embedded digits).

Each dataset item is ``(image: Tensor[3, H, W] float, label: int, domain: int)``.

- :class:`TransferDataModule`: one source->target task, 80/20 split of every domain (Table 4) or
  the benchmark's official split.
- :class:`GeneralizationDataModule`: domain generalization, training domains -> an unseen one.
- :class:`KFoldDataModule`: mixed-domain k-fold cross-validation (Table 3).
- :func:`transfer_tasks`: the tasks of a dataset (Office-Home: the paper's 12, in order).
- :func:`domain_code`: ``"Real World"`` -> ``"Rw"``.
- :class:`DomainTree`: the scanned ``root/<Domain>/<Class>/<image>`` tree.
- :data:`DATASETS`: the datasets known by name (Office-Home, PACS, VLCS, TerraIncognita, DomainNet,
  Office-31, VisDA-2017, the digits; :mod:`datamodules.presets`), recognised by
  :mod:`datamodules.catalog`; their official list files (:mod:`datamodules.official`):
  :func:`read_pacs_splits` (PACS's train/val split files), :func:`read_official_lists`
  (DomainNet's and the digits' ``<domain>_train.txt`` / ``_test.txt``).
- :func:`domain_split`: what a domain's train and test parts are (random 80/20 or official).
- :func:`embedded_root`: the offline digits dataset (rendered and cached on first use).
- ``dabin data ROOT``: :func:`datamodules.check.main`.
"""

from __future__ import annotations

from dabin.lazy import lazy_exports

# Imported on first use (PEP 562): `dabin report` and `dabin sweep` need the naming helpers, not torch.
_EXPORTS: dict[str, str] = {
    "DomainDataModule": "base",
    "ResizedImageCache": "cache",
    "default_cache_dir": "cache",
    "check_layout": "catalog",
    "dataset_info": "catalog",
    "identify": "catalog",
    "pacs_split_folder": "official",
    "read_official_lists": "official",
    "read_pacs_splits": "official",
    "DATASETS": "presets",
    "DatasetInfo": "presets",
    "class_counts": "presets",
    "ImageDataset": "dataset",
    "EMBEDDED_DOMAINS": "embedded",
    "embedded_root": "embedded",
    "is_embedded": "embedded",
    "GeneralizationDataModule": "generalization",
    "KFoldDataModule": "kfold",
    "CorruptImageError": "loading",
    "decode_image": "loading",
    "verify_image": "loading",
    "domain_code": "naming",
    "domain_key": "naming",
    "OFFICE_HOME_COUNTS": "officehome",
    "OFFICE_HOME_DOMAINS": "officehome",
    "OFFICE_HOME_TASKS": "officehome",
    "BalancedDomainSampler": "samplers",
    "domain_split": "splits",
    "kfold_split": "splits",
    "resolve_split": "splits",
    "transfer_split": "splits",
    "leave_one_out_tasks": "tasks",
    "parse_multi_task": "tasks",
    "parse_task": "tasks",
    "task_name": "tasks",
    "transfer_tasks": "tasks",
    "TransferDataModule": "transfer",
    "eval_transform": "transforms",
    "resize_size": "transforms",
    "train_transform": "transforms",
    "DatasetWarning": "tree",
    "Domain": "tree",
    "DomainTree": "tree",
    "Sample": "tree",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
