"""``python -m dabin.demo`` (``make demo``): the main job on the embedded dataset, offline, on a CPU.

Renders the embedded dataset and makes the embedded pretrained backbone if they are not cached
(:mod:`dabin.models.pretrained`, with all the cores, before the workers start), runs the demo sweep
(``experiments/demo/sweep.yaml``: DANN and source-only on the 12 tasks with BN and BIN, and the
5-fold mixed-domain experiment with BN and BIN), resuming if it was interrupted, then writes the
report and prints its path. Arguments are passed to ``dabin sweep`` (e.g. ``--workers 1``).

Where the time went: each phase's wall time (the install's, as ``make`` measured it, when it ran
in this invocation), the runs' fitting, evaluation-point and testing seconds summed from their
records, and how many processes and threads ran, are printed at the end, written to
``timings.json`` beside the report (:class:`dabin.record.Timings`) and shown in its head.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dabin.cli import main as dabin
from dabin.errors import DabinError
from dabin.models.pretrained import embedded_weights
from dabin.record import Manifest, Timings, read_runs
from dabin.sweep.spec import load_spec

#: The demo spec, found from the source checkout (``make demo`` runs from it).
SPEC = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "sweep.yaml"
#: Where ``make`` leaves the seconds its install took (written only when it installed).
INSTALL_SECONDS = Path(__file__).resolve().parents[1] / ".venv" / ".install_seconds"


def _install_seconds() -> float | None:
    """The install's seconds if ``make`` installed in this invocation (its file is then fresh), else None."""
    try:
        seconds = float(INSTALL_SECONDS.read_text())
    except (OSError, ValueError):
        return None
    INSTALL_SECONDS.unlink(missing_ok=True)  # read once: a later demo did not install
    return seconds


def _workers(sweep_args: Sequence[str], default: int) -> int:
    """The sweep's ``--workers`` among the passed arguments, else the spec's."""
    for index, arg in enumerate(sweep_args):
        if arg == "--workers" and index + 1 < len(sweep_args) and sweep_args[index + 1].isdigit():
            return int(sweep_args[index + 1])
        if arg.startswith("--workers=") and arg.split("=", 1)[1].isdigit():
            return int(arg.split("=", 1)[1])
    return default


def _timings(out: Path, phases: dict[str, float], workers: int) -> Timings:
    """The phases, with the finished runs' own seconds summed from their records."""
    manifest = Manifest.read(out)
    runs = [run for run in read_runs(out, manifest.planned(out) if manifest else []) if run.status == "ok"]
    cpus = os.cpu_count() or 1
    return Timings(phases=dict(phases), fit_s=math.fsum(run.time_s or 0.0 for run in runs),
                   evaluation_s=math.fsum(run.evaluation_s or 0.0 for run in runs),
                   test_s=math.fsum(run.test_s or 0.0 for run in runs), runs=len(runs), processes=workers,
                   threads=max(1, cpus // max(1, workers)), cpus=cpus)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo sweep and the report; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m dabin.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    args, sweep_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if not SPEC.is_file():
        print(f"dabin demo: error: the demo spec {SPEC} is missing; run from a dabin checkout", file=sys.stderr)
        return 2
    from datamodules.embedded import embedded_root

    out = Path(args.out)
    phases: dict[str, float] = {}
    install = _install_seconds()
    if install is not None:
        phases["install"] = install
    for phase, step in (("dataset", embedded_root), ("pretraining", embedded_weights)):
        started = time.monotonic()
        step()
        phases[phase] = time.monotonic() - started
    started = time.monotonic()
    status = dabin(["sweep", str(SPEC), "--out", str(out), *sweep_args])
    phases["runs"] = time.monotonic() - started
    if status == 130:
        return status
    workers = _workers(sweep_args, load_spec(SPEC).workers)
    # Written before the report, so its head shows them; again after, with the report's own time.
    _timings(out, phases, workers).write(out)
    started = time.monotonic()
    report_status = dabin(["report", str(out)])
    phases["report"] = time.monotonic() - started
    timings = _timings(out, phases, workers)
    timings.write(out)
    if report_status == 0:
        print(f"\ndemo finished in {timings.total_s / 60:.1f} min; report: {(out / 'report.md').resolve()}")
        print(f"where the time went: {timings.text()}")
    return status or report_status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DabinError as error:
        print(f"dabin demo: error: {error}", file=sys.stderr)
        sys.exit(2)
