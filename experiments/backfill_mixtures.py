"""Write the learned-mixture tables of runs finished before dabin wrote them, from their last checkpoints.

Runs of ``dsbin`` (gates.csv without the target gates) and ``switchable`` (no
``switch_weights.csv``) trained before those tables existed keep their ``checkpoints/last.ckpt``;
this loads each one and writes the tables as the trainer now does at the end of a run
(:func:`dabin.analysis.write_gate_csv`, :func:`dabin.analysis.write_switch_csv`). Nothing else
in the run folder is touched; runs without a ``done`` marker or a checkpoint are listed and skipped.

Usage::

    python experiments/backfill_mixtures.py runs/demo-norms && dabin report runs/demo-norms
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dabin.analysis import TARGET_GATE_COLUMN, read_gate_csv, write_gate_csv, write_switch_csv
from dabin.modules import TransferModule
from dabin.record import DONE, GATES, JOB, SWITCH_WEIGHTS

#: The norms whose tables this writes.
NORMS = ("dsbin", "switchable")


def needs_backfill(run: Path, norm: str) -> bool:
    """Whether a finished run of ``norm`` lacks the table the trainer now writes."""
    if norm == "switchable":
        return not (run / SWITCH_WEIGHTS).is_file()
    return not (run / GATES).is_file() or not all(TARGET_GATE_COLUMN in row for row in read_gate_csv(run / GATES))


def backfill(run: Path, norm: str) -> None:
    """Load ``run``'s last checkpoint and write its table."""
    module = TransferModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    with torch.no_grad():
        if norm == "switchable":
            write_switch_csv(module, run / SWITCH_WEIGHTS)
        else:
            write_gate_csv(module, run / GATES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder (runs/demo-norms)")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"backfill_mixtures: error: sweep folder {args.sweep} does not exist", file=sys.stderr)
        return 2
    written = skipped = 0
    for job_file in sorted(args.sweep.glob(f"*/{JOB}")):
        run = job_file.parent
        try:
            norm = json.loads(job_file.read_text()).get("norm")
        except (OSError, ValueError, AttributeError):
            print(f"skipped {run.name}: {JOB} is not a job record")
            skipped += 1
            continue
        if norm not in NORMS or not needs_backfill(run, norm):
            continue
        if not (run / DONE).is_file() or not (run / "checkpoints" / "last.ckpt").is_file():
            print(f"skipped {run.name}: not finished or no checkpoints/last.ckpt")
            skipped += 1
            continue
        backfill(run, norm)
        written += 1
    print(f"wrote the tables of {written} run(s), skipped {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
