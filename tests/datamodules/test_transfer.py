"""TransferDataModule: tasks, splits shared across tasks, training that never runs dry, evaluation sets."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from dabin.errors import DabinError
from datamodules import DatasetWarning, TransferDataModule

from .conftest import make_tree


def quiet(**kwargs: object) -> TransferDataModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # partial Office-Home replica: counts differ
        return TransferDataModule(num_workers=0, **kwargs)


def keys(samples: list) -> set[tuple[int, str]]:
    return {(s.domain, s.key) for s in samples}


def test_attributes_exist_right_after_init(office_home_small: Path) -> None:
    data = quiet(root=str(office_home_small), source="Ar", target="rw", image_size=8)
    assert data.num_classes == 4
    assert data.domains == ["Art", "Clipart", "Product", "Real World"]
    assert data.class_names == sorted(data.class_names, key=str.lower)
    assert (data.source_name, data.target_name) == ("Art", "Real World")
    assert data.eval_names == ["Real World"]


def test_default_task_is_the_first_one(office_home_small: Path) -> None:
    data = quiet(root=str(office_home_small))
    assert (data.source_name, data.target_name) == ("Art", "Clipart")
    data = quiet(root=str(office_home_small), task="Pr->Rw")
    assert (data.source_name, data.target_name) == ("Product", "Real World")


def test_domain_split_is_the_same_in_every_task(office_home_small: Path) -> None:
    a = quiet(root=str(office_home_small), source="Ar", target="Cl", seed=1)
    b = quiet(root=str(office_home_small), source="Cl", target="Pr", seed=1)
    c = quiet(root=str(office_home_small), source="Rw", target="Cl", seed=2)
    for split in (0, 1):
        assert keys(a.splits["Clipart"][split]) == keys(b.splits["Clipart"][split])
        assert keys(a.splits["Clipart"][split]) != keys(c.splits["Clipart"][split])  # other seed
    train, test = a.splits["Art"]
    assert not keys(train) & keys(test)
    assert abs(len(test) / (len(train) + len(test)) - 0.2) < 0.02


def test_loaders_serve_the_right_splits(office_home_small: Path) -> None:
    data = quiet(root=str(office_home_small), source="Ar", target="Cl", image_size=8, batch_size=16,
                 test_all_splits=True)
    assert data.eval_names == ["Clipart", "Clipart/train", "Art/test", "Art/train"]
    val = data.val_dataloader()
    assert keys(val.dataset.samples) == keys(data.splits["Art"][1])  # source only: no target labels
    tests = data.test_dataloader()
    expected = [data.splits["Clipart"][1], data.splits["Clipart"][0], data.splits["Art"][1], data.splits["Art"][0]]
    assert [keys(t.dataset.samples) for t in tests] == [keys(e) for e in expected]
    images, labels, domains = next(iter(tests[0]))
    assert images.shape == (16, 3, 8, 8) and images.dtype == torch.float32
    assert set(domains.tolist()) == {1} and labels.dtype == torch.int64
    loaders = data.train_dataloader()
    assert set(loaders) == {"source", "target"}
    source, target = next(iter(loaders["source"])), next(iter(loaders["target"]))
    assert set(source[2].tolist()) == {0} and set(target[2].tolist()) == {1}


def test_training_loaders_cycle_with_equal_lengths(tmp_path: Path) -> None:
    # Source much smaller than the target and than a batch: it must cycle, reshuffled.
    make_tree(tmp_path, {"big": {"a": 30, "b": 30}, "tiny": {"a": 3, "b": 3}})
    data = TransferDataModule(root=str(tmp_path), source="tiny", target="big", image_size=8, batch_size=8,
                              num_workers=0)
    loaders = data.train_dataloader()
    assert len(loaders["source"]) == len(loaders["target"]) == data.steps_per_epoch == 6  # ceil(48 / 8)
    seen = [b[1] for b in loaders["source"]]
    assert len(seen) == 6 and all(len(b) == 8 for b in seen)
    paths = [s.key for s in loaders["source"].sampler.data_source.samples]
    order = list(loaders["source"].sampler)
    passes = [order[i:i + len(paths)] for i in range(0, 48 - len(paths) + 1, len(paths))]
    assert all(sorted(p) == list(range(len(paths))) for p in passes)  # every image once per pass
    assert len({tuple(p) for p in passes}) > 1  # reshuffled between passes
    fixed = TransferDataModule(root=str(tmp_path), source="tiny", target="big", image_size=8, batch_size=8,
                               num_workers=0, steps_per_epoch=50)
    assert len(fixed.train_dataloader()["target"]) == 50


class _PairModel(pl.LightningModule):
    """Counts the steps and checks each batch holds a source and a target batch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 2)
        self.steps = 0

    def training_step(self, batch: dict[str, list[Tensor]], batch_idx: int) -> Tensor:
        assert set(batch) == {"source", "target"}
        self.steps += 1
        return self.layer(batch["source"][0].mean((2, 3))).sum() + self.layer(batch["target"][0].mean((2, 3))).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_trainer_runs_for_max_steps_beyond_one_epoch(tmp_path: Path) -> None:
    make_tree(tmp_path / "data", {"big": {"a": 12, "b": 12}, "tiny": {"a": 3, "b": 3}})
    data = TransferDataModule(root=str(tmp_path / "data"), source="tiny", target="big", image_size=8, batch_size=4,
                              num_workers=0)
    model = _PairModel()
    trainer = pl.Trainer(max_steps=17, max_epochs=-1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and logging
        trainer.fit(model, datamodule=data)
    assert model.steps == 17 and trainer.global_step == 17
    assert data.steps_per_epoch == 5  # so 17 steps spanned four epochs


def test_lightning_cli_sets_the_module_from_arguments(office_home_small: Path) -> None:
    from pytorch_lightning.cli import LightningCLI

    class Model(pl.LightningModule):
        def __init__(self, num_classes: int = 1000) -> None:
            super().__init__()
            self.num_classes = num_classes

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    args = ["--data.root", str(office_home_small), "--data.source", "Ar", "--data.target", "Cl",
            "--data.image_size", "32", "--data.batch_size", "8", "--data.num_workers", "0", "--data.seed", "3",
            "--trainer.logger", "false"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = CLI(Model, TransferDataModule, args=args, run=False)
    assert cli.model.num_classes == 4
    assert (cli.datamodule.source_name, cli.datamodule.target_name, cli.datamodule.seed) == ("Art", "Clipart", 3)


def test_embedded_is_served(embedded_cache: Path) -> None:
    data = TransferDataModule(root="embedded", source="In", target="Sk", image_size=32, batch_size=16, num_workers=0)
    assert data.domains == ["Ink", "Neon", "Photo", "Sketch"] and data.num_classes == 10
    assert (data.split, data.split_source) == ("random", "random 80/20")  # no official split: the paper's 80/20
    assert data.root.parent == embedded_cache
    images, labels, _ = next(iter(data.train_dataloader()["source"]))
    assert images.shape == (16, 3, 32, 32)
    assert (TransferDataModule(num_workers=0).source_name, TransferDataModule(num_workers=0).target_name) == ("Ink", "Neon")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"source": "Paintings"}, r"unknown domain 'Paintings' in .*; found: Art \(Ar\), Clipart \(Cl\)"),
    ({"source": "Ar", "target": "Art"}, r"unknown task Ar->Art: source and target are both 'Art'"),
    ({"task": "Ar+Cl"}, r"unknown task 'Ar\+Cl'"),
    ({"task": "Ar->Xy"}, r"unknown domain 'Xy'"),
    ({"steps_per_epoch": 0}, "steps_per_epoch must be at least 1, got 0"),
])
def test_bad_arguments(office_home_small: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(DabinError, match=message):
        quiet(root=str(office_home_small), **kwargs)


def test_single_domain_tree_has_no_task(tmp_path: Path) -> None:
    make_tree(tmp_path, {"only": {"a": 3, "b": 3}})
    with pytest.raises(DabinError, match="a transfer task needs two domains"):
        TransferDataModule(root=str(tmp_path), num_workers=0)
