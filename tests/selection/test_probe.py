"""Evaluation points: validators scored during training, the oracle kept apart, training unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dabin.cli import main
from dabin.selection import VALIDATOR_NAMES
from dabin.selection.probe import evaluation_steps

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo"


def test_evaluation_steps_are_spread_and_end_at_the_last_step() -> None:
    assert evaluation_steps(150, 5) == [30, 60, 90, 120, 150]
    # A short run gets one point per MIN_STEPS_PER_POINT steps at most, and always the last step.
    assert evaluation_steps(4, 8) == [4] and evaluation_steps(6, 5) == [6]
    assert evaluation_steps(25, 5) == [12, 25] and evaluation_steps(50, 5) == [10, 20, 30, 40, 50]
    assert evaluation_steps(100, 0) == [] and evaluation_steps(0, 3) == []


def _fit(folder: Path, *extra: str) -> dict:
    status = main(["fit", "-c", str(DEMO / "dann.yaml"), "--data.task", "Ph->Sk", "--trainer.max_steps", "20",
                   "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(folder), *extra])
    assert status == 0
    return json.loads((folder / "metrics.json").read_text())


def test_points_are_recorded_with_every_validator_and_the_oracle_apart(tmp_path: Path) -> None:
    plain = _fit(tmp_path / "plain", "--model.evaluation_points", "0")
    probed = _fit(tmp_path / "probed", "--model.evaluation_points", "2", "--model.evaluation_target_images", "40")
    assert plain["evaluation_points"] == []
    points = probed["evaluation_points"]
    assert [p["step"] for p in points] == [10, 20]
    for point in points:
        assert list(point["scores"]) == list(VALIDATOR_NAMES)
        # MixVal's inter probes need two pseudo-classes: undefined (NaN) only when every prediction is one class.
        collapsed = point["target_predictions"]["max_class_share"] == 100.0
        assert all(math.isfinite(v) for name, v in point["scores"].items() if name != "mixval_inter")
        assert math.isnan(point["scores"]["mixval_inter"]) == collapsed
        assert set(point["oracle"]) == {"target_test_accuracy"}
    # The last point is the end of training: its oracle is the tested last checkpoint's accuracy.
    assert points[-1]["oracle"]["target_test_accuracy"] == pytest.approx(probed["test"]["Sketch"]["accuracy"], abs=1e-4)
    # Probing does not change what training computes: same weights, same test accuracy.
    assert probed["average"] == plain["average"]
    weights = [torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
               for run in ("plain", "probed")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_negative_points_are_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["fit", "-c", str(DEMO / "dann.yaml"), "--model.evaluation_points", "-1",
                   "--trainer.default_root_dir", str(tmp_path)])
    assert status == 2 and "evaluation_points must be >= 0, got -1" in capsys.readouterr().err


def test_negative_target_images_are_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["fit", "-c", str(DEMO / "dann.yaml"), "--model.evaluation_target_images", "1",
                   "--trainer.default_root_dir", str(tmp_path)])
    assert status == 2 and "evaluation_target_images must be >= 2 (or null for all), got 1" in capsys.readouterr().err


def test_probe_loaders_cover_whole_splits_and_a_fixed_target_subset() -> None:
    from datamodules import TransferDataModule

    data = TransferDataModule(root="embedded", task="Ph->Sk", image_size=16, batch_size=16, num_workers=0)
    data.setup("fit")
    source_val, target_train, target_test = data.probe_dataloaders()
    assert len(source_val.dataset) == len(data.splits["Photo"][1])
    assert sum(len(batch[0]) for batch in target_train) == len(data.splits["Sketch"][0])
    assert sum(len(batch[0]) for batch in target_test) == len(data.splits["Sketch"][1])
    # A cap takes a fixed random subset: the same images every time, spread over the classes.
    first = torch.cat([batch[1] for batch in data.probe_dataloaders(50)[1]])
    again = torch.cat([batch[1] for batch in data.probe_dataloaders(50)[1]])
    assert len(first) == 50 and torch.equal(first, again)
    assert len(first.unique()) >= 8  # the split is in class order: a head would hold two or three classes


def test_points_under_ddp_are_scored_once_over_whole_splits(tmp_path: Path) -> None:
    """Two CPU processes (gloo): the first scores each point over the whole splits, the others go on
    training; the run neither hangs nor records a shard. The last point's oracle is the whole target
    test split's accuracy, which the (sharded, then gathered) test of the last checkpoint also gives."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "dabin", "fit", "-c", str(DEMO / "dann.yaml"), "--data.task", "Ph->Sk",
               "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
               "--trainer.max_steps", "20", "--trainer.limit_val_batches", "1", "--data.batch_size", "8",
               "--model.evaluation_points", "2", "--model.evaluation_target_images", "40",
               "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    points = metrics["evaluation_points"]
    assert [p["step"] for p in points] == [10, 20] and metrics["batch"]["devices"] == 2
    assert metrics["test"]["Sketch"]["n"] == 90  # the whole target test split, each image once
    assert points[-1]["oracle"]["target_test_accuracy"] == pytest.approx(metrics["test"]["Sketch"]["accuracy"],
                                                                         abs=1e-4)
