"""``python -m dabin.demo`` (``make demo``): the main job on the embedded dataset, offline, on a CPU.

Makes the embedded pretrained backbone if it is not cached (:mod:`dabin.models.pretrained`, with
all the cores, before the workers start), runs the demo sweep (``experiments/demo/sweep.yaml``:
DANN and source-only on the 12 tasks with BN and BIN, and the 5-fold mixed-domain experiment with
BN and BIN), resuming if it was interrupted, then writes the report and prints its path. Arguments
are passed to ``dabin sweep`` (e.g. ``--workers 1``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dabin.cli import main as dabin
from dabin.errors import DabinError
from dabin.models.pretrained import embedded_weights

#: The demo spec, found from the source checkout (``make demo`` runs from it).
SPEC = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "sweep.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo sweep and the report; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m dabin.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    args, sweep_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if not SPEC.is_file():
        print(f"dabin demo: error: the demo spec {SPEC} is missing; run from a dabin checkout", file=sys.stderr)
        return 2
    out = Path(args.out)
    started = time.monotonic()
    embedded_weights()
    status = dabin(["sweep", str(SPEC), "--out", str(out), *sweep_args])
    if status == 130:
        return status
    report_status = dabin(["report", str(out)])
    minutes = (time.monotonic() - started) / 60
    if report_status == 0:
        print(f"\ndemo finished in {minutes:.1f} min; report: {(out / 'report.md').resolve()}")
    return status or report_status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DabinError as error:
        print(f"dabin demo: error: {error}", file=sys.stderr)
        sys.exit(2)
