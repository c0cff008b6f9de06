"""Benchmark: a small ``dabin sweep`` with long-lived trainer workers against a fresh process per run.

The same sweep (DANN on the embedded digits, BN and BIN on three tasks: 6 short runs, 2 workers)
runs with the default (one worker process per slot, which imports torch/Lightning and loads the
compiled BIN kernels once) and with ``--process-per-run`` (a fresh ``python -m dabin fit`` per
run), each into a new folder; the modes alternate so drifts in machine load hit both alike, and
the median wall time of the repeats is reported, with the average ``seconds`` of a run (from its
``done`` marker). The accuracies of the two modes are compared too: they must be identical.

Usage::

    python experiments/bench_sweep_workers.py [--repeats 2] [--steps 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "demo" / "dann.yaml"
SPEC = """\
name: bench-workers
dataset: embedded
out: unused
configs: {{dann: {config}}}
axes:
  methods: [dann]
  norms: [bn, bin]
  tasks: [In→Ne, Ne→Ph, Ph→Sk]
  seeds: [0]
"""


def sweep(spec: Path, out: Path, workers: int, steps: int,
          process_per_run: bool) -> tuple[float, float, dict[str, str]]:
    """Run the sweep; returns its wall time, a run's mean time and the accuracies by run."""
    command = [sys.executable, "-m", "dabin", "sweep", str(spec), "--out", str(out), "--workers", str(workers),
               *(["--process-per-run"] if process_per_run else []), "--", "--trainer.max_steps", str(steps),
               "--trainer.limit_val_batches", "0", "--trainer.limit_test_batches", "4"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    runs = [json.loads(done.read_text())["seconds"] for done in out.glob("*/done")]
    with open(out / "results.csv", newline="") as handle:
        accuracies = {row["run"]: row["accuracy"] for row in csv.DictReader(handle)}
    return wall, statistics.mean(runs), accuracies


def main() -> None:
    """Run both modes ``--repeats`` times and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    modes = {"workers (default)": False, "--process-per-run": True}
    times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "sweep.yaml"
        spec.write_text(SPEC.format(config=CONFIG))
        for repeat in range(args.repeats):
            for mode, process_per_run in modes.items():
                out = Path(folder) / f"{'fresh' if process_per_run else 'workers'}{repeat}"
                wall, run, results[mode] = sweep(spec, out, args.workers, args.steps, process_per_run)
                times[mode].append((wall, run))
                print(f"repeat {repeat}: {mode:<18} sweep {wall:6.1f} s, a run {run:5.1f} s", flush=True)
    print(f"\n6 runs of {args.steps} steps, {args.workers} workers; median of {args.repeats}:")
    for mode, values in times.items():
        print(f"  {mode:<18} sweep {statistics.median(w for w, _ in values):6.1f} s, "
              f"a run {statistics.median(r for _, r in values):5.1f} s")
    same = len({tuple(sorted(accuracies.items())) for accuracies in results.values()}) == 1
    print(f"  accuracies identical in both modes: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
