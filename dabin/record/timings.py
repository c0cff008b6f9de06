"""``timings.json``: where a demo's time went, phase by phase, beside its report (schema defined once).

``python -m dabin.demo`` writes it (:meth:`Timings.write`) before the report, so the report's head
shows it (:meth:`Timings.read`), and again after with the report's own time. Two machines compare
by their files.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from dabin.io import atomic_write_text
from dabin.record.files import TIMINGS

__all__ = ["PHASES", "Timings"]

#: The phases, in the order they run.
PHASES: tuple[str, ...] = ("install", "dataset", "pretraining", "runs", "report")


@dataclasses.dataclass(frozen=True)
class Timings:
    """Seconds per phase of a demo, and what ran in parallel.

    Attributes:
        phases: Phase (:data:`PHASES`) -> wall seconds; a phase absent did not run in this
            invocation (e.g. ``install`` when the environment was already there).
        fit_s: Sum over the finished runs of their fitting time (evaluation points included).
        evaluation_s: Of it, the evaluation points' share, summed over the runs.
        test_s: Sum over the runs of their testing time.
        runs: Finished runs the sums are over.
        processes: Runs trained at a time (the sweep's workers).
        threads: CPU threads per process.
        cpus: CPUs the machine offered.
    """

    phases: dict[str, float]
    fit_s: float
    evaluation_s: float
    test_s: float
    runs: int
    processes: int
    threads: int
    cpus: int

    @property
    def total_s(self) -> float:
        """The phases' sum."""
        return math.fsum(self.phases.values())

    def text(self) -> str:
        """One line: ``install 66 s, dataset 1 s, ... (total 10.4 min); runs: fit 812 s (...)``."""
        phases = ", ".join(f"{name} {self.phases[name]:.0f} s" for name in PHASES if name in self.phases)
        return (f"{phases} (total {self.total_s / 60:.1f} min); over the {self.runs} runs: fitting {self.fit_s:.0f} s "
                f"(evaluation points {self.evaluation_s:.0f} s of it), testing {self.test_s:.0f} s; "
                f"{self.processes} process{'es' if self.processes != 1 else ''} × {self.threads} "
                f"thread{'s' if self.threads != 1 else ''} on {self.cpus} CPUs")

    def write(self, folder: Path) -> Path:
        """Write ``folder/timings.json`` atomically."""
        path = Path(folder) / TIMINGS
        atomic_write_text(path, json.dumps(dataclasses.asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def read(cls, folder: Path) -> Timings | None:
        """``folder/timings.json``, or None where there is none or it cannot be read (it only informs)."""
        try:
            data: Any = json.loads((Path(folder) / TIMINGS).read_text())
            return cls(phases={str(k): float(v) for k, v in data["phases"].items()}, fit_s=float(data["fit_s"]),
                       evaluation_s=float(data["evaluation_s"]), test_s=float(data["test_s"]), runs=int(data["runs"]),
                       processes=int(data["processes"]), threads=int(data["threads"]), cpus=int(data["cpus"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
