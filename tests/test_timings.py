"""Where a demo's time went: the phases, the runs' own seconds from their records, the report's head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dabin import demo
from dabin.record import Timings
from dabin.report.build import build_report

FIXTURE = Path(__file__).parent / "report" / "data" / "sweep"


def test_timings_sum_the_runs_records_and_show_in_the_report_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sweep"
    shutil.copytree(FIXTURE, folder)
    # Two runs record their evaluation and test seconds (records of the previous release have none).
    records = sorted(folder.glob("dann_bin_*/metrics.json"))[:2]
    for path in records:
        data = json.loads(path.read_text())
        data.update(evaluation_s=1.5, test_s=0.25)
        path.write_text(json.dumps(data))
    fits = [json.loads(p.read_text())["time_s"] for p in folder.glob("*/metrics.json")]
    timings = demo._timings(folder, {"dataset": 1.0, "pretraining": 2.0, "runs": 30.0}, workers=2)
    assert timings.runs == 32 == len(fits)
    assert timings.fit_s == pytest.approx(sum(fits)) and timings.evaluation_s == 3.0 and timings.test_s == 0.5
    assert timings.processes == 2 and timings.threads >= 1
    timings.write(folder)
    assert Timings.read(folder) == timings
    head = build_report(folder).files["report.md"].decode().split("\n## ", 1)[0]
    assert "- Where the time went (`timings.json`): dataset 1 s, pretraining 2 s, runs 30 s (total 0.6 min); over the " \
           "32 runs: fitting" in head


def test_a_damaged_timings_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "timings.json").write_text("{not json")
    assert Timings.read(tmp_path) is None


def test_the_install_seconds_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ".install_seconds"
    path.write_text("66\n")
    monkeypatch.setattr(demo, "INSTALL_SECONDS", path)
    assert demo._install_seconds() == 66.0
    assert demo._install_seconds() is None  # a later demo did not install


@pytest.mark.parametrize(("args", "workers"), [([], 2), (["--workers", "1"], 1), (["--workers=3"], 3)])
def test_the_workers_are_the_sweeps(args: list[str], workers: int) -> None:
    assert demo._workers(args, 2) == workers
