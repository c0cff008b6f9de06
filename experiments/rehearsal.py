"""Rehearse the paper's Office-Home path end to end, at full scale, on a replica: ``make rehearsal``.

What a user with the real data runs is run here unchanged, on stand-ins for what cannot be shipped:

1. a layout-faithful Office-Home replica (:func:`dabin.testing.officehome.make_officehome_replica`:
   every real path and count, ``Real World`` with a space, plus tiny, huge, grayscale, CMYK,
   EXIF-rotated and PNG-named-.jpg images), made once under ``OUT/data``;
2. a weights file laid out exactly like torchvision's published ``resnet18-f37072fd.pth``
   (random values; :func:`dabin.testing.weights.write_published_weights`), ``OUT/weights``;
3. ``dabin sweep experiments/officehome/sweep.yaml`` narrowed by the sweep's own filters to one
   seed, BIN, DANN on the 12 tasks and the 5 mixed-domain folds (17 runs), with ``--data.root``
   and ``--model.weights`` pointing at 1 and 2 and only the training cut short
   (``--trainer.max_steps``, no validation): 224-px crops, the full-width ResNet-18, the configs'
   batch sizes, and every image of every evaluated split tested (no ``limit_test_batches``);
   into ``OUT/sweep``, started afresh unless ``--resume``;
4. ``dabin report OUT/sweep``;
5. checks, printed as a table: every run finished; each DANN run tested exactly its target's 20%
   split and each mixed fold exactly its held-out images per domain, with the expected counts
   computed independently from the shipped file lists and the configs' split seeds (and the
   five folds summing to the real domain sizes 2,427 / 4,365 / 4,439 / 4,357); the report has
   every DANN BIN cell (Table 4) and every mixed BIN cell (Table 3) with the paper's number and
   with the value the runs measured.

Exit status 0 when every check passes, 1 otherwise. Usage::

    python experiments/rehearsal.py [--out runs/rehearsal] [--steps 1] [--workers 2] [--resume | --check-only]
    python experiments/rehearsal.py --tasks Ar-\\>Cl --folds 0      # a quick partial rehearsal

Evaluating the 24,945 test images (9,357 for the 12 DANN targets, all 15,588 once over the folds)
with the full-width BIN ResNet-18 at 224 px dominates the time; the README gives it as measured.
``--check-only`` re-checks a finished rehearsal in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "experiments" / "officehome" / "sweep.yaml"

if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from dabin.report.paper import PAPER_TABLE3, PAPER_TABLE4  # noqa: E402
from dabin.sweep.spec import load_spec, narrow  # noqa: E402
from datamodules.naming import format_task  # noqa: E402
from dabin.testing.officehome import make_officehome_replica  # noqa: E402
from dabin.testing.weights import write_published_weights  # noqa: E402
from datamodules.naming import domain_key  # noqa: E402
from datamodules.officehome import (  # noqa: E402
    ARCHIVE_FOLDER,
    OFFICE_HOME_COUNTS,
    OFFICE_HOME_DOMAINS,
    office_home_list,
)
from datamodules.splits import kfold_split, transfer_split  # noqa: E402
from datamodules.tree import DomainTree, Sample  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/rehearsal", help="work folder (data, weights, sweep, report)")
    parser.add_argument("--steps", type=int, default=1, help="training steps per run (default 1)")
    parser.add_argument("--workers", type=int, default=2,
                        help="runs at a time (default 2: each with one thread, which uses a 2-core CPU better "
                             "than one run with two)")
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader processes per loader (default 1)")
    parser.add_argument("--tasks", help="only these DANN tasks (sweep filter, e.g. Ar->Cl,Cl->Pr); default all 12")
    parser.add_argument("--folds", help="only these mixed-domain folds (sweep filter, e.g. 0,1); default all 5")
    parser.add_argument("--seed", type=int, default=0, help="the sweep seed to run (default 0)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the finished runs of an interrupted rehearsal (default: start the sweep afresh)")
    parser.add_argument("--check-only", action="store_true",
                        help="run no sweep: rewrite the report of OUT/sweep and check it")
    return parser


# --------------------------------------------------------------------------------------------
# Expected counts, from the shipped lists (not from what the data modules did)


def _data_settings(config: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(config.read_text())["data"]["init_args"])


def _list_samples(archive: Path) -> list[Sample]:
    """Samples of all four domains built from the official lists (labels as the lists give them)."""
    samples = []
    for index, domain in enumerate(OFFICE_HOME_DOMAINS):
        for path, label in office_home_list(domain):
            folder, key = path.split("/", 1)
            samples.append(Sample(str(archive / folder), key, label, index))
    return samples


def expected_counts(archive: Path, dann_seed: int, kfold_seed: int, k: int) -> dict[str, Any]:
    """Test-split size per domain (80/20) and held-out count per fold and domain (k-fold)."""
    samples = _list_samples(archive)
    transfer = {}
    for index, domain in enumerate(OFFICE_HOME_DOMAINS):
        own = [s for s in samples if s.domain == index]
        train, test = transfer_split(own, domain, dann_seed)
        transfer[domain] = {"train": len(train), "test": len(test)}
    folds = [{domain: sum(samples[i].domain == index for i in part) for index, domain in enumerate(OFFICE_HOME_DOMAINS)}
             for part in kfold_split(samples, k, kfold_seed)]
    return {"transfer": transfer, "folds": folds}


# --------------------------------------------------------------------------------------------
# Checks


class Checks:
    """Rows of the pass/fail table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, bool]] = []

    def add(self, name: str, expected: Any, got: Any, ok: bool | None = None) -> bool:
        passed = (expected == got) if ok is None else ok
        self.rows.append((name, str(expected), str(got), bool(passed)))
        return bool(passed)

    @property
    def failed(self) -> int:
        return sum(not ok for *_, ok in self.rows)

    def print(self) -> None:
        widths = [max(len(row[i]) for row in [("check", "expected", "got", True), *self.rows]) for i in range(3)]
        widths = [min(w, 60) for w in widths]
        print(f"{'check':<{widths[0]}}  {'expected':<{widths[1]}}  {'got':<{widths[2]}}  result")
        for name, expected, got, ok in self.rows:
            print(f"{name:<{widths[0]}}  {expected:<{widths[1]}}  {got:<{widths[2]}}  {'PASS' if ok else 'FAIL'}")
        print(f"{len(self.rows) - self.failed} of {len(self.rows)} checks passed"
              + (f", {self.failed} FAILED" if self.failed else ""))


