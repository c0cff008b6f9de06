"""experiments/rehearsal_benchmarks.py's checks, on a tiny fake sweep folder: a right run passes, a wrong one fails.

The rehearsal itself (full-count replicas, real configs) takes tens of minutes: ``make rehearsal-benchmarks``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "rehearsal_benchmarks.py"


@pytest.fixture(scope="module")
def rb() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rehearsal_benchmarks", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


CLASSES = ["back_pack", "bike", "bike_helmet"]


def _fake_sweep(folder: Path, n: list[int], tllib: str = "91.4", accuracy: float = 50.0) -> Path:
    """A sweep folder with one finished DANN BN amazon→webcam run and its report's Table 4."""
    run = folder / "dann-bn-am-we-s0"
    run.mkdir(parents=True)
    (run / "job.json").write_text(json.dumps({"method": "dann", "norm": "bn", "seed": 0, "source": "amazon",
                                              "target": "webcam"}))
    per_class = {"classes": CLASSES, "accuracy": [50.0] * len(n), "n": n, "correct": [c // 2 for c in n]}
    metrics = {"test": {"webcam": {"accuracy": accuracy, "n": sum(n), "class_accuracy": 50.0,
                                   "per_class": per_class}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "done").write_text(json.dumps({"seconds": 1.0}))
    (folder / "report.md").write_text(
        "# Report\n\n## Table 4: domain adaptation (target test accuracy, %)\n\n"
        "| Task | DANN BN | tllib Source only | tllib DANN |\n|---|---|---|---|\n"
        f"| Am→We | {accuracy:.2f} (n=1) | 75.8 | {tllib} |\n| Dw→We | — (3 missing) | 96.7 | 97.3 |\n"
        "| **Avg** | 50.00 (n=1) | 75.8 | 91.4 |\n")
    return folder


def _expected(rb: ModuleType, test: int = 6) -> Any:
    return rb.Expected(source_train=2817, target_train=795, target_test=test,
                       test_classes=dict(zip(CLASSES, (1, 2, 3))), num_classes=3)


def _results(checks: Any) -> dict[str, bool]:
    return {name: ok for name, _, _, ok in checks.rows}


def test_a_right_run_passes_every_check(rb: ModuleType, tmp_path: Path) -> None:
    checks = rb.Checks()
    sweep = _fake_sweep(tmp_path, [1, 2, 3])
    sizes = {"source_train": 2817, "target_train": 795, "target_test": 6}
    rb.check_run(checks, rb.BENCHMARKS["office31"], _expected(rb), sweep, sizes, 0, 0)
    assert checks.failed == 0, checks.rows
    assert len(checks.rows) == 13  # statuses (2), run, n, per class (4), sizes (3), Table 4 (2)


def test_a_wrong_run_fails_the_checks_it_breaks(rb: ModuleType, tmp_path: Path) -> None:
    checks = rb.Checks()
    sweep = _fake_sweep(tmp_path, [1, 3, 3], tllib="90.0")  # one image too many in bike; a wrong tllib cell
    sizes = {"source_train": 2817, "target_train": 794, "target_test": 7}
    rb.check_run(checks, rb.BENCHMARKS["office31"], _expected(rb), sweep, sizes, 0, 1)
    failed = {name for name, ok in _results(checks).items() if not ok}
    assert failed == {
        "office31: target test n = official test size",
        "office31: per-class n sums to the test size",
        "office31: per-class n = the replica's test files per class",
        "office31: data module target (webcam) train split = official",
        "office31: data module target (webcam) test split = official",
        "office31: dabin report exit status",
        "office31: report task row Am→We: DANN BN | tllib",
    }
    assert "1 differ (e.g. bike: 2 vs 3)" in {got for *_, got, _ in checks.rows}


def test_a_missing_run_is_one_failed_row(rb: ModuleType, tmp_path: Path) -> None:
    checks = rb.Checks()
    rb.check_run(checks, rb.BENCHMARKS["office31"], _expected(rb), tmp_path, None, 1, None)
    assert [(name, ok) for name, _, _, ok in checks.rows] == [
        ("office31: dabin sweep exit status", False), ("office31 amazon->webcam: run finished (done, metrics.json)",
                                                       False)]


def test_expected_counts_come_from_the_replica_and_the_presets(rb: ModuleType, tmp_path: Path) -> None:
    from dabin.testing.replicas import make_replica

    replica = make_replica("office_31", tmp_path / "office31", per_class=1)
    expected = rb.expected_counts(rb.BENCHMARKS["office31"], replica)
    # Official sizes from the presets (the transductive protocol: every image), per class from the files.
    assert (expected.source_train, expected.target_train, expected.target_test) == (2817, 795, 795)
    assert len(expected.test_classes) == 31 and set(expected.test_classes.values()) == {1}
    checks = rb.Checks()
    rb.check_replica(checks, rb.BENCHMARKS["office31"], expected)
    # A one-image-per-class replica is not the release: its count row fails, its folder row passes.
    assert [ok for *_, ok in checks.rows] == [False, True]


@pytest.mark.parametrize("name", ["office31", "visda2017", "domainnet", "digits"])
def test_each_rehearsal_runs_a_task_of_its_spec(rb: ModuleType, name: str, tmp_path: Path) -> None:
    from dabin.report.published_da import PUBLISHED
    from dabin.sweep.spec import load_spec, narrow

    bench = rb.BENCHMARKS[name]
    spec = narrow(load_spec(REPO / "experiments" / name / bench.spec), methods=["dann"], norms=["bn"], seeds=[0],
                  tasks=[bench.task])
    assert len(spec.tasks) == 1
    assert bench.published in PUBLISHED[name].tasks
    arguments = [a for group, _ in rb.overrides(bench, tmp_path, 1, tmp_path / "w.pth") for a in group]
    assert arguments[:2] == ["--data.root", str(tmp_path)] and "--trainer.max_steps" in arguments
    assert "{weights}" not in arguments
