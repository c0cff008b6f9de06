"""The run record: what the trainer writes is what the sweep and the report read, and damage is one line."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from dabin.errors import DabinError
from dabin.record import (COLUMNS, METRICS, OPTIONAL_COLUMNS, BatchRecord, EvaluationPoint, GateLrRecord, PerClass,
                          RecordError, Run, RunRecord, SourceVal, read_results, result_rows, runs_from_rows,
                          write_results)
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


def _per_class() -> PerClass:
    # Unequal class sizes and a class without images in the set.
    return PerClass(classes=("a", "b", "c"), n=(6, 0, 2), correct=(3, 0, 2))


def test_class_accuracy_is_written_and_read_back(tmp_path: Path) -> None:
    result = Result(accuracy=62.5, n=8, class_accuracy=_per_class().mean_accuracy(), per_class=_per_class())
    assert result.class_accuracy == 75.0  # (50 + 100) / 2: class b has no images and is left out
    record = dataclasses.replace(_record(), test={"Clipart": result})
    record.write(tmp_path)
    stored = json.loads((tmp_path / METRICS).read_text())["test"]["Clipart"]
    assert stored["per_class"] == {"classes": ["a", "b", "c"], "accuracy": [50.0, None, 100.0], "n": [6, 0, 2],
                                   "correct": [3, 0, 2]}
    assert RunRecord.read(tmp_path).target_result() == result


def test_records_without_class_accuracy_read_and_write_as_before(tmp_path: Path) -> None:
    record = _record()
    assert record.to_json()["test"] == {"Clipart": {"accuracy": 63.25, "n": 872}}  # no nulls added
    record.write(tmp_path)
    back = RunRecord.read(tmp_path).target_result()
    assert back is not None and back.class_accuracy is None and back.per_class is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: e.update(class_accuracy=101), "class_accuracy of 'Clipart' is 101, not a percentage"),
    (lambda e: e["per_class"].update(correct=[7, 0, 2]), "class 'a' has 7 correct of 6 images"),
    (lambda e: e["per_class"].update(n=[6, 0]), "3 classes, 2 counts and 3 correct counts"),
    (lambda e: e["per_class"].update(n=[6, -1, 3]), "n is [6, -1, 3], not a list of counts"),
    (lambda e: e["per_class"].update(n=[6, 1, 2]), "per_class of 'Clipart' counts 9 images, n is 8"),
])
def test_a_damaged_class_result_is_one_line(tmp_path: Path, change, message) -> None:
    result = Result(accuracy=62.5, n=8, class_accuracy=75.0, per_class=_per_class())
    data = dataclasses.replace(_record(), test={"Clipart": result}).to_json()
    change(data["test"]["Clipart"])
    (tmp_path / METRICS).write_text(json.dumps(data))
    with pytest.raises(RecordError, match="^metrics.json") as error:
        RunRecord.read(tmp_path)
    assert message in str(error.value)


def _run(test: dict[str, Result]) -> Run:
    return Run(key="r", line=0, method="dann", norm="bn", source="Art", target="Clipart", seed=0, fold=None,
               status="ok", reason="", test=test, model_selection="last checkpoint")


def test_results_csv_has_a_class_accuracy_column_only_when_a_run_has_one(tmp_path: Path) -> None:
    old = _run({"Clipart": Result(63.25, 872)})
    write_results(tmp_path / "old.csv", result_rows(old))
    assert (tmp_path / "old.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    new = _run({"Clipart": Result(62.5, 8, class_accuracy=75.0, per_class=_per_class())})
    write_results(tmp_path / "new.csv", result_rows(new))
    rows = read_results(tmp_path / "new.csv")
    assert list(rows[0]) == [*COLUMNS, *OPTIONAL_COLUMNS] and rows[0]["class_accuracy"] == "75.0"
    (back,) = runs_from_rows(tmp_path / "new.csv", rows)
    assert back.target_result() == Result(62.5, 8, class_accuracy=75.0)  # per_class stays in the run folder


def test_results_csv_refuses_a_bad_class_accuracy(tmp_path: Path) -> None:
    new = _run({"Clipart": Result(62.5, 8, class_accuracy=75.0)})
    write_results(tmp_path / "results.csv", [{**row, "class_accuracy": "high"} for row in result_rows(new)])
    with pytest.raises(DabinError, match=r"line 2: class_accuracy='high' is not a number"):
        read_results(tmp_path / "results.csv")