def _runs(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """The sweep's run folders by job name, with their job.json."""
    runs = {}
    for job_file in sweep_dir.glob("*/job.json"):
        try:
            runs[job_file.parent.name] = json.loads(job_file.read_text())
        except ValueError:
            continue
    return runs


def _metrics(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def _test_entry(metrics: dict[str, Any] | None, domain: str) -> dict[str, Any] | None:
    for name, entry in (metrics or {}).get("test", {}).items():
        if domain_key(name) == domain_key(domain):
            return entry
    return None


def _table(report: str, title_start: str) -> list[list[str]]:
    """The first Markdown table after the heading that starts with ``title_start``, as cell rows."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("## ") and title_start in line), None)
    if start is None:
        return []
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return [row for row in rows if not all(set(cell) <= {"-", " "} for cell in row)]


def _cell(row: Sequence[str], index: int | None) -> str | None:
    return row[index] if index is not None and index < len(row) else None


def _number(cell: str) -> float | None:
    match = re.match(r"\**(-?\d+(?:\.\d+)?)", cell)
    return float(match.group(1)) if match else None


def check_all(checks: Checks, sweep_dir: Path, replica: Path, selected_tasks: Sequence[tuple[str, str]],
              selected_folds: Sequence[int], seed: int, sweep_status: int | None) -> None:
    dann = _data_settings(SPEC.parent / "dann.yaml")
    mixed = _data_settings(SPEC.parent / "mixed.yaml")
    k = int(mixed.get("k", 5))
    archive = replica / ARCHIVE_FOLDER
    expected = expected_counts(archive, int(dann.get("seed", 0)), int(mixed.get("seed", 0)), k)

    # The replica: what the data modules will scan.
    tree = DomainTree.scan(replica)
    checks.add("replica: domains and images per domain (scan)", OFFICE_HOME_COUNTS, tree.counts())
    checks.add("replica: classes", 65, tree.num_classes)
    for domain in OFFICE_HOME_DOMAINS:
        split = expected["transfer"][domain]
        total = split["train"] + split["test"]
        checks.add(f"lists: {domain} 80/20 split covers the domain", OFFICE_HOME_COUNTS[domain], total)
        checks.add(f"lists: {domain} test split is 20% (±1 per class)", f"{0.2 * total:.0f} ± 65", split["test"],
                   ok=abs(split["test"] - 0.2 * total) <= 65)
    for domain in OFFICE_HOME_DOMAINS:
        checks.add(f"lists: {domain} held out once over the {k} folds", OFFICE_HOME_COUNTS[domain],
                   sum(fold[domain] for fold in expected["folds"]))

    if sweep_status is not None:
        checks.add("dabin sweep exit status", 0, sweep_status)
    runs = _runs(sweep_dir)
    measured_dann: dict[str, float] = {}
    measured_mixed: dict[str, list[float]] = {domain: [] for domain in OFFICE_HOME_DOMAINS}
    for source, target in selected_tasks:
        task = format_task(source, target)
        names = [n for n, job in runs.items() if job.get("method") == "dann" and job.get("norm") == "bin"
                 and job.get("seed") == seed and job.get("source") == source and job.get("target") == target]
        done = [n for n in names if (sweep_dir / n / "done").is_file()]
        state = "done" if done else "not done" if names else "no run"
        if not checks.add(f"DANN {task}: run finished", "done", state):
            continue
        entry = _test_entry(_metrics(sweep_dir / done[0]), target)
        n = entry.get("n") if entry else None
        checks.add(f"DANN {task}: n tested = {target} test split", expected["transfer"][target]["test"], n)
        if entry:
            measured_dann[task] = float(entry["accuracy"])
    fold_n: dict[int, dict[str, Any]] = {}
    for fold in selected_folds:
        names = [n for n, job in runs.items() if job.get("method") == "mixed" and job.get("norm") == "bin"
                 and job.get("seed") == seed and job.get("fold") == fold]
        done = [n for n in names if (sweep_dir / n / "done").is_file()]
        state = "done" if done else "not done" if names else "no run"
        if not checks.add(f"mixed fold {fold}: run finished", "done", state):
            continue
        metrics = _metrics(sweep_dir / done[0])
        fold_n[fold] = {}
        for domain in OFFICE_HOME_DOMAINS:
            entry = _test_entry(metrics, domain)
            fold_n[fold][domain] = entry.get("n") if entry else None
        checks.add(f"mixed fold {fold}: n tested per domain = held-out", expected["folds"][fold], fold_n[fold])
    if len(fold_n) == k:
        for domain in OFFICE_HOME_DOMAINS:
            total = sum(fold_n[f][domain] or 0 for f in fold_n)
            checks.add(f"mixed: {domain} tested over the {k} folds", OFFICE_HOME_COUNTS[domain], total)

    # The report: every selected cell, with the measured value and the paper's number beside it.
    report_file = sweep_dir / "report.md"
    report = report_file.read_text() if report_file.is_file() else ""
    checks.add("report.md written", "yes", "yes" if report else "no")
    table4 = _table(report, "Table 4")
    header = table4[0] if table4 else []
    column = header.index("DANN BIN") if "DANN BIN" in header else None
    paper_column = header.index("Paper DANN BIN") if "Paper DANN BIN" in header else None
    checks.add("report Table 4: DANN BIN and Paper DANN BIN columns", "both",
               "both" if column is not None and paper_column is not None else f"header {header}")
    by_task = {row[0]: row for row in table4[1:]}
    for source, target in selected_tasks:
        task = format_task(source, target)
        row = by_task.get(task, [])
        cell, paper = _cell(row, column), _cell(row, paper_column)
        value = _number(cell or "")
        want = measured_dann.get(task)
        checks.add(f"report Table 4 {task}: BIN cell | paper", f"{want:.2f} | {PAPER_TABLE4['bin'][task]:.2f}"
                   if want is not None else f"? | {PAPER_TABLE4['bin'][task]:.2f}", f"{cell} | {paper}",
                   ok=value is not None and want is not None and abs(value - want) < 0.006
                   and paper == f"{PAPER_TABLE4['bin'][task]:.2f}")
    # The report's Table 3 cell averages every finished fold in the folder (also folds not selected now).
    for name, job in runs.items():
        if (job.get("method"), job.get("norm"), job.get("seed")) == ("mixed", "bin", seed) \
                and (sweep_dir / name / "done").is_file():
            metrics = _metrics(sweep_dir / name)
            for domain in OFFICE_HOME_DOMAINS:
                entry = _test_entry(metrics, domain)
                if entry:
                    measured_mixed[domain].append(float(entry["accuracy"]))
    table3 = _table(report, "Table 3")
    header3 = table3[0] if table3 else []
    rows3 = {row[0]: row for row in table3[1:]}
    for domain in OFFICE_HOME_DOMAINS:
        index = header3.index(domain) if domain in header3 else None
        cell, paper = (_cell(rows3.get(row, []), index) for row in ("BIN", "Paper BIN"))
        values = measured_mixed[domain]
        want = sum(values) / len(values) if values else None
        value = _number(cell or "")
        checks.add(f"report Table 3 BIN {domain}: cell | paper",
                   f"{want:.2f} (n={len(values)}) | {PAPER_TABLE3['bin'][domain]:.2f}" if want is not None
                   else f"? | {PAPER_TABLE3['bin'][domain]:.2f}", f"{cell} | {paper}",
                   ok=value is not None and want is not None and abs(value - want) < 0.006
                   and f"n={len(values)}" in (cell or "") and paper == f"{PAPER_TABLE3['bin'][domain]:.2f}")


# --------------------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out).resolve()
    spec = load_spec(SPEC)
    selected = narrow(spec, methods=["dann", "mixed"], norms=["bin"], seeds=[args.seed],
                      tasks=None if args.tasks is None else [t.strip() for t in args.tasks.split(",") if t.strip()],
                      folds=None if args.folds is None else [int(f) for f in args.folds.split(",") if f.strip()])

    step = time.perf_counter()
    replica = make_officehome_replica(out / "data", seed=0)
    print(f"[rehearsal] replica {replica} ({sum(OFFICE_HOME_COUNTS.values())} images): "
          f"{time.perf_counter() - step:.1f} s", flush=True)
    weights = write_published_weights(out / "weights" / "resnet18-f37072fd.pth", seed=0)
    print(f"[rehearsal] published-layout weights {weights}", flush=True)

    sweep_dir = out / "sweep"
    if sweep_dir.exists() and not args.resume and not args.check_only:
        shutil.rmtree(sweep_dir)
    overrides = ["--data.root", str(replica), "--model.weights", str(weights),
                 "--trainer.max_steps", str(args.steps),
                 # Only training is cut short: no validation passes, but every test image is evaluated.
                 "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                 "--data.num_workers", str(args.num_workers)]
    command = [sys.executable, "-m", "dabin", "sweep", str(SPEC), "--out", str(sweep_dir),
               "--methods", "dann,mixed", "--norms", "bin", "--seeds", str(args.seed),
               "--workers", str(args.workers)]
    if args.tasks:
        command += ["--tasks", args.tasks]
    if args.folds:
        command += ["--folds", args.folds]
    command += ["--", *overrides]
    step = time.perf_counter()
    sweep_status = None
    if not args.check_only:
        print(f"[rehearsal] {' '.join(command)}", flush=True)
        sweep_status = subprocess.call(command, cwd=REPO)
    sweep_seconds = time.perf_counter() - step
    print(f"[rehearsal] sweep: exit status {sweep_status}, {_minutes(sweep_seconds)}", flush=True)
    report_status = subprocess.call([sys.executable, "-m", "dabin", "report", str(sweep_dir)], cwd=REPO)

    checks = Checks()
    check_all(checks, sweep_dir, replica, selected.tasks, selected.folds, args.seed, sweep_status)
    checks.add("dabin report exit status", 0, report_status)
    _print_timings(sweep_dir)
    print()
    checks.print()
    total = time.perf_counter() - started
    print(f"[rehearsal] total wall time {_minutes(total)} (sweep {_minutes(sweep_seconds)})")
    return 1 if checks.failed else 0


def _print_timings(sweep_dir: Path) -> None:
    """Seconds per run (from each run's ``done`` marker): DANN runs and mixed folds."""
    seconds: dict[str, list[float]] = {"dann": [], "mixed": []}
    for name, job in _runs(sweep_dir).items():
        try:
            done = json.loads((sweep_dir / name / "done").read_text())
        except (OSError, ValueError):
            continue
        seconds.setdefault(job.get("method", "?"), []).append(float(done.get("seconds", math.nan)))
    for method, values in seconds.items():
        if values:
            print(f"[rehearsal] {method}: {len(values)} runs, {min(values):.0f}-{max(values):.0f} s each "
                  f"(mean {sum(values) / len(values):.0f} s, sum {_minutes(sum(values))})")


if __name__ == "__main__":
    sys.exit(main())
