"""The paper's numbers (Nam & Kim, 2018), for the report to put beside the measured ones.

Copied from the paper's Table 3 (mixed-domain classification on Office-Home, 5-fold
cross-validation) and Table 4 (DANN on the 12 Office-Home tasks), accuracy in %.
"""

from __future__ import annotations

__all__ = ["PAPER_TABLE3", "PAPER_TABLE4", "PAPER_TASKS"]

#: Table 4's tasks in the paper's order.
PAPER_TASKS: tuple[str, ...] = ("Ar→Cl", "Ar→Pr", "Ar→Rw", "Cl→Ar", "Cl→Pr", "Cl→Rw",
                                "Pr→Ar", "Pr→Cl", "Pr→Rw", "Rw→Ar", "Rw→Cl", "Rw→Pr")

#: Table 3: norm -> Office-Home domain -> accuracy (%), plus the average ("Avg").
PAPER_TABLE3: dict[str, dict[str, float]] = {
    "bn": {"Art": 70.04, "Clipart": 76.93, "Product": 88.47, "Real World": 80.38, "Avg": 78.95},
    "bin": {"Art": 72.23, "Clipart": 77.27, "Product": 89.12, "Real World": 81.68, "Avg": 80.08},
}

#: Table 4 (DANN): norm -> task -> accuracy (%), plus the average ("Avg").
PAPER_TABLE4: dict[str, dict[str, float]] = {
    "bn": dict(zip((*PAPER_TASKS, "Avg"),
                   (37.23, 46.17, 63.30, 49.38, 50.90, 60.09, 41.98, 37.34, 65.71, 58.64, 44.56, 71.17, 52.21))),
    "bin": dict(zip((*PAPER_TASKS, "Avg"),
                    (37.46, 46.73, 63.19, 50.00, 52.03, 60.55, 43.00, 37.69, 65.94, 59.67, 45.02, 71.85, 52.76))),
}
