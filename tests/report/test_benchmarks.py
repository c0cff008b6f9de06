"""Reports on the benchmarks with published numbers: tllib's columns, VisDA-2017's mean class accuracy, per class."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dabin.record import PerClass, Run, RunRecord
from dabin.record import TestResult as Result
from dabin.report.benchmarks import identify_benchmark
from dabin.report.build import build_report
from dabin.report.inputs import Sweep
from dabin.report.published_da import VISDA_CLASSES
from dabin.report.sections import classes, transfer
from dabin.report.sections.base import ReportInputs
from dabin.report.stats import mean_ci
from datamodules.officehome import OFFICE_HOME_DOMAINS

DOMAINNET = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")


@pytest.mark.parametrize(("dataset", "domains", "expected"), [
    ("custom", ["Synthetic", "Real"], "visda2017"),
    ("custom", ["train", "validation"], "visda2017"),  # VisDA-2017's own folder names
    ("VisDA-2017", [], "visda2017"),
    ("custom", ["amazon", "dslr", "webcam"], "office31"),
    ("custom", ["A", "W"], "office31"),
    ("custom", list(DOMAINNET), "domainnet"),
    ("custom", ["real", "sketch"], "domainnet"),
    ("custom", ["MNIST", "USPS", "SVHN"], "digits"),
    ("officehome", list(OFFICE_HOME_DOMAINS), None),  # the BIN paper's numbers, not tllib's
    ("embedded", ["Ink", "Neon", "Photo", "Sketch"], None),  # Sketch alone does not make DomainNet
    ("custom", ["real"], None),
])
def test_which_benchmark_a_sweep_ran_on(dataset: str, domains: list[str], expected: str | None) -> None:
    assert identify_benchmark(dataset, domains) == expected


def _per_class(correct: list[int], n: list[int], names: tuple[str, ...]) -> PerClass:
    return PerClass(classes=names, n=tuple(n), correct=tuple(correct))


def _run(method: str, source: str, target: str, seed: int, accuracy: float,
         per_class: PerClass | None = None) -> Run:
    result = Result(accuracy, sum(per_class.n) if per_class else 100,
                    class_accuracy=per_class.mean_accuracy() if per_class else None, per_class=per_class)
    return Run(key=f"{method}-{source}-{target}-{seed}", line=0, method=method, norm="bn", source=source,
               target=target, seed=seed, fold=None, status="ok", reason="", test={target: result}, model_selection="")


def _inputs(domains: tuple[str, ...], runs: list[Run]) -> ReportInputs:
    sweep = Sweep(folder=Path("."), name="b", dataset="custom", domains=domains, office_home=False, runs=tuple(runs),
                  has_manifest=True, from_records=True)
    return ReportInputs(sweep=sweep, headline=sweep, candidates={}, selection=None)


def _visda_runs(source: str = "Synthetic", target: str = "Real") -> list[Run]:
    # 10 images per class but the knife class has 30 (unequal sizes); seed 1 gets one more right per class.
    counts = [10] * 12
    counts[5] = 30
    runs = []
    for seed in (0, 1):
        correct = [min(count, 5 + i % 4 + seed) for i, count in enumerate(counts)]
        per_class = _per_class(correct, counts, VISDA_CLASSES)
        runs.append(_run("dann", source, target, seed, 100 * sum(correct) / sum(counts), per_class))
    return runs


def _row(lines: list[str], start: str) -> list[str]:
    return next(line for line in lines if line.startswith(start)).strip("| ").split(" | ")


def test_visda_table4_has_the_mean_class_accuracy_beside_tllibs() -> None:
    runs = _visda_runs()
    part = transfer.section(_inputs(("Synthetic", "Real"), runs))
    header = _row(part.lines, "| Task |")
    assert header == ["Task", "DANN BN", "tllib DANN"]
    overall = [r.target_result().accuracy for r in runs]
    means = [r.target_result().class_accuracy for r in runs]
    assert _row(part.lines, "| Sy→Re |") == ["Sy→Re", f"{mean_ci(overall).format()} (n=2)", "74.9"]
    assert _row(part.lines, "| Sy→Re mean class |") == ["Sy→Re mean class", f"{mean_ci(means).format()} (n=2)",
                                                         "79.5"]
    text = "\n".join(part.lines)
    assert "VisDA-2017's metric" in text and "ResNet-101 pretrained on ImageNet" in text
    assert "DANN 57.4" in text  # the DANN paper's number as tllib quotes it
    rows = list(csv.DictReader(io.StringIO(part.files["table4.csv"].decode())))
    assert rows[0]["published"] == "74.9" and rows[0]["published_class"] == "79.5"
    assert float(rows[0]["class_mean"]) == pytest.approx(sum(means) / 2, abs=1e-4)


def test_visda_per_class_table_and_csv_average_the_seeds() -> None:
    runs = _visda_runs()
    part = classes.section(_inputs(("Synthetic", "Real"), runs))
    header = _row(part.lines, "| Method |")
    assert header[2:5] == ["plane", "bcycl", "bus"] and header[-3:] == ["Mean class", "Overall", "Seeds"]
    knife = [r.target_result().per_class.accuracy[5] for r in runs]
    ours = _row(part.lines, "| DANN | BN |")
    assert ours[2 + 5] == f"{sum(knife) / 2:.1f}" and ours[-1] == "2"
    assert _row(part.lines, "| tllib DANN | BN |")[2:4] == ["93.5", "74.3"]
    rows = list(csv.DictReader(io.StringIO(part.files[classes.PER_CLASS].decode())))
    assert len(rows) == 12 and rows[5]["class"] == "knife" and rows[5]["n"] == "30.0" and rows[5]["seeds"] == "2"
    assert float(rows[5]["accuracy"]) == pytest.approx(sum(knife) / 2, abs=1e-4)


def test_domainnet_has_per_target_rows_and_published_subsets() -> None:
    names = ("a", "b")
    runs = [_run("dann", "clipart", "painting", 0, 40.0, _per_class([3, 1], [4, 2], names)),
            _run("dann", "real", "painting", 0, 50.0, _per_class([1, 1], [2, 2], names)),
            _run("dann", "clipart", "infograph", 0, 20.0, _per_class([0, 1], [2, 2], names))]
    part = transfer.section(_inputs(DOMAINNET, runs))
    assert _row(part.lines, "| Cl→Pa |")[-1] == "37.9" and _row(part.lines, "| Cl→In |")[-1] == "—"
    # tllib publishes 2 of these 3 tasks: its Avg is their mean, marked.
    assert _row(part.lines, "| **Avg** |")[-1] == f"{(37.9 + 50.8) / 2:.1f}*"
    assert _row(part.lines, "| Avg →Pa |")[1:] == ["**45.00**", f"{(37.9 + 50.8) / 2:.1f}"]
    assert _row(part.lines, "| Avg →In |")[1:] == ["**20.00**", "—"]
    assert "not its printed average" in "\n".join(part.lines)
    rows = list(csv.DictReader(io.StringIO(classes.section(_inputs(DOMAINNET, runs)).files[classes.PER_CLASS]
                                           .decode())))
    assert [(r["task"], r["class"], r["accuracy"]) for r in rows[:2]] == [("Cl→Pa", "a", "75.0"),
                                                                          ("Cl→Pa", "b", "50.0")]


def test_office31_full_table_shows_tllibs_printed_average() -> None:
    tasks = [("amazon", "webcam"), ("dslr", "webcam"), ("webcam", "dslr"), ("amazon", "dslr"), ("dslr", "amazon"),
             ("webcam", "amazon")]
    runs = [_run(method, s, t, 0, 80.0) for method in ("source_only", "dann", "bnm") for s, t in tasks]
    part = transfer.section(_inputs(("amazon", "dslr", "webcam"), runs))
    # BNM has no published Office-31 row: no column for it.
    assert _row(part.lines, "| Task |")[-2:] == ["tllib Source only", "tllib DANN"]
    assert _row(part.lines, "| Am→We |")[-2:] == ["75.8", "91.4"]
    assert _row(part.lines, "| **Avg** |")[-2:] == ["79.5", "86.1"]
    assert "not its printed average" not in "\n".join(part.lines)
    assert classes.section(_inputs(("amazon", "dslr", "webcam"), runs)).lines == []  # per class: VisDA, DomainNet


def test_other_datasets_get_no_benchmark_rows() -> None:
    runs = [_run("dann", "Ink", "Neon", 0, 60.0, _per_class([1, 1], [2, 2], ("a", "b")))]
    part = transfer.section(_inputs(("Ink", "Neon", "Photo", "Sketch"), runs))
    text = "\n".join(part.lines)
    assert "tllib" not in text and "mean class" not in text
    assert part.files["table4.csv"].decode().splitlines()[0].endswith(",paper")
    assert classes.section(_inputs(("Ink", "Neon", "Photo", "Sketch"), runs)).lines == []


def test_a_visda_sweep_folder_reports_from_its_records(tmp_path: Path) -> None:
    # The release's folder names, as dabin's VisDA-2017 sweep names the domains.
    runs = _visda_runs("train", "validation")
    jobs = []
    for run in runs:
        folder = tmp_path / run.key
        folder.mkdir()
        job = {"name": run.key, "method": run.method, "norm": run.norm, "seed": run.seed, "source": run.source,
               "target": run.target, "fold": None, "hparams": {}}
        (folder / "job.json").write_text(json.dumps(job))
        RunRecord(test=run.test, average=run.target_result().accuracy, method=run.method, norm=run.norm,
                  source=run.source, target=run.target, seed=run.seed).write(folder)
        (folder / "done").write_text("")
        jobs.append(job)
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "visda", "dataset": "custom",
                                                     "domains": ["train", "validation"], "jobs": jobs}))
    report = build_report(tmp_path)
    text = report.files["report.md"].decode()
    assert "| Tr→Va |" in text and text.split("| Tr→Va |")[1].split("\n")[0].endswith("| 74.9 |")
    assert "| Tr→Va mean class |" in text and "### Tr→Va per class" in text
    assert "| tllib DANN | BN | 93.5 |" in text
    assert text.index("## Table 4") < text.index("## Per-class accuracy")
    assert classes.PER_CLASS in report.files
