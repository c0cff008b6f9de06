"""Mean class accuracy (VisDA-2017's metric) at test: tallied per class, reduced like the accuracy, recorded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torchmetrics.classification import MulticlassAccuracy

from dabin.modules import TransferModule
from dabin.modules.base import ClassTally
from dabin.modules.outputs import RunSummary
from dabin.record import PerClass, RunRecord
from dabin.record import TestResult as Result
from datamodules import TransferDataModule

#: Five classes, unequal sizes (4, 1, 0, 3, 2 images): class 2 is absent from the set but predicted once.
LABELS = [0, 0, 0, 0, 1, 3, 3, 3, 4, 4]
PREDICTED = [0, 0, 0, 1, 1, 3, 2, 2, 4, 0]


def _logits(predicted: list[int], classes: int = 5) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), classes).float() * 3 - 1


def _numpy_class_accuracy(labels: list[int], predicted: list[int]) -> float:
    # Independent of dabin: float64, the classes that have images in the set.
    y, p = np.asarray(labels), np.asarray(predicted)
    return float(np.mean([100.0 * np.mean(p[y == c] == c) for c in np.unique(y)], dtype=np.float64))


def test_mean_class_accuracy_is_over_the_classes_present() -> None:
    tally = ClassTally(5)
    tally.update(_logits(PREDICTED[:6]), torch.tensor(LABELS[:6]))
    tally.update(_logits(PREDICTED[6:]), torch.tensor(LABELS[6:]))
    total, correct = tally.compute()
    per_class = PerClass(classes=tuple("abcde"), n=tuple(total.tolist()), correct=tuple(correct.tolist()))
    assert per_class.n == (4, 1, 0, 3, 2) and per_class.correct == (3, 1, 0, 1, 1)
    assert per_class.accuracy == (75.0, 100.0, None, pytest.approx(100 / 3), 50.0)
    expected = _numpy_class_accuracy(LABELS, PREDICTED)  # (75 + 100 + 33.3 + 50) / 4
    assert per_class.mean_accuracy() == pytest.approx(expected, abs=1e-9)
    micro = 100.0 * float(np.mean(np.asarray(LABELS) == np.asarray(PREDICTED)))
    assert abs(micro - expected) > 4  # 60 % of the images, 64.6 % per class: the two metrics differ here
    # torchmetrics' macro average counts the predicted-but-absent class 2 as 0 %: not this metric.
    macro = MulticlassAccuracy(5, average="macro")
    macro.update(_logits(PREDICTED), torch.tensor(LABELS))
    assert 100 * float(macro.compute()) == pytest.approx(expected * 4 / 5, abs=1e-4)


def test_tallies_of_two_processes_add_up() -> None:
    # What DDP's reduction does with the states (dist_reduce_fx="sum"): each process's counts are summed.
    whole, first, second = ClassTally(5), ClassTally(5), ClassTally(5)
    whole.update(_logits(PREDICTED), torch.tensor(LABELS))
    first.update(_logits(PREDICTED[::2]), torch.tensor(LABELS[::2]))
    second.update(_logits(PREDICTED[1::2]), torch.tensor(LABELS[1::2]))
    first.merge_state(second)
    assert [t.tolist() for t in first.compute()] == [t.tolist() for t in whole.compute()]


@dataclasses.dataclass(frozen=True)
class TinyRun:
    """A tiny transfer run, fitted 2 steps and tested, with the record its :class:`RunSummary` wrote."""

    model: TransferModule
    trainer: pl.Trainer
    data: TransferDataModule
    folder: Path


@pytest.fixture(scope="module")
def tested(office_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    folder = tmp_path_factory.mktemp("tested")
    data = TransferDataModule(root=str(office_tree), task="Ar->Cl", image_size=32, batch_size=4, num_workers=0,
                              steps_per_epoch=2)
    model = TransferModule(num_classes=3, norm="bn", small_input=True, width=8, bottleneck_dim=16, hidden_dim=32,
                           evaluation_points=0)
    pl.seed_everything(0)
    trainer = pl.Trainer(default_root_dir=folder, max_steps=2, max_epochs=-1, accelerator="cpu", devices=1,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0,
                         callbacks=[RunSummary(seed=0)])
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return TinyRun(model=model, trainer=trainer, data=data, folder=folder)


def test_a_test_run_keeps_the_class_accuracy_of_its_predictions(tested: TinyRun) -> None:
    result = Result.from_json("Clipart", tested.model.test_results["Clipart"])
    assert result.per_class is not None and result.per_class.classes == ("Alarm_Clock", "Backpack", "Batteries")
    assert sum(result.per_class.n) == result.n
    # The model's predictions on the target test set, counted here without dabin's metrics.
    tested.model.eval()
    labels, predicted = [], []
    with torch.no_grad():
        for images, targets, _ in tested.data.test_dataloader()[0]:
            labels += targets.tolist()
            predicted += tested.model(images).argmax(1).tolist()
    assert result.per_class.n == tuple(int(np.sum(np.asarray(labels) == c)) for c in range(3))
    assert result.class_accuracy == pytest.approx(_numpy_class_accuracy(labels, predicted), abs=1e-9)
    logged = float(tested.trainer.callback_metrics["test/class_acc/Clipart"])
    assert logged == pytest.approx(result.class_accuracy, abs=1e-4)


def test_the_run_record_keeps_the_class_accuracy(tested: TinyRun) -> None:
    result = Result.from_json("Clipart", tested.model.test_results["Clipart"])
    stored = json.loads((tested.folder / "metrics.json").read_text())["test"]["Clipart"]
    assert stored["class_accuracy"] == pytest.approx(result.class_accuracy)
    assert stored["per_class"]["n"] == list(result.per_class.n)
    # Read back as the sweep and the report read it.
    assert RunRecord.read(tested.folder).target_result() == result
