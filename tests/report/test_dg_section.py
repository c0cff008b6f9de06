"""The report's domain-generalization section: its tables are the rules' choices, averaged over seeds."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dabin.record import AccuracyPoint, Run
from dabin.record import TestResult as Result
from dabin.report.inputs import Sweep
from dabin.report.sections.base import ReportInputs
from dabin.report.sections.generalization import DG_CSV, section
from dabin.report.stats import mean_ci

DOMAINS = ("Art", "Clipart", "Product", "Real World")


def _run(method: str, test: str, seed: int, val: float, acc_in: float, acc_out: float, trained: tuple[str, ...]) -> Run:
    accuracy = {f"{d}/out": Result(val, 10) for d in trained}
    accuracy |= {f"{test}/in": Result(acc_in, 40), f"{test}/out": Result(acc_out, 10)}
    points = (AccuracyPoint(step=50, accuracy={k: Result(0.0, r.n) for k, r in accuracy.items()}),
              AccuracyPoint(step=100, accuracy=accuracy))
    whole = (acc_in * 40 + acc_out * 10) / 50
    return Run(key=f"{method}-{test}-{seed}", line=0, method=method, norm="bn", source=",".join(trained), target=test,
               seed=seed, fold=None, status="ok", reason="", test={test: Result(whole, 50), **accuracy},
               model_selection="", accuracy_points=points)


def _inputs(runs: list[Run]) -> ReportInputs:
    sweep = Sweep(folder=Path("."), name="dg", dataset="officehome", domains=DOMAINS, office_home=True,
                  runs=tuple(runs), has_manifest=True, from_records=True)
    return ReportInputs(sweep=sweep, headline=sweep, candidates={}, selection=None)


def test_tables_show_each_rule_and_domainbeds_numbers() -> None:
    runs = [_run("erm", test, seed, 80.0, 50.0 + seed + i, 90.0, tuple(d for d in DOMAINS if d != test))
            for i, test in enumerate(DOMAINS) for seed in (0, 1, 2)]
    part = section(_inputs(runs))
    text = "\n".join(part.lines)
    assert "### Selection: training-domain validation" in text
    assert "### Selection: test-domain validation (oracle)" in text and "uses the test domain's labels" in text
    # Art's cell: the last checkpoint (the first scores 0) of every seed, every image of Art.
    whole = [((50.0 + s) * 40 + 90.0 * 10) / 50 for s in (0, 1, 2)]
    row = next(line for line in part.lines if line.startswith("| ERM | BN |"))
    assert row.split(" | ")[2] == f"{mean_ci(whole).format(1)} (n=3)"
    # No leave-one-out runs: that rule's cells are empty, not made up.
    lodo = part.lines[part.lines.index("### Selection: leave-one-domain-out cross-validation"):
                      part.lines.index("### Selection: test-domain validation (oracle)")]
    assert not any(line.startswith("| ERM | BN |") for line in lodo)
    assert "Without the runs this rule needs (a sweep with `leave_one_domain_out: true`): ERM BN." in lodo
    # Office-Home: DomainBed's published ERM row beside ours.
    assert "| DomainBed ERM | BN | 61.3 | 52.4 | 75.8 | 76.6 | 66.5 |" in text
    # tllib's ERM row under training-domain validation only (its rule), its setting named; no IBN
    # or MixStyle row without such runs in the sweep.
    training = part.lines[:part.lines.index("### Selection: leave-one-domain-out cross-validation")]
    assert "| tllib ERM | BN | 68.3 | 55.9 | 78.9 | 80.0 | 70.8 |" in training
    assert text.count("| tllib ") == 1 and "tllib rows: tllib's ResNet-50" in text
    rows = list(csv.DictReader(io.StringIO(part.files[DG_CSV].decode())))
    oracle = [r for r in rows if r["rule"] == "oracle" and r["test_domain"] == "Art"]
    assert [float(r["test"]) for r in oracle] == [50.0, 51.0, 52.0]  # the oracle reports the 80 % part


def test_an_ibn_sweep_gets_tllibs_ibn_net_row() -> None:
    import dataclasses

    runs = [dataclasses.replace(_run("erm", test, 0, 80.0, 50.0, 90.0, tuple(d for d in DOMAINS if d != test)),
                                norm="ibn_a") for test in DOMAINS]
    text = "\n".join(section(_inputs(runs)).lines)
    assert "| tllib ERM | IBN-b | 67.4 | 55.2 | 77.3 | 79.6 | 69.9 |" in text


def test_no_dg_runs_no_section() -> None:
    assert section(_inputs([])).lines == []


def test_multi_source_office_home_tasks_get_no_paper_column() -> None:
    from dabin.report.tables import transfer_table

    def transfer(source: str, target: str) -> Run:
        return Run(key=f"{source}-{target}", line=0, method="dann", norm="bin", source=source, target=target, seed=0,
                   fold=None, status="ok", reason="", test={target: Result(50.0, 10)}, model_selection="")

    multi = _inputs([transfer("Clipart,Product,Real World", "Art")]).sweep
    assert transfer_table(multi).paper is None and not transfer_table(multi).paper_subset
    single = _inputs([transfer("Art", "Clipart")]).sweep
    assert transfer_table(single).paper is not None and transfer_table(single).paper_subset


def test_terra_incognita_columns_are_domainbeds() -> None:
    from dabin.report.sections.generalization import _column_names

    domains = ("location_100", "location_38", "location_43", "location_46")
    assert _column_names("terra_incognita", domains, domains[1:]) == ["L38", "L43", "L46"]
    assert _column_names(None, ("Ink", "Neon"), ("Neon",)) == ["Ne"]
