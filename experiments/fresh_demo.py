"""Measure ``make demo`` as a new user meets it: a fresh clone, a fresh environment, an empty cache.

Clones the repository into a temporary folder, runs ``make demo`` there with ``DABIN_CACHE``
pointing to an empty folder (so the dataset is rendered and the stand-in pretrained again; pass
``--warm-cache`` to keep the user's cache), times it end to end, and prints the demo's phase
table from its ``timings.json`` (:class:`dabin.record.Timings`) beside the wall time.

Usage::

    python experiments/fresh_demo.py [--repo .] [--keep] [--warm-cache]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dabin.record import PHASES, Timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="repository to clone")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its runs/demo) afterwards")
    parser.add_argument("--warm-cache", action="store_true", help="use the user's dataset and weights cache")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dabin-fresh-demo-"))
    clone = work / "dabin"
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    env = dict(os.environ)
    if not args.warm_cache:
        env["DABIN_CACHE"] = str(work / "cache")
    started = time.monotonic()
    status = subprocess.run(["make", "demo"], cwd=clone, env=env).returncode
    wall = time.monotonic() - started
    timings = Timings.read(clone / "runs" / "demo")
    print(f"\nfresh clone of {args.repo}: make demo exited {status} after {wall / 60:.1f} min ({wall:.0f} s)")
    if timings is None:
        print("no timings.json: the demo did not get to its report", file=sys.stderr)
        return status or 1
    print("| phase | seconds |\n| --- | --- |")
    for phase in PHASES:
        if phase in timings.phases:
            print(f"| {phase} | {timings.phases[phase]:.0f} |")
    print(f"| (make's own, clone, untimed gaps) | {wall - timings.total_s:.0f} |")
    print(f"\nover the {timings.runs} runs: fitting {timings.fit_s:.0f} s, of which evaluation points "
          f"{timings.evaluation_s:.0f} s; testing {timings.test_s:.0f} s; {timings.processes} processes × "
          f"{timings.threads} threads on {timings.cpus} CPUs")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
