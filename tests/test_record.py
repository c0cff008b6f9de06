"""The run record: what the trainer writes is what the sweep and the report read, and damage is one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dabin.record import (METRICS, BatchRecord, EvaluationPoint, GateLrRecord, RecordError, RunRecord, SourceVal)
from dabin.record import TestResult as Result


def _record() -> RunRecord:
    return RunRecord(
        test={"Clipart": Result(accuracy=63.25, n=872)}, average=63.25, method="dann",
        model_selection="last checkpoint", norm="bin", domain_stats="joint", num_classes=65, source="Art",
        target="Clipart", seed=1, steps=10, time_s=3.5,
        batch=BatchRecord(per_device={"source": 32, "target": 32}, devices=2, accumulate_grad_batches=1,
                          effective={"source": 64, "target": 64}, effective_images=128),
        gate_lr=GateLrRecord(mult=10.0, of="group", initial_lr=[0.01]),
        source_val=SourceVal(accuracy=71.5, step=9),
        evaluation_points=(EvaluationPoint(step=5, scores={"snd": 3.5, "dev": math.nan}, oracle_target_test=50.0),
                           EvaluationPoint(step=10, scores={"snd": 3.0, "dev": -1.0}, oracle_target_test=63.25)),
        config={"model": {"lr": 0.01}})


def test_a_written_record_reads_back_equal(tmp_path: Path) -> None:
    record = _record()
    record.write(tmp_path)
    data = json.loads((tmp_path / METRICS).read_text())
    # The file keeps the documented layout: the oracle under its own key, apart from the scores.
    assert data["evaluation_points"][1] == {"step": 10, "scores": {"snd": 3.0, "dev": -1.0},
                                            "oracle": {"target_test_accuracy": 63.25}}
    assert data["batch"]["effective_images"] == 128 and data["source_val"] == {"accuracy": 71.5, "step": 9}
    back = RunRecord.read(tmp_path)
    assert math.isnan(back.evaluation_points[0].scores["dev"])
    assert back.to_json()["evaluation_points"][1] == data["evaluation_points"][1]
    assert back.test == record.test and back.batch == record.batch and back.source_val == record.source_val
    assert back.target_result() == Result(63.25, 872)
    assert back.batch.text() == "64+64 on 2 devices" and back.gate_lr.text() == "10× group rate"


def test_a_minimal_record_needs_only_results_and_a_method(tmp_path: Path) -> None:
    (tmp_path / METRICS).write_text(json.dumps({"test": {"Aa": {"accuracy": 40, "n": 3},
                                                         "Bb": {"accuracy": 60, "n": 3}}, "method": "mixed"}))
    record = RunRecord.read(tmp_path)
    assert record.average == 50.0 and record.evaluation_points == () and record.target_result() is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("test"), "metrics.json: no test results"),
    (lambda d: d.pop("method"), "metrics.json: record: method is None"),
    (lambda d: d["test"]["Clipart"].update(accuracy=float("nan")), "accuracy of 'Clipart' is nan (NaN or missing)"),
    (lambda d: d["test"]["Clipart"].update(n=True), "n of 'Clipart' is True, not a positive number"),
    (lambda d: d.update(seed="1"), "metrics.json: record: seed is '1'"),
    (lambda d: d["evaluation_points"][1]["oracle"].update(target_test_accuracy=140),
     "evaluation_points[1]: oracle target_test_accuracy is 140, not a percentage"),
    (lambda d: d["evaluation_points"][0]["scores"].update(snd="high"), "evaluation_points[0]: score snd is 'high'"),
    (lambda d: d["batch"].pop("devices"), "metrics.json: a field has the wrong shape"),
])
def test_a_damaged_record_is_one_line_naming_the_field(tmp_path: Path, change, message) -> None:
    data = _record().to_json()
    change(data)
    (tmp_path / METRICS).write_text(json.dumps(data))
    with pytest.raises(RecordError, match="^metrics.json") as error:
        RunRecord.read(tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="metrics.json not found"):
        RunRecord.read(tmp_path)
    (tmp_path / METRICS).write_text("{")
    with pytest.raises(RecordError, match="metrics.json is not valid JSON"):
        RunRecord.read(tmp_path)
