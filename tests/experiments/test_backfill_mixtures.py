"""experiments/backfill_mixtures.py: the tables a run's trainer writes, rebuilt from its last checkpoint."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.modules.conftest import DEMO, run

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "backfill_mixtures.py"


@pytest.fixture(scope="module")
def backfill() -> ModuleType:
    spec = importlib.util.spec_from_file_location("backfill_mixtures", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("norm", "table"), [("switchable", "switch_weights.csv"), ("dsbin", "gates.csv")])
def test_a_run_without_its_table_gets_the_trainers_table_back(backfill: ModuleType, norm: str, table: str,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep"
    folder = sweep / f"dann_{norm}_In-Ne_s0"
    status, err = run(["fit", "-c", str(DEMO / "dann.yaml"), "--model.norm", norm, "--trainer.max_steps", "2",
                       "--trainer.limit_val_batches", "0", "--trainer.limit_test_batches", "1",
                       "--model.evaluation_points", "0", "--trainer.default_root_dir", str(folder)], capsys)
    assert status == 0, err
    (folder / "job.json").write_text(json.dumps({"method": "dann", "norm": norm}))
    (folder / "done").write_text("{}")
    written = (folder / table).read_text()
    if norm == "dsbin":  # as the trainer wrote gates.csv before the target gates were recorded
        lines = written.splitlines()
        (folder / table).write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    else:
        (folder / table).unlink()
    assert backfill.main([str(sweep)]) == 0
    assert (folder / table).read_text() == written  # what the trainer wrote at the end of the run
    assert "wrote the tables of 1 run(s), skipped 0" in capsys.readouterr().out
    assert backfill.main([str(sweep)]) == 0  # nothing left to do
    assert "wrote the tables of 0 run(s)" in capsys.readouterr().out


def test_a_missing_sweep_folder_is_one_line_and_a_damaged_job_is_skipped(backfill: ModuleType, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "nowhere" in err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "job.json").write_text("{torn")
    assert backfill.main([str(tmp_path)]) == 0
    assert "skipped run: job.json is not a job record" in capsys.readouterr().out
