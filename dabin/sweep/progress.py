"""Progress of a sweep: one line per finished job, then the overall count with an ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from dabin.sweep.running import Outcome

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``, ``4000`` -> ``1h06m40s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Prints what each finished job did and how much of the sweep is left.

    The ETA assumes the remaining jobs take as long as the finished ones did on average and that
    ``workers`` of them run at a time.

    Args:
        total: Jobs to run in this invocation.
        workers: Jobs running at a time.
        stream: Where the lines go.
    """

    def __init__(self, total: int, workers: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.workers = max(1, workers)
        self.stream = stream or sys.stdout
        self.finished = 0
        self.failed = 0
        self._durations: list[float] = []
        self._started = time.monotonic()

    def update(self, outcome: Outcome) -> None:
        """Record a finished job and print its line and the progress line."""
        if outcome.status == "interrupted":
            return
        self.finished += 1
        self._durations.append(outcome.seconds)
        width = len(str(self.total))
        if outcome.status == "ok":
            result = f"ok      {outcome.accuracy:6.2f}%" if outcome.accuracy is not None else "ok"
        else:
            self.failed += 1
            result = f"FAILED  {outcome.reason}"
        print(f"[{self.finished:>{width}}/{self.total}] {outcome.job.label:<34} {format_duration(outcome.seconds):>7}  "
              f"{result}", file=self.stream, flush=True)
        left = self.total - self.finished
        elapsed = time.monotonic() - self._started
        eta = sum(self._durations) / len(self._durations) * left / self.workers
        failed = f", {self.failed} failed" if self.failed else ""
        print(f"  progress {self.finished}/{self.total} ({100 * self.finished // max(1, self.total)}%){failed}, "
              f"elapsed {format_duration(elapsed)}, ETA {format_duration(eta) if left else '0s'}",
              file=self.stream, flush=True)
