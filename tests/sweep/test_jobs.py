"""What makes a run done: metrics.json checks, and results rows of runs in every state."""

from __future__ import annotations

import json

import pytest

from dabin.cli import main
from dabin.record import read_runs, result_rows
from dabin.sweep import Job, planned
from dabin.sweep.running import check_metrics


def _metrics(tmp_path, test) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"test": test, "method": "dann", "steps": 3}))


@pytest.mark.parametrize(("test", "problem"), [
    ({"Bb": {"accuracy": float("nan"), "n": 5}}, "accuracy of 'Bb' is nan (NaN or missing)"),
    ({"Bb": {"n": 5}}, "accuracy of 'Bb' is None (NaN or missing)"),
    ({"Bb": {"accuracy": 152.0, "n": 5}}, "accuracy of 'Bb' is 152.0, not a percentage"),
    ({"Bb": {"accuracy": 52.0}}, "n of 'Bb' is None, not a positive number"),
    ({"Bb": {"accuracy": 52.0, "n": 0}}, "n of 'Bb' is 0, not a positive number"),
    ({}, "metrics.json: no test results"),
])
def test_bad_metrics_fail_the_run(tmp_path, test, problem):
    _metrics(tmp_path, test)
    accuracy, reason = check_metrics(tmp_path)
    assert accuracy is None and problem in reason


def test_good_metrics_and_missing_file(tmp_path):
    assert check_metrics(tmp_path) == (None, "trainer exited without writing metrics.json")
    (tmp_path / "metrics.json").write_text("{")
    assert check_metrics(tmp_path)[1].startswith("metrics.json is not valid JSON")
    _metrics(tmp_path, {"Aa": {"accuracy": 50.0, "n": 4}, "Bb": {"accuracy": 70.0, "n": 4}})
    assert check_metrics(tmp_path) == (60.0, "")
    assert check_metrics(tmp_path, expected=["bb"]) == (60.0, "")  # names match in any spelling
    assert check_metrics(tmp_path, expected=["Cc"]) == (None,
                                                        "metrics.json has no test result for 'Cc' (it has Aa, Bb)")


def test_rows_of_runs_in_every_state(tmp_path):
    jobs = [Job(method="dann", norm=norm, seed=0, config="dann.yaml", source="Aa", target="Bb") for norm in ("bn", "bin", "in", "bnin")]
    jobs.append(Job(method="mixed", norm="bn", seed=0, config="mixed.yaml", fold=0))
    done, failed, incomplete, _missing, damaged = (tmp_path / job.name for job in jobs)
    for folder in (done, failed, incomplete, damaged):
        folder.mkdir()
        (folder / "job.json").write_text("{}")
    _metrics(done, {"Bb": {"accuracy": 61.25, "n": 8}})
    (done / "done").write_text("{}")
    (failed / "failed").write_text("exit status 1: boom\n")
    (damaged / "done").write_text("{}")  # done, but its metrics.json was deleted afterwards
    rows = [row for run in read_runs(tmp_path, planned(jobs)) for row in result_rows(run)]
    # Results only: the incomplete and the never-started run are not rows; a failed run is one row.
    assert [(r["method"], r["norm"], r["domain"], r["status"], r["accuracy"]) for r in rows] == [
        ("dann", "bn", "Bb", "ok", 61.25), ("dann", "bin", "Bb", "failed", ""), ("mixed", "bn", "", "failed", "")]
    assert rows[1]["reason"] == "exit status 1: boom"
    assert rows[2]["reason"].startswith("metrics.json unreadable after the run finished")


def test_out_that_is_a_file_is_refused(tiny_spec, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["sweep", str(tiny_spec), "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"dabin: error: --out {tmp_path / 'file'} is a file, not a folder\n"
