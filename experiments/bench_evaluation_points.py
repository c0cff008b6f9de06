"""Benchmark: what evaluation points cost a demo run (5 points against none), side by side.

The demo's DANN run (``experiments/demo/dann.yaml``: the pretrained stand-in, BIN, 150 steps,
32+32 images a step) is fitted with ``--model.evaluation_points 0`` and with the default 5,
alternating so drifts in machine load hit both alike. Reported: the median fitting time
(``metrics.json`` ``time_s``) of each, their difference and ratio, and whether the two runs of a
pair reached the same test accuracy (points must not change what training computes).

Usage::

    python experiments/bench_evaluation_points.py [--repeats 3] [--task Ph-\\>Sk]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from dabin.cli import main as dabin
from dabin.record import RunRecord

CONFIG = Path(__file__).resolve().parent / "demo" / "dann.yaml"


def fit(folder: Path, points: int, task: str) -> RunRecord:
    """One demo run in-process; returns its record."""
    status = dabin(["fit", "-c", str(CONFIG), "--data.task", task, "--model.evaluation_points", str(points),
                    "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(folder)])
    if status != 0:
        raise SystemExit(f"the run with {points} points failed (exit {status})")
    return RunRecord.read(folder)


def main() -> None:
    """Fit both settings ``--repeats`` times, alternating, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task", default="Ph->Sk")
    args = parser.parse_args()
    times: dict[int, list[float]] = {0: [], 5: []}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        fit(Path(tmp) / "warm-up", 0, args.task)  # embedded data, weights and kernels made once
        for repeat in range(args.repeats):
            records = {}
            for points in (0, 5) if repeat % 2 == 0 else (5, 0):
                records[points] = fit(Path(tmp) / f"r{repeat}-p{points}", points, args.task)
                times[points].append(float(records[points].time_s or 0.0))
            same &= records[0].average == records[5].average
    plain, probed = statistics.median(times[0]), statistics.median(times[5])
    print(f"fit time, median of {args.repeats}: 0 points {plain:.1f} s, 5 points {probed:.1f} s; "
          f"difference {probed - plain:+.1f} s, ratio {probed / plain:.2f}")
    print(f"same test accuracy with and without points in every pair: {same}")


if __name__ == "__main__":
    main()
