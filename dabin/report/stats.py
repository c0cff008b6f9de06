"""Means with Student-t confidence intervals.

With n independent replicates (seeds, or folds) of sample mean m and sample standard deviation s,
the 95% interval is ``m ± t_{0.975, n-1} · s / √n``; the quantile is SciPy's
(:data:`scipy.stats.t`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from scipy import stats

from dabin.errors import DabinError

__all__ = ["MeanCI", "mean_ci"]


@dataclasses.dataclass(frozen=True)
class MeanCI:
    """A mean with the half-width of its confidence interval.

    Attributes:
        mean: Sample mean.
        half_width: ``t · s / √n``; None with a single value (no interval from one run).
        n: Number of values.
    """

    mean: float
    half_width: float | None
    n: int

    def format(self, digits: int = 2) -> str:
        """``52.21 ± 1.30`` (or just the mean for a single run)."""
        if self.half_width is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and two-sided Student-t confidence interval of independent replicates.

    Args:
        values: One value per independent replicate (a seed; in Table 3 a fold's seed average).
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        The mean, the interval's half-width (None for one value) and n.

    Raises:
        DabinError: No values, or a confidence outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise DabinError(f"confidence must be in (0, 1), got {confidence}")
    n = len(values)
    if n == 0:
        raise DabinError("no values to average")
    mean = math.fsum(values) / n
    if n == 1:
        return MeanCI(mean, None, 1)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    quantile = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1))
    return MeanCI(mean, quantile * std / math.sqrt(n), n)
