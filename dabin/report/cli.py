"""``dabin report DIR``: the evaluation report of a sweep folder.

    dabin report runs/officehome
    dabin report runs/demo --out docs/demo/report.md
    dabin report runs/demo-selection --select snd

Writes ``report.md`` (Table 4- and Table 3-style grids with 95% intervals, the paper's numbers on
Office-Home, the BIN gate summary and the runs without results) and the CSV tables and PNG plots it
links to, beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dabin.report.build import REPORT, build_report, write_report
from dabin.selection import RANK_COMBINED, VALIDATOR_NAMES

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dabin report", description="Write the evaluation report of a sweep.")
    parser.add_argument("dir", help="the sweep's output folder (holds results.csv and sweep.json)")
    parser.add_argument("--out", metavar="FILE",
                        help=f"where the report goes (default DIR/{REPORT}); its tables and plots go beside it")
    parser.add_argument("--select", metavar="VALIDATOR",
                        help="make this unsupervised validator's pick over evaluation points (and hyper-parameter "
                             f"settings) the headline tables ({', '.join((*VALIDATOR_NAMES, *RANK_COMBINED))}; "
                             "mixval ranks the candidates by mixval_intra and by mixval_inter and averages the ranks); "
                             "default: the last checkpoint")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``dabin report`` (``argv`` without the word ``report``).

    Returns:
        0 once the report is written (a partial sweep gives a partial report, not an error).

    Raises:
        DabinError: Missing or inconsistent inputs; nothing is written then.
    """
    args = _parser().parse_args(list(argv))
    report = build_report(args.dir, args.out, args.select)
    written = write_report(report)
    runs = report.sweep.runs
    finished = sum(run.status == "ok" for run in runs)
    print(f"report: {report.path} ({finished} of {len(runs)} runs finished; {len(written) - 1} tables and plots "
          f"beside it)")
    if finished < len(runs):
        missing = len(runs) - finished
        print(f"note: {missing} {'run has' if missing == 1 else 'runs have'} no result; the report lists them",
              file=sys.stderr)
    return 0
